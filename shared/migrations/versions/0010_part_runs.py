"""Parallel renders, repaired (issue 19): the part floor a parallel render was cut with travels with
its K (export_jobs.min_part_s, sent as EXPORT_MIN_PART_S to every execution of the job), and a
task's attempts are counted per execution (export_job_tasks.execution: Cloud Run numbers a
relaunched execution's attempts from 0 again)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""
from alembic import op
import sqlalchemy as sa

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("export_jobs") as batch:
        batch.add_column(sa.Column("min_part_s", sa.Float()))  # NULL: the tasks' own RENDER_MIN_PART_S
    with op.batch_alter_table("export_job_tasks") as batch:
        batch.add_column(sa.Column("execution", sa.String(200)))  # NULL: a report that did not name it


def downgrade() -> None:
    with op.batch_alter_table("export_job_tasks") as batch:
        batch.drop_column("execution")
    with op.batch_alter_table("export_jobs") as batch:
        batch.drop_column("min_part_s")
