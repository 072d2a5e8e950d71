"""reconcile_exports' repairs of a parallel render (issue 19), mixed into shared.service.ExportService
(shared.reconcile calls _repair_parallel for a stale dispatched/running job with a part count).

- every piece in, no stitch claimed (its finalize's launch failed for good, or the event was lost),
  or claimed without an execution name for RECONCILE_STALE_AFTER_S (a crash between claim and
  record): the stitch is started, by the same conditional claim as a finalize;
- pieces missing and the parts execution no longer running (finished, failed, cancelled or
  vanished): the parts execution is started again, told the same K (tasks whose piece exists skip
  it), at most MAX_RELAUNCHES times; then the job fails naming the missing pieces;
- the stitch execution vanished, failed or ended without a video: the stitch is started again, at
  most MAX_RELAUNCHES times; then the job fails.
One relaunch per job per run: each is counted by a conditional UPDATE (shared.part_store), so two
concurrent reconcile runs relaunch once. Errors: TransientError (a launch or status call failed; the
counted relaunch is given back and the next run retries).
"""
from __future__ import annotations

from datetime import timedelta

from shared import logs
from shared.clock import utcnow
from shared.errors import TransientError
from shared.messages import listing
from shared.ports import JobRecord
from shared.states import JobStatus

MAX_RELAUNCHES = 2  # per execution kind of one export: a crash is retried by Cloud Run already


class PartRepairs:
    """The parallel-render repairs of ExportService (it provides settings, repo, launcher, parts,
    _start_stitch, _succeed_from_storage, _events, _execution_log_uri)."""

    def _repair_parallel(self, job: JobRecord) -> str | None:
        """Repair one stale parallel render (module docstring). Returns "relaunched", "succeeded",
        "failed", or None (still running, or another writer got there first)."""
        state = self.parts.state(job.id)
        pieces = self.parts.pieces(job.id)
        if state is None or pieces is None:
            return None
        if not pieces.complete():
            return self._repair_parts(job, state, pieces.missing())
        if state.stitch_claimed_at is None:  # (a) never claimed
            return "relaunched" if self._start_stitch(job.id) else None
        stale_before = utcnow() - timedelta(seconds=self.settings.reconcile_stale_after_s)
        if state.stitch_execution_name is None:
            if state.stitch_claimed_at >= stale_before:
                return None  # a finalize is launching it now
            what, reason = "was claimed but never started", None
        else:
            st = self.launcher.status(state.stitch_execution_name)
            if st.state == "running":
                return None
            if st.state == "succeeded" and self._succeed_from_storage(job.id):
                return "succeeded"
            what, reason = ("ended without a video" if st.state == "succeeded" else _ENDED.get(st.state, st.state),
                            st.reason)
        if state.stitch_relaunches < MAX_RELAUNCHES:
            started = self._start_stitch(job.id, state.stitch_relaunches)
            if started:
                logs.warning("reconcile relaunched the stitch", job_id=job.id, execution=started, reason=what)
            return "relaunched" if started else None
        return self._fail_parallel(job, "stitch_failed", f"the stitch execution {what}"
                                   + (f": {reason}" if reason else "")
                                   + f" ({state.stitch_relaunches} relaunches)")

    def _repair_parts(self, job: JobRecord, state, missing: list[str]) -> str | None:
        """Pieces `missing`: relaunch the parts execution if it ended (bounded), else fail the job."""
        if job.execution_name:
            st = self.launcher.status(job.execution_name)
            if st.state == "running":
                return None
            ended, reason = _ENDED.get(st.state, st.state), st.reason
        else:
            ended, reason = "was never recorded", None
        seen = state.part_relaunches
        if seen < MAX_RELAUNCHES:
            if not self.parts.count_part_relaunch(job.id, seen):
                return None
            try:
                execution = self.launcher.launch(job.id, parts=state.part_count)
            except TransientError:
                self.parts.count_part_relaunch(job.id, seen, undo=True)
                raise
            self.repo.set_execution(job.id, execution, self._execution_log_uri(execution))
            logs.warning("reconcile relaunched the parts execution", job_id=job.id, execution=execution,
                         missing=missing[:20], reason=ended)
            return "relaunched"
        return self._fail_parallel(job, "parts_missing", listing(
            f"the parts execution {ended}" + (f" ({reason})" if reason else "")
            + f" after {seen} relaunches; pieces never arrived: ", missing))

    def _fail_parallel(self, job: JobRecord, code: str, message: str) -> str | None:
        if not self.repo.transition(job.id, JobStatus.FAILED, error_code=code, error_message=message,
                                    finished_at=utcnow(), stage=None):
            return None
        self._events(job.id)
        logs.warning("reconcile failed a parallel export", job_id=job.id, code=code, reason=message[:300])
        return "failed"


_ENDED = {"failed": "failed", "cancelled": "was cancelled", "missing": "vanished",
          "succeeded": "ended without its pieces"}
