"""Signed webhooks: a job's webhook URL, the job events as a transactional outbox, per-owner signing
secrets and every delivery attempt (issue 18, item 4; DESIGN §4 "Webhooks")

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("export_jobs") as batch:
        batch.add_column(sa.Column("webhook_url", sa.String(2000)))
        batch.add_column(sa.Column("webhook_progress_at", sa.DateTime(timezone=True)))
    # the outbox: a transition of a job with a webhook is written pending in the transition's own
    # transaction; publish_pending is false once it reached the events topic (or when nothing is due)
    with op.batch_alter_table("export_job_events") as batch:
        batch.add_column(sa.Column("publish_pending", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("published_at", sa.DateTime(timezone=True)))
        batch.create_index("ix_export_job_events_publish_pending", ["publish_pending"])
    op.create_table(
        "webhook_secrets",
        sa.Column("owner", sa.String(128), primary_key=True),
        sa.Column("secret", sa.String(200), nullable=False),  # whsec_<base64>: needed in clear to sign
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(36), sa.ForeignKey("export_jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event_id", sa.String(100), nullable=False),
        sa.Column("event_type", sa.String(40), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("http_status", sa.Integer()),
        sa.Column("error", sa.String(300)),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
    )
    op.create_index("ix_webhook_deliveries_job_id", "webhook_deliveries", ["job_id", "id"])
    op.create_index("ix_webhook_deliveries_event_id", "webhook_deliveries", ["event_id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_event_id", "webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_job_id", "webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_secrets")
    with op.batch_alter_table("export_job_events") as batch:
        batch.drop_index("ix_export_job_events_publish_pending")
        batch.drop_column("published_at")
        batch.drop_column("publish_pending")
    with op.batch_alter_table("export_jobs") as batch:
        batch.drop_column("webhook_progress_at")
        batch.drop_column("webhook_url")
