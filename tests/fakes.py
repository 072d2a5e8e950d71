"""Test doubles: the render tests' reporter, and in-memory fakes of the service's ports (with fault injection)."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

from shared.clock import utcnow
from shared.cost import merged
from shared.errors import Conflict, NotFound, TransientError
from shared.executions import MAX_TASKS, check_parts, render_env, render_task_count, stitch_env
from shared.identity import DEFAULT_OWNER
from shared.limits import JOB_TOO_LARGE, job_bytes_problem
from shared.messages import bounded
from shared.ports import (ExecutionStatus, JobRecord, JobSummary, ObjectInfo, SignedUrl, UploadRecorded,
                          content_length_range)
from shared.states import JobStatus, sources_for
from shared.status_view import status_fields


class FakeReporter:
    """Records the render job's reports (running/succeeded/failed/handoff) as render_job.reporter.Reporter
    would send them; `calls` is the list of report bodies, in order."""

    def __init__(self):
        self.calls = []
        self.rejected = False

    def running(self, stage, progress, force=False):
        self.calls.append({"status": "running", "stage": stage, "progress": progress})
        return True

    def succeeded(self, output):
        self.calls.append({"status": "succeeded", "output": output})
        return True

    def failed(self, code, message):
        self.calls.append({"status": "failed", "error": {"code": code, "message": message}})
        return True

    def handoff(self, parts, stage, progress):
        """Recorded; never applied (an API that does not hand over: the task renders on)."""
        self.calls.append({"status": "running", "stage": stage, "progress": progress, "handoff": {"parts": parts}})
        return None

    @property
    def final(self):
        """The last report, or None."""
        return self.calls[-1] if self.calls else None


# -- in-memory fakes of the service's ports (tests/unit/test_service.py) --------------------------------


_STAGE_RANK = {"preparing": 0, "rendering": 1, "uploading": 2}


class FakeRepository:
    """The JobRepository port in a dict, with the SQL repository's rules: conditional transitions
    (states.sources_for), the attempt rule, progress and stage that never go back, history of the
    applied transitions. `fail_create` makes create() raise it (fault injection)."""

    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}
        self.fail_create: BaseException | None = None
        self._clock = 0

    def _now(self) -> datetime:  # strictly increasing, so list_stale's order is defined
        self._clock += 1
        return utcnow() + timedelta(microseconds=self._clock)

    def _record(self, row: dict, with_spec: bool = True) -> JobRecord:
        fields = {f.name for f in dataclasses.fields(JobRecord)}
        values = {k: v for k, v in row.items() if k in fields}
        values.update(history=list(row["history"]), uploads_received=list(row["uploads"]),
                      uploads_expected=list(row["uploads_expected"]), spec=row["spec"] if with_spec else None)
        return JobRecord(**values)

    def get(self, job_id: str, *, with_spec: bool = True, owner: str | None = None) -> JobRecord | None:
        row = self.rows.get(job_id)
        return self._record(row, with_spec) if row and owner in (None, row["owner"]) else None

    def status_view(self, job_id: str, owner: str | None = None) -> dict | None:
        job = self.get(job_id, with_spec=False, owner=owner)
        return status_fields(job, self.usage_of(job_id)) if job else None

    def get_by_idempotency_key(self, key: str, owner: str = DEFAULT_OWNER) -> JobRecord | None:
        return next((self._record(r) for r in self.rows.values()
                     if r["idempotency_key"] == key and r["owner"] == owner), None)

    def list_jobs(self, owner, where, after, limit):
        """SqlJobRepository.list_jobs over the dict (shared.list_sql's conditions, in Python)."""
        w = where
        rows = [r for r in self.rows.values() if r["owner"] == owner
                and (not w.statuses or r["status"].value in w.statuses)
                and all(r["labels"].get(k) == v for k, v in w.labels)
                and (w.external_ref is None or r["external_ref"] == w.external_ref)
                and (w.created_after is None or r["created_at"] >= w.created_after)
                and (w.created_before is None or r["created_at"] < w.created_before)
                and (after is None or (r["created_at"], r["id"]) < after)]
        rows.sort(key=lambda r: (r["created_at"], r["id"]), reverse=True)
        return [JobSummary(id=r["id"], status=r["status"].value, stage=r["stage"], progress=r["progress"],
                           labels=dict(r["labels"]), external_ref=r["external_ref"], created_at=r["created_at"],
                           updated_at=r["updated_at"], finished_at=r["finished_at"], error_code=r["error_code"],
                           error_message=r["error_message"]) for r in rows[:limit]]

    def list_stale(self, statuses, before, limit=100):
        rows = [r for r in self.rows.values() if r["status"] in statuses
                and (r["last_report_at"] or r["updated_at"]) < before]
        return [self._record(r) for r in sorted(rows, key=lambda r: (r["updated_at"], r["id"]))[:limit]]

    def touch(self, job_id: str) -> None:
        if job_id in self.rows:
            self.rows[job_id]["updated_at"] = self._now()

    def age(self, job_id: str, seconds: float) -> None:
        """Move every timestamp of the job `seconds` into the past (tests of reconcile and expiry)."""
        row = self.rows[job_id]
        for key in ("created_at", "updated_at", "last_report_at"):
            if row[key] is not None:
                row[key] -= timedelta(seconds=seconds)

    def create(self, *, spec, spec_sha256, status, uploads_expected, idempotency_key, job_id=None,
               owner=DEFAULT_OWNER, labels=None, external_ref=None, webhook_url=None):
        if self.fail_create is not None:
            raise self.fail_create
        if idempotency_key and (existing := self.get_by_idempotency_key(idempotency_key, owner)):
            return existing, False
        now = self._now()
        self.rows[job_id] = {
            "id": job_id, "owner": owner, "webhook_url": webhook_url, "status": JobStatus(status), "stage": None, "progress": 0.0, "spec": spec,
            "spec_sha256": spec_sha256, "idempotency_key": idempotency_key, "uploads_expected": list(uploads_expected),
            "execution_name": None, "execution_log_uri": None, "attempts": 0, "error_code": None,
            "error_message": None, "output": None, "created_at": now, "updated_at": now, "started_at": None,
            "finished_at": None, "last_report_at": None, "history": [(JobStatus(status).value, now)],
            "uploads": {}, "labels": dict(labels or {}), "external_ref": external_ref}
        return self.get(job_id), True

    def transition(self, job_id, target, *, sources=None, attempt=None, **values) -> bool:
        row = self.rows.get(job_id)
        allowed = sources if sources is not None else sources_for(target)
        if row is None or row["status"] not in allowed:
            return False
        if attempt is not None:
            if row["attempts"] > attempt + 1:
                return False
            values["attempts"] = max(row["attempts"], attempt + 1)
        if isinstance(values.get("error_message"), str):
            values["error_message"] = bounded(values["error_message"])
        now = self._now()
        row.update(values, status=JobStatus(target), updated_at=now)
        row["history"].append((JobStatus(target).value, now))
        return True

    def record_upload(self, job_id, name, generation, size_bytes, max_job_bytes=None) -> UploadRecorded:
        row = self.rows.get(job_id)
        if row is None or name not in row["uploads_expected"]:
            return UploadRecorded(False, False)
        have = row["uploads"].get(name)
        if have is None or int(generation) > int(have[0]):
            row["uploads"][name] = (str(generation), size_bytes)
        if row["status"] != JobStatus.AWAITING_UPLOAD:
            return UploadRecorded(True, False)
        sizes = [(n, b or 0) for n, (_, b) in row["uploads"].items()]
        problem = job_bytes_problem(sizes, max_job_bytes) if max_job_bytes is not None else None
        if problem and self.transition(job_id, JobStatus.FAILED, error_code=JOB_TOO_LARGE, error_message=problem,
                                       finished_at=utcnow()):
            return UploadRecorded(True, False, problem)
        if len(sizes) < len(row["uploads_expected"]):
            return UploadRecorded(True, False)
        return UploadRecorded(True, self.transition(job_id, JobStatus.QUEUED))

    def set_execution(self, job_id, execution_name, log_uri=None) -> None:
        self.rows[job_id].update(execution_name=execution_name, execution_log_uri=log_uri, updated_at=self._now())

    def record_usage(self, job_id, attempt, usage, task=("whole", 0)) -> None:
        spent = self.rows[job_id].setdefault("usage", {})
        key = (attempt, *task)  # the SQL repository's order: attempt, task role, task index
        spent[key] = merged(spent.get(key), usage)

    def usage_of(self, job_id):
        spent = self.rows.get(job_id, {}).get("usage", {})
        return [spent[k] for k in sorted(spent)]

    def report_progress(self, job_id, *, stage, progress, attempt) -> bool:
        row = self.rows.get(job_id)
        if row is None or row["status"] != JobStatus.RUNNING or row["attempts"] > attempt + 1:
            return False
        now = self._now()
        row.update(updated_at=now, last_report_at=now, attempts=max(row["attempts"], attempt + 1))
        if stage in _STAGE_RANK and _STAGE_RANK.get(row["stage"], -1) <= _STAGE_RANK[stage]:
            row["stage"] = stage
        if progress is not None and row["progress"] < progress:
            row["progress"] = progress
        return True


class FakeStorage:
    """The ObjectStorage port in a dict {(bucket, name): (data, content_type, metadata, generation)};
    signed URLs are plain strings naming object, method and download name."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], tuple[bytes, str, dict, int]] = {}
        self.deleted: list[tuple[str, str]] = []
        self._generation = 1000

    def signed_upload_url(self, bucket, name, content_type, ttl_s, max_bytes=None) -> SignedUrl:
        return SignedUrl(url=f"https://storage.test/{bucket}/{name}?put", method="PUT",
                         headers={"Content-Type": content_type,
                                  "x-goog-content-length-range": content_length_range(max_bytes)},
                         expires_at=datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc))

    def signed_download_url(self, bucket, name, ttl_s, filename=None) -> str:
        return f"https://storage.test/{bucket}/{name}?get&as={filename}"

    def upload_bytes(self, bucket, name, data, content_type, *, if_generation_match=None, metadata=None) -> int:
        if if_generation_match == 0 and (bucket, name) in self.objects:
            raise Conflict(f"gs://{bucket}/{name} already exists")
        self._generation += 1
        self.objects[(bucket, name)] = (bytes(data), content_type, dict(metadata or {}), self._generation)
        return self._generation

    def upload_file(self, bucket, name, path, content_type, *, if_generation_match=None, metadata=None) -> int:
        with open(path, "rb") as fh:
            return self.upload_bytes(bucket, name, fh.read(), content_type,
                                     if_generation_match=if_generation_match, metadata=metadata)

    def read_bytes(self, bucket, name) -> bytes:
        if (bucket, name) not in self.objects:
            raise NotFound(f"gs://{bucket}/{name} does not exist")
        return self.objects[(bucket, name)][0]

    def download_file(self, bucket, name, path) -> int:
        data = self.read_bytes(bucket, name)
        with open(path, "wb") as fh:
            fh.write(data)
        return len(data)

    def stat(self, bucket, name) -> ObjectInfo | None:
        if (bucket, name) not in self.objects:
            return None
        data, content_type, metadata, generation = self.objects[(bucket, name)]
        return ObjectInfo(bucket=bucket, name=name, size=len(data), generation=generation,
                          content_type=content_type, metadata=dict(metadata))

    def delete(self, bucket, name) -> bool:
        self.deleted.append((bucket, name))
        return self.objects.pop((bucket, name), None) is not None


class FailingStatusLauncher:
    """A launcher whose status() raises TransientError (Cloud Run unreachable); wraps another."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def status(self, execution_name):
        raise TransientError("Cloud Run unavailable (injected)")


class RecordingLauncher:
    """In-memory JobLauncher: records launched job ids (and each launch's task count), stitches and
    cancels; `fail_next` injects TransientErrors; `states` maps execution name -> ExecutionStatus
    (default running). Checks task and part counts as the real launchers do (shared.executions)."""

    def __init__(self, max_parts: int = MAX_TASKS) -> None:
        self.launched: list[str] = []
        self.parts: list[int] = []  # `parts` of each launch, in order
        self.task_counts: list[int] = []  # the task count each launch starts (render_task_count)
        self.stitched: list[tuple[str, int]] = []  # (job id, part count) of each launch_stitch
        self.floors: list[float | None] = []  # min_part_s of each launch (EXPORT_MIN_PART_S)
        self.stitch_floors: list[float | None] = []  # min_part_s of each launch_stitch
        self.cancelled: list[str] = []
        self.states: dict[str, ExecutionStatus] = {}
        self.fail_next = 0
        self.max_parts = max_parts

    def status(self, execution_name: str) -> ExecutionStatus:
        return self.states.get(execution_name, ExecutionStatus("running"))

    def cancel(self, execution_name: str) -> None:
        self.cancelled.append(execution_name)

    def launch(self, job_id: str, *, parts: int = 1, min_part_s: float | None = None) -> str:
        check_parts(parts, self.max_parts)
        render_env(job_id, parts, min_part_s)  # the same ValueError as the real launchers
        self._maybe_fail()
        self.floors.append(min_part_s)
        self.launched.append(job_id)
        self.parts.append(parts)
        self.task_counts.append(render_task_count(parts))
        return f"projects/local/locations/local/jobs/render/executions/exec-{len(self.launched)}"

    def launch_stitch(self, job_id: str, part_count: int, min_part_s: float | None = None) -> str:
        stitch_env(job_id, part_count, min_part_s)  # the same ValueError as the real launchers
        self._maybe_fail()
        self.stitch_floors.append(min_part_s)
        self.stitched.append((job_id, part_count))
        return f"projects/local/locations/local/jobs/stitch/executions/stitch-{len(self.stitched)}"

    def _maybe_fail(self) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise TransientError("run_job failed (injected)")


class RecordingPublisher:
    """In-memory Publisher: `messages` holds the published job ids in order; `fail_next` injects
    TransientErrors."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.fail_next = 0

    def publish(self, job_id: str) -> str:
        if self.fail_next:
            self.fail_next -= 1
            raise TransientError("publish failed (injected)")
        self.messages.append(job_id)
        return str(len(self.messages))
