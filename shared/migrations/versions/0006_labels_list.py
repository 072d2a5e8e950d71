"""export_jobs.labels and external_ref (issue 18: label, reference and list an owner's exports);
the indexes that keep one page of export_list one indexed query

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

- ix_export_jobs_owner_created (owner, created_at DESC, id DESC): the plain list, newest first; the
  keyset condition (created_at, id) < (:t, :id) is a range of it.
- ix_export_jobs_owner_status_created (owner, status, created_at DESC, id DESC): a one-status filter
  walks its own range in order (no Sort); several statuses fall back to the first with a filter.
- ix_export_jobs_owner_external_ref (owner, external_ref): an app's reference names few jobs.
- PostgreSQL only: labels is JSONB with a GIN (jsonb_path_ops) index for `labels @> {...}`, so a
  rare label is found without scanning the owner's rows (BENCHMARKS.md, "Listing").
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    labels = (sa.Column("labels", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb"))
              if pg else sa.Column("labels", sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
    with op.batch_alter_table("export_jobs") as batch:
        batch.add_column(labels)
        batch.add_column(sa.Column("external_ref", sa.String(200)))
    op.create_index("ix_export_jobs_owner_created", "export_jobs",
                    ["owner", sa.text("created_at DESC"), sa.text("id DESC")])
    op.create_index("ix_export_jobs_owner_status_created", "export_jobs",
                    ["owner", "status", sa.text("created_at DESC"), sa.text("id DESC")])
    op.create_index("ix_export_jobs_owner_external_ref", "export_jobs", ["owner", "external_ref"])
    if pg:
        op.create_index("ix_export_jobs_labels", "export_jobs", ["labels"], postgresql_using="gin",
                        postgresql_ops={"labels": "jsonb_path_ops"})


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_export_jobs_labels", table_name="export_jobs")
    for name in ("ix_export_jobs_owner_external_ref", "ix_export_jobs_owner_status_created",
                 "ix_export_jobs_owner_created"):
        op.drop_index(name, table_name="export_jobs")
    with op.batch_alter_table("export_jobs") as batch:
        batch.drop_column("external_ref")
        batch.drop_column("labels")
