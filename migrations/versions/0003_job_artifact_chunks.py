"""job artifacts in chunks: an export is written and served a chunk at a time, never whole in memory

Revision ID: 0003_artifact_chunks
Revises: 0002_job_lease
Create Date: 2026-11-28 04:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0003_artifact_chunks'
down_revision = '0002_job_lease'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('job_artifact_chunks',
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'seq')
    )
    # Existing artifacts keep their bytes, as one chunk each.
    op.execute('INSERT INTO job_artifact_chunks (job_id, seq, data) SELECT job_id, 0, data FROM job_artifacts')
    with op.batch_alter_table('job_artifacts') as batch:
        batch.drop_column('data')
        batch.alter_column('size', type_=sa.BigInteger(), existing_nullable=False)


def downgrade():
    with op.batch_alter_table('job_artifacts') as batch:
        batch.add_column(sa.Column('data', sa.LargeBinary(), nullable=True))
        batch.alter_column('size', type_=sa.Integer(), existing_nullable=False)
    op.execute('UPDATE job_artifacts SET data = (SELECT data FROM job_artifact_chunks c '
               'WHERE c.job_id = job_artifacts.job_id AND c.seq = 0)')
    op.drop_table('job_artifact_chunks')
