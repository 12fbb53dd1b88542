"""jobs: next_attempt_at (when a waiting job is due) and lease_expires_at (a running job's worker is alive)

Revision ID: 0002_job_lease
Revises: 0001
Create Date: 2026-11-26 23:59:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0002_job_lease'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('lease_expires_at')
        batch.drop_column('next_attempt_at')
