"""export_status's view of a job, as the repository returns it (JobRepository.status_view): built in
Python from a JobRecord (status_fields: SQLite, the fakes) and, on PostgreSQL, by the server as one
JSON object (STATUS_PREPARE). tests/integration/test_repository.py keeps the two equal.

Shape: {jobId, owner, status, stage, progress (float, not rounded), createdAt, updatedAt, startedAt,
finishedAt (clock.iso() strings or None), attempts, executionName, executionLogUri, labels
{key: value} (keys in code-point order), externalRef | None, history [{status, at}], uploads
{expected, received} | None, error {code, message} | None, output | None, cost {vcpuSeconds,
gibSeconds, cpuSeconds}: the sums over the job's usage records, added in (attempt, task) order
(shared.cost.totals; 0 when none), which the service turns into the public `cost`, webhook {url,
deliveries: [{eventId, type, attempt, at, httpStatus, error, durationMs}] (the last
webhook_store.SHOWN_DELIVERIES attempts, oldest first)} | None (a job without a webhook), parts
{count, rendered, audio} | None (a parallel render's pieces, shared.parts.Pieces.view; None: one task)}.
"""
from __future__ import annotations

from typing import Any

from shared.clock import iso
from shared.cost import AttemptUsage, totals
from shared.ports import JobRecord
from shared.states import JobStatus

SHOWN_DELIVERIES = 10  # the last webhook delivery attempts a status shows



def status_fields(job: JobRecord, usage: list[AttemptUsage] = (), deliveries: list[dict] | None = None,
                  parts: dict | None = None) -> dict[str, Any]:
    """The view JobRepository.status_view returns, built from a record, its usage per attempt
    (attempt order), its last webhook delivery attempts, its pieces' view (parts: shared.parts.Pieces.view,
    None for a single-task export) (the SQLite path, and the reference the
    PostgreSQL query must match; tests/integration/test_repository.py compares them)."""
    spent = totals(list(usage))
    return {
        "jobId": job.id, "owner": job.owner, "status": job.status.value, "stage": job.stage, "progress": job.progress,
        "createdAt": iso(job.created_at), "updatedAt": iso(job.updated_at), "startedAt": iso(job.started_at),
        "finishedAt": iso(job.finished_at), "attempts": job.attempts, "executionName": job.execution_name,
        "executionLogUri": job.execution_log_uri,
        "labels": sorted_labels(job.labels), "externalRef": job.external_ref,
        "history": [{"status": s, "at": iso(a)} for s, a in job.history],
        "uploads": ({"expected": job.uploads_expected, "received": job.uploads_received}
                    if job.status == JobStatus.AWAITING_UPLOAD else None),
        "error": {"code": job.error_code, "message": job.error_message} if job.error_code else None,
        "output": job.output if job.status == JobStatus.SUCCEEDED else None,
        "cost": {"vcpuSeconds": spent.vcpu_s, "gibSeconds": spent.gib_s, "cpuSeconds": spent.cpu_s},
        "webhook": {"url": job.webhook_url, "deliveries": deliveries or []} if job.webhook_url else None,
        "parts": parts,
    }


def sorted_labels(labels: dict[str, str] | None) -> dict[str, str]:
    """Labels in code-point order of their keys (keys are ASCII: LABELS_SQL's COLLATE "C" agrees), so
    every builder and backend shows them alike (JSONB keeps its own key order, not the client's)."""
    return dict(sorted((labels or {}).items()))


# labels as a JSON object in sorted_labels' order ('{}' when none)
LABELS_SQL = ("coalesce((SELECT json_object_agg(l.key, l.value ORDER BY l.key COLLATE \"C\") "
              "FROM jsonb_each_text(j.labels) l), '{}'::json)")


def _iso_sql(column: str) -> str:
    """SQL formatting a timestamptz exactly like iso(): UTC, milliseconds truncated, a Z (NULL stays NULL)."""
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""


# usage rows in the order usage_records.usage_of reads them (roles are lower-case ASCII: "C" agrees)
_USAGE_ORDER = 'c.attempt, c.task_role COLLATE "C", c.task_index'

