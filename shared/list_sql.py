"""The SQL of export_list (SqlJobRepository.list_jobs), built in one place so that the tests EXPLAIN
the very statement the repository runs.

    WHERE owner = :owner [AND status IN (...)] [AND labels @> :labels] [AND external_ref = :ref]
          [AND created_at >= :after] [AND created_at < :before] [AND (created_at, id) < (:t, :id)]
    ORDER BY created_at DESC, id DESC LIMIT :limit

On PostgreSQL this is a range of ix_export_jobs_owner_created (or, for one status,
ix_export_jobs_owner_status_created) read in index order: no Sort, and a page deep in the list
costs what the first does (keyset, not OFFSET). Labels: `@>` on JSONB (GIN index, migration 0006);
SQLite compares json_extract(labels, '$."key"') per pair (keys are [a-z0-9_-], shared.api).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, func, select, tuple_, type_coerce
from sqlalchemy.dialects.postgresql import JSONB

from shared.models import ExportJob
from shared.ports import JobFilter

SUMMARY_COLUMNS = (ExportJob.id, ExportJob.status, ExportJob.stage, ExportJob.progress, ExportJob.labels,
                   ExportJob.external_ref, ExportJob.created_at, ExportJob.updated_at, ExportJob.finished_at,
                   ExportJob.error_code, ExportJob.error_message)


def list_statement(dialect: str, owner: str, where: JobFilter, after: tuple[datetime, str] | None,
                   limit: int) -> Select:
    """The page query for `owner` (always a condition: no other owner's row can be returned).
    dialect: "postgresql" or "sqlite"; after: (created_at, id) of the previous page's last row."""
    job = ExportJob
    conds = [job.owner == owner]
    if len(where.statuses) == 1:  # `=`, so the planner can use the (owner, status, created_at) index
        conds.append(job.status == where.statuses[0])
    elif where.statuses:
        conds.append(job.status.in_(where.statuses))
    if where.labels and dialect == "postgresql":
        conds.append(type_coerce(job.labels, JSONB).contains(dict(where.labels)))
    else:
        conds += [func.json_extract(job.labels, f'$."{key}"') == value for key, value in where.labels]
    if where.external_ref is not None:
        conds.append(job.external_ref == where.external_ref)
    if where.created_after is not None:
        conds.append(job.created_at >= where.created_after)
    if where.created_before is not None:
        conds.append(job.created_at < where.created_before)
    if after is not None:
        conds.append(tuple_(job.created_at, job.id) < tuple_(*after))
    return select(*SUMMARY_COLUMNS).where(*conds).order_by(job.created_at.desc(), job.id.desc()).limit(limit)
