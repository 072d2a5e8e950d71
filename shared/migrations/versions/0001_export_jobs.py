"""export_jobs, export_job_events, export_job_uploads

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("stage", sa.String(20)),
        sa.Column("progress", sa.Float, nullable=False, server_default="0"),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("spec_sha256", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(200), unique=True),
        sa.Column("uploads_expected", sa.JSON, nullable=False),
        sa.Column("execution_name", sa.String(500)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error_code", sa.String(64)),
        sa.Column("error_message", sa.Text),
        sa.Column("output", sa.JSON),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("last_report_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_export_jobs_status", "export_jobs", ["status"])
    op.create_table(
        "export_job_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(36), sa.ForeignKey("export_jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_export_job_events_job_id", "export_job_events", ["job_id"])
    op.create_table(
        "export_job_uploads",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(36), sa.ForeignKey("export_jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("generation", sa.String(40), nullable=False),
        sa.Column("size_bytes", sa.Integer),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("job_id", "name", name="uq_export_job_uploads_job_name"),
    )
    op.create_index("ix_export_job_uploads_job_id", "export_job_uploads", ["job_id"])


def downgrade() -> None:
    op.drop_table("export_job_uploads")
    op.drop_table("export_job_events")
    op.drop_index("ix_export_jobs_status", "export_jobs")
    op.drop_table("export_jobs")