# SqlJobRepository.status_view on PostgreSQL: the whole view as one JSON object built by the server
# (timestamps already formatted, history and received uploads aggregated), so the client neither
# parses timestamps nor builds ORM objects. Prepared once per connection and run with the simple
# query protocol: one round trip, and no client-side parameter conversion (pg8000 converts the
# parameter style in pure Python, character by character, for every execution of an extended-protocol
# statement). extra_float_digits=3 makes every server version print floats exactly (PostgreSQL >= 12
# does by default).
STATUS_PREPARE = (
    "SET extra_float_digits = 3; PREPARE sceneflow_status_view(text) AS SELECT json_build_object("
    "'jobId', j.id, 'owner', j.owner, 'status', j.status, 'stage', j.stage, 'progress', coalesce(j.progress, 0), "
    f"'createdAt', {_iso_sql('j.created_at')}, 'updatedAt', {_iso_sql('j.updated_at')}, "
    f"'startedAt', {_iso_sql('j.started_at')}, 'finishedAt', {_iso_sql('j.finished_at')}, "
    "'attempts', coalesce(j.attempts, 0), 'executionName', j.execution_name, "
    "'executionLogUri', j.execution_log_uri, "
    f"'labels', {LABELS_SQL}, 'externalRef', j.external_ref, "
    "'history', coalesce((SELECT json_agg(json_build_object('status', e.status, 'at', "
    f"{_iso_sql('e.at')}) ORDER BY e.id) FROM export_job_events e WHERE e.job_id = j.id), '[]'), "
    "'uploads', CASE WHEN j.status = 'awaiting_upload' THEN json_build_object('expected', j.uploads_expected, "
    "'received', coalesce((SELECT json_agg(u.name ORDER BY u.id) FROM export_job_uploads u "
    "WHERE u.job_id = j.id), '[]')) END, "
    "'error', CASE WHEN j.error_code <> '' THEN json_build_object('code', j.error_code, "
    "'message', j.error_message) END, "
    "'output', CASE WHEN j.status = 'succeeded' THEN j.output END, "
    # float sums in attempt order, as shared.cost.totals adds them: the same floats
    f"'cost', (SELECT json_build_object('vcpuSeconds', coalesce(sum(c.vcpu_s ORDER BY {_USAGE_ORDER}), 0), "
    f"'gibSeconds', coalesce(sum(c.gib_s ORDER BY {_USAGE_ORDER}), 0), "
    f"'cpuSeconds', coalesce(sum(c.cpu_s ORDER BY {_USAGE_ORDER}), 0)) FROM export_job_usage c WHERE c.job_id = j.id), "
    # a parallel render's pieces (shared.parts.Pieces.view): k (K until a video piece names it), the
    # video parts in, the audio in; absent for a single-task export
    "'parts', CASE WHEN j.part_count IS NOT NULL THEN (SELECT json_build_object("
    "'count', coalesce(max(p.part_count) FILTER (WHERE p.part_index >= 0), j.part_count), "
    "'rendered', count(*) FILTER (WHERE p.part_index >= 0 AND p.part_index < p.part_count AND p.part_count = "
    "(SELECT max(q.part_count) FROM export_job_parts q WHERE q.job_id = j.id AND q.part_index >= 0)), "
    "'audio', coalesce(bool_or(p.part_index = -1), false)) FROM export_job_parts p WHERE p.job_id = j.id) END, "
    "'webhook', CASE WHEN j.webhook_url IS NOT NULL THEN json_build_object('url', j.webhook_url, 'deliveries', "
    "coalesce((SELECT json_agg(json_build_object('eventId', d.event_id, 'type', d.event_type, 'attempt', "
    f"d.attempt, 'at', {_iso_sql('d.at')}, 'httpStatus', d.http_status, 'error', d.error, 'durationMs', "
    "d.duration_ms) ORDER BY d.id) FROM (SELECT * FROM webhook_deliveries w WHERE w.job_id = j.id "
    f"ORDER BY w.id DESC LIMIT {SHOWN_DELIVERIES}) d), '[]')) END"
    ") FROM export_jobs j WHERE j.id = $1")
