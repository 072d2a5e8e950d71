"""export_job_uploads.size_bytes as BIGINT (uploads over 2 GiB)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("export_job_uploads") as batch:
        batch.alter_column("size_bytes", type_=sa.BigInteger, existing_type=sa.Integer)


def downgrade() -> None:
    with op.batch_alter_table("export_job_uploads") as batch:
        batch.alter_column("size_bytes", type_=sa.Integer, existing_type=sa.BigInteger)
