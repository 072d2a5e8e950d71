"""export_jobs.owner: every job has an owner; idempotency keys are unique per owner

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _old_unique() -> tuple[str, dict]:
    """The name of 0001's unnamed unique constraint on idempotency_key, and the batch options that
    name it on SQLite (Alembic's documented recipe for unnamed constraints in batch mode)."""
    if op.get_bind().dialect.name == "sqlite":
        return "uq_export_jobs_idempotency_key", {"naming_convention": {"uq": "uq_%(table_name)s_%(column_0_name)s"}}
    return "export_jobs_idempotency_key_key", {}  # PostgreSQL's default name


def upgrade() -> None:
    # existing jobs belong to the single trusted client of before (shared.identity.DEFAULT_OWNER)
    name, options = _old_unique()
    with op.batch_alter_table("export_jobs", **options) as batch:
        batch.add_column(sa.Column("owner", sa.String(128), nullable=False, server_default="default"))
        batch.drop_constraint(name, type_="unique")
        batch.create_unique_constraint("uq_export_jobs_owner_idempotency_key", ["owner", "idempotency_key"])


def downgrade() -> None:
    with op.batch_alter_table("export_jobs") as batch:
        batch.drop_constraint("uq_export_jobs_owner_idempotency_key", type_="unique")
        batch.create_unique_constraint(_old_unique()[0], ["idempotency_key"])
        batch.drop_column("owner")
