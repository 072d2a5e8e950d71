"""reconcile_exports' repairs of a parallel render (issue 19), mixed into shared.service.ExportService
(shared.reconcile calls _repair_parallel for a stale dispatched/running job with a part count).

First the counted pieces are synced with the bucket: every expected piece (parts 0..K-1, the audio) is
stat'd and judged by the finalize handler's rule (shared.part_lifecycle.piece_in); one present and
valid is counted (its finalize may have been lost), one absent or not valid is un-counted (the stitch
deleted it: a part that did not match the plan), and an audio cut for another k than the video
parts' is un-counted too. Then:
- every piece in, no stitch claimed (its finalize's launch failed for good, or the event was lost),
  or claimed without an execution name for RECONCILE_STALE_AFTER_S (a crash between claim and
  record): the stitch is started, by the same conditional claim as a finalize;
- pieces missing and the parts execution no longer running (finished, failed, cancelled or
  vanished): the parts execution is started again, told the same K and part floor (tasks whose
  piece exists skip it), and the stitch's claim is released (the finalize completing the set claims
  a new one), at most MAX_RELAUNCHES times; then the job fails naming the missing pieces;
- the stitch execution vanished, failed or ended without a video: the stitch is started again, at
  most MAX_RELAUNCHES times; then the job fails.
One relaunch per job per run: each is counted by a conditional UPDATE (shared.part_store), so two
concurrent reconcile runs relaunch once. Errors: TransientError (a launch or status call failed; the
counted relaunch is given back and the next run retries).
"""
from __future__ import annotations

from datetime import timedelta

from shared import logs
from shared.artifacts import AUDIO_PART, part_object
from shared.clock import utcnow
from shared.errors import TransientError
from shared.messages import listing
from shared.part_lifecycle import piece_in
from shared.parts import Pieces
from shared.ports import JobRecord
from shared.states import JobStatus

MAX_RELAUNCHES = 2  # per execution kind of one export: a crash is retried by Cloud Run already


class PartRepairs:
    """The parallel-render repairs of ExportService (it provides settings, repo, launcher, parts,
    storage, _start_stitch, _launch_render, _keep_or_cancel, _succeed_from_storage, _events,
    _execution_log_uri)."""

    def _repair_parallel(self, job: JobRecord) -> str | None:
        """Repair one stale parallel render (module docstring). Returns "relaunched", "succeeded",
        "failed", or None (still running, or another writer got there first)."""
        state = self.parts.state(job.id)
        if state is None or not state.part_count:
            return None
        pieces = self._sync_pieces(job.id, state.part_count)
        if pieces is None:
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
                execution = self._launch_render(job.id, state.part_count, state.min_part_s)
            except TransientError:
                self.parts.count_part_relaunch(job.id, seen, undo=True)
                raise
            if not self._keep_or_cancel(job.id, execution, self.parts.set_execution(
                    job.id, execution, self._execution_log_uri(execution)), "a relaunched parts execution"):
                return None
            logs.warning("reconcile relaunched the parts execution", job_id=job.id, execution=execution,
                         missing=missing[:20], reason=ended)
            return "relaunched"
        return self._fail_parallel(job, "parts_missing", listing(
            f"the parts execution {ended}" + (f" ({reason})" if reason else "")
            + f" after {seen} relaunches; pieces never arrived: ", missing))

    def _sync_pieces(self, job_id: str, told: int) -> Pieces | None:
        """Make the counted pieces those in the bucket (module docstring); returns them (None: the
        job is no parallel render). K + 1 stat calls."""
        recorded = self.parts.recorded(job_id)
        bucket = self.settings.output_bucket
        for index in [*range(told), AUDIO_PART]:
            info = self.storage.stat(bucket, part_object(job_id, index))
            piece, why = piece_in(info, job_id, index, told)
            if piece is not None and recorded.get(index) != info.generation:
                self.parts.record_piece(job_id, index, info.generation, piece[0], piece[1])
                logs.warning("reconcile counted a piece whose finalize was not", job_id=job_id, index=index)
            elif piece is None and index in recorded and self.parts.drop_piece(job_id, index, recorded[index]):
                logs.warning("reconcile un-counted a piece no longer in the bucket", job_id=job_id, index=index,
                             reason=why)
        pieces = self.parts.pieces(job_id)
        if pieces is not None and pieces.video and pieces.audio_k not in (None, pieces.count):
            generation = self.parts.recorded(job_id).get(AUDIO_PART)  # the stitch would refuse it
            if generation is not None and self.parts.drop_piece(job_id, AUDIO_PART, generation):
                logs.warning("reconcile un-counted an audio cut for another plan", job_id=job_id,
                             audio_parts=pieces.audio_k, parts=pieces.count)
                pieces = self.parts.pieces(job_id)
        return pieces

    def _fail_parallel(self, job: JobRecord, code: str, message: str) -> str | None:
        if not self.repo.transition(job.id, JobStatus.FAILED, error_code=code, error_message=message,
                                    finished_at=utcnow(), stage=None):
            return None
        self._events(job.id)
        logs.warning("reconcile failed a parallel export", job_id=job.id, code=code, reason=message[:300])
        return "failed"


_ENDED = {"failed": "failed", "cancelled": "was cancelled", "missing": "vanished",
          "succeeded": "ended without its pieces"}
