"""Parallel renders (issue 19): the job's part count and stitch claim, the pieces found in the output
bucket (export_job_parts), each task's own attempt and progress (export_job_tasks), and usage keyed
by task as well as attempt (export_job_usage: task_role, task_index join its primary key)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_USAGE_PK = ["job_id", "task_role", "task_index", "attempt"]


def upgrade() -> None:
    with op.batch_alter_table("export_jobs") as batch:
        batch.add_column(sa.Column("part_count", sa.Integer()))  # NULL: one task renders the whole export
        batch.add_column(sa.Column("stitch_claimed_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("stitch_execution_name", sa.String(500)))
        batch.add_column(sa.Column("part_relaunches", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("stitch_relaunches", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "export_job_parts",
        sa.Column("job_id", sa.String(36), sa.ForeignKey("export_jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("part_index", sa.Integer(), primary_key=True),  # -1: the audio
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("part_count", sa.Integer(), nullable=False),
        sa.Column("frames", sa.Integer()),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "export_job_tasks",
        sa.Column("job_id", sa.String(36), sa.ForeignKey("export_jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("role", sa.String(10), primary_key=True),
        sa.Column("task_index", sa.Integer(), primary_key=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(20)),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    # existing rows are today's single task ("whole", index 0)
    _rekey_usage(with_task=True)


def downgrade() -> None:
    _rekey_usage(with_task=False)
    op.drop_table("export_job_tasks")
    op.drop_table("export_job_parts")
    with op.batch_alter_table("export_jobs") as batch:
        for column in ("stitch_relaunches", "part_relaunches", "stitch_execution_name", "stitch_claimed_at",
                       "part_count"):
            batch.drop_column(column)


def _usage_table(name: str, with_task: bool) -> None:
    task = [sa.Column("task_role", sa.String(10), nullable=False, server_default="whole"),
            sa.Column("task_index", sa.Integer(), nullable=False, server_default="0")] if with_task else []
    op.create_table(
        name,
        sa.Column("job_id", sa.String(36), sa.ForeignKey("export_jobs.id", ondelete="CASCADE"), nullable=False),
        *task,
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("wall_s", sa.Float, nullable=False),
        sa.Column("cpu_s", sa.Float, nullable=False),
        sa.Column("vcpu_s", sa.Float, nullable=False),
        sa.Column("gib_s", sa.Float, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(*(_USAGE_PK if with_task else ["job_id", "attempt"]), name=f"{name}_pkey"),
    )


def _rekey_usage(with_task: bool) -> None:
    """export_job_usage keyed by (job, task role, task index, attempt), or back by (job, attempt).
    PostgreSQL alters the table in place; SQLite cannot alter a primary key, so the table is copied
    into a new one (rows of a parallel render's tasks are dropped on the way down)."""
    amounts = "attempt, wall_s, cpu_s, vcpu_s, gib_s, updated_at"
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("export_job_usage_pkey", "export_job_usage", type_="primary")
        if with_task:
            op.add_column("export_job_usage", sa.Column("task_role", sa.String(10), nullable=False,
                                                        server_default="whole"))
            op.add_column("export_job_usage", sa.Column("task_index", sa.Integer(), nullable=False,
                                                        server_default="0"))
        else:
            op.execute("DELETE FROM export_job_usage WHERE task_role <> 'whole'")
            op.drop_column("export_job_usage", "task_index")
            op.drop_column("export_job_usage", "task_role")
        op.create_primary_key("export_job_usage_pkey", "export_job_usage",
                              _USAGE_PK if with_task else ["job_id", "attempt"])
        return
    _usage_table("export_job_usage_new", with_task)
    op.execute(f"INSERT INTO export_job_usage_new (job_id, {amounts}) SELECT job_id, {amounts} FROM export_job_usage"
               + ("" if with_task else " WHERE task_role = 'whole'"))
    op.drop_table("export_job_usage")
    op.rename_table("export_job_usage_new", "export_job_usage")
