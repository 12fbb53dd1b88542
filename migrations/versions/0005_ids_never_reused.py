"""ids never reused on SQLite (AUTOINCREMENT) and rows orphaned while SQLite ignored foreign keys deleted

Embedded databases ran without foreign-key enforcement and with reusable ids, so a deleted project could leave jobs,
artifacts and files behind for the next project created with its id. This deletes such orphans (a no-op on
PostgreSQL, which always enforced the keys) and, on SQLite only, rebuilds the tables whose ids are handed out as
AUTOINCREMENT tables (PostgreSQL sequences never reuse ids). migrations/env.py runs SQLite migrations with foreign
keys off, so rebuilding a parent table does not cascade into its children.

Revision ID: 0005_ids_never_reused
Revises: 0004_documents
Create Date: 2026-11-28 04:30:00

"""
from alembic import op


revision = '0005_ids_never_reused'
down_revision = '0004_documents'
branch_labels = None
depends_on = None

TABLES = ("users", "projects", "project_files", "jobs")
# Parents before children: each statement may orphan rows the next ones delete.
ORPHANS = (
    "DELETE FROM projects WHERE owner_id NOT IN (SELECT id FROM users)",
    "DELETE FROM memberships WHERE project_id NOT IN (SELECT id FROM projects) "
    "OR user_id NOT IN (SELECT id FROM users)",
    "DELETE FROM project_files WHERE project_id NOT IN (SELECT id FROM projects)",
    "DELETE FROM documents WHERE project_id NOT IN (SELECT id FROM projects)",
    "DELETE FROM document_updates WHERE document_id NOT IN (SELECT id FROM documents)",
    "DELETE FROM jobs WHERE project_id NOT IN (SELECT id FROM projects)",
    "DELETE FROM job_artifacts WHERE job_id NOT IN (SELECT id FROM jobs)",
    "DELETE FROM job_artifact_chunks WHERE job_id NOT IN (SELECT id FROM jobs)",
)


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}):
            pass


def upgrade():
    for statement in ORPHANS:
        op.execute(statement)
    _rebuild(True)


def downgrade():
    _rebuild(False)
