"""reconcile_exports: repair what at-least-once delivery and crashes leave behind, and the upload
expiry rule export_status applies when it reads a job. Mixed into shared.service.ExportService (it
uses the service's ports, settings and its _publish and object_finalized).

Errors: a repair that raises TransientError is deferred to the next run; see reconcile().
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable

from shared import logs
from shared.artifacts import video_object
from shared.clock import utcnow
from shared.errors import InvalidRequest, TransientError
from shared.messages import bounded, listing
from shared.part_repairs import PartRepairs
from shared.ports import JobRecord
from shared.states import JobStatus


class Reconcile(PartRepairs):
    """The repair use cases of ExportService (a parallel render's: shared.part_repairs)."""

    # -- reconcile_exports ---------------------------------------------------------------------
    def reconcile(self, now: datetime | None = None) -> dict:
        """Repair what at-least-once delivery and crashes leave behind (Cloud Scheduler calls it).

        - queued longer than RECONCILE_QUEUED_AFTER_S: published again (a publish lost after commit);
        - dispatched/running with no report for RECONCILE_STALE_AFTER_S: the launcher is asked; a
          failed, cancelled or vanished execution fails the job with its reason; a succeeded one
          whose finalize was lost succeeds the job from the video's metadata, else fails it; a parallel
          render is repaired by shared.part_repairs (stitch never started or lost, pieces missing:
          relaunched, bounded) and counted as relaunched;
        - awaiting_upload longer than EXPORT_UPLOAD_TTL_S: failed, naming the missing uploads.
        Each job is repaired on its own. One whose repair raises TransientError (e.g. its execution's
        status lookup failed) is logged, counted as deferred and left as it is for the next run; one
        that raises anything else is logged, counted as skipped and touched, so that the next runs
        list the jobs behind it first (list_stale: at most 100, least recently touched first). Only
        a failed listing ends the run with TransientError (503; Cloud Scheduler retries, every step is
        idempotent). Webhook events still in the outbox a minute after their transition are published
        (shared.webhooks.republish_events). Returns counts: {republished, failed, succeeded, checked,
        skipped, deferred}, and relaunched / eventsRepublished when there were any.
        """
        now = now or utcnow()
        s = self.settings
        counts = {"republished": 0, "failed": 0, "succeeded": 0, "checked": 0, "skipped": 0, "deferred": 0}

        def isolated(job_id: str, repair: Callable[[], str | None]) -> None:
            try:
                outcome = repair()
            except TransientError as exc:  # this job's dependency failed: the next run tries it again
                logs.warning("reconcile deferred an export: a dependency failed", job_id=job_id,
                             reason=exc.message[:300])
                counts["deferred"] += 1
                return
            except Exception as exc:  # noqa: BLE001 - one job's permanent problem must not block the rest
                logs.error("reconcile skipped an export it could not repair", job_id=job_id,
                           error=type(exc).__name__, reason=str(exc)[:300])
                counts["skipped"] += 1
                try:
                    self.repo.touch(job_id)  # to the back of the stale list: the jobs behind it get their turn
                except TransientError:
                    pass  # still skipped; it is only looked at again first
                return
            if outcome:
                counts[outcome] = counts.get(outcome, 0) + 1

        def republish(job_id: str) -> str:
            self._publish(job_id)
            self.repo.touch(job_id)
            return "republished"

        for job in self.repo.list_stale([JobStatus.QUEUED], now - timedelta(seconds=s.reconcile_queued_after_s)):
            isolated(job.id, lambda job=job: republish(job.id))
        stale = self.repo.list_stale([JobStatus.DISPATCHED, JobStatus.RUNNING],
                                     now - timedelta(seconds=s.reconcile_stale_after_s))
        for job in stale:
            counts["checked"] += 1
            isolated(job.id, lambda job=job: self._repair_stale(job))
        for job in self.repo.list_stale([JobStatus.AWAITING_UPLOAD], now - timedelta(seconds=s.upload_ttl_s)):
            isolated(job.id, lambda job=job: "failed" if self._expire_uploads(
                job.id, job.uploads_expected, job.uploads_received) else None)
        # webhook events a crash left in the outbox (shared.webhooks); a minute old: not one in flight
        try:
            if published := self.republish_events(now - timedelta(seconds=60)):
                counts["eventsRepublished"] = published
        except TransientError as exc:
            logs.warning("reconcile deferred the webhook outbox", reason=exc.message[:300])
        logs.info("reconcile done", **counts)
        return counts

    def _repair_stale(self, job: JobRecord) -> str | None:
        """Ask the launcher about a stale dispatched/running job: "succeeded" or "failed" when it
        was moved there, None when it is still running or another writer got there first."""
        if job.part_count and self.parts is not None:
            return self._repair_parallel(job)
        if not job.execution_name:
            reason = "no execution was recorded for this job"
            state = "missing"
        else:
            st = self.launcher.status(job.execution_name)
            state, reason = st.state, st.reason
        if state == "running":
            return None
        if state == "succeeded" and self._succeed_from_storage(job.id):
            return "succeeded"
        message = {"failed": "the render execution failed", "cancelled": "the render execution was cancelled",
                   "missing": "the render execution vanished",
                   "succeeded": "the render execution ended without publishing a video"}.get(state, state)
        if self.repo.transition(job.id, JobStatus.FAILED, error_code=f"execution_{state}",
                                error_message=f"{message}: {reason}" if reason else message,
                                finished_at=utcnow(), stage=None):
            self._events(job.id)
            logs.warning("reconcile failed a stale export", job_id=job.id, execution=job.execution_name,
                         state=state, reason=reason and bounded(reason))
            return "failed"
        return None

    def _expire_uploads(self, job_id: str, expected: list[str], received: list[str]) -> bool:
        """Fail an awaiting_upload job whose uploads did not all arrive in time (upload_expired)."""
        missing = [n for n in expected if n not in received]
        if not self.repo.transition(job_id, JobStatus.FAILED, error_code="upload_expired",
                                    error_message=listing("uploads never arrived: ", missing),
                                    finished_at=utcnow()):
            return False
        self._events(job_id)
        return True

    def _expire_if_due(self, job_id: str, view: dict) -> bool:
        """Expire the awaiting_upload job of status view `view` once EXPORT_UPLOAD_TTL_S has passed
        since its last update (reconcile's rule, applied when it is read)."""
        since = datetime.fromisoformat(view["updatedAt"].replace("Z", "+00:00"))
        if (utcnow() - since).total_seconds() <= self.settings.upload_ttl_s:
            return False
        uploads = view.get("uploads") or {}
        return self._expire_uploads(job_id, uploads.get("expected") or [], uploads.get("received") or [])

    def _succeed_from_storage(self, job_id: str) -> bool:
        """Succeed a job from its video object (uploaded last) when its finalize event was lost."""
        job = self.repo.get(job_id)
        if job is None:
            return False
        name = video_object(job_id, (job.spec or {}).get("title"))
        info = self.storage.stat(self.settings.output_bucket, name)
        if info is None or info.metadata.get("job-id") != job_id:
            return False
        try:
            return self.object_finalized(self.settings.output_bucket, name, info.generation, info.size,
                                         info.metadata) == "succeeded"
        except InvalidRequest as exc:  # e.g. non-finite metadata: the video cannot complete the job
            logs.warning("video found but not usable", job_id=job_id, object=name, reason=exc.message)
            return False
