"""documents and document_updates: co-edited files as Yjs snapshots plus the updates stored since

Revision ID: 0004_documents
Revises: 0003_artifact_chunks
Create Date: 2026-11-28 03:50:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0004_documents'
down_revision = '0003_artifact_chunks'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('documents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=512), nullable=False),
    sa.Column('snapshot', sa.LargeBinary(), nullable=True),
    sa.Column('snapshot_upto', sa.BigInteger(), nullable=False),
    sa.Column('update_count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('compacted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'path', name='uq_documents_project_path')
    )
    op.create_table('document_updates',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True
    )
    op.create_index('ix_document_updates_document_id', 'document_updates', ['document_id', 'id'], unique=False)


def downgrade():
    op.drop_index('ix_document_updates_document_id', table_name='document_updates')
    op.drop_table('document_updates')
    op.drop_table('documents')
