"""The lifecycle of a parallel render (issue 19), mixed into shared.service.ExportService: dispatch's
part count, the reports of part, audio and stitch tasks, the pieces' finalize events that start the
stitch, and the clean-up of the pieces. Its SQL is shared.part_store (the service's `parts`; None:
every export renders as one task, today's path).

Shapes: a report's task is shared.worker_report.ReportTask {role: part|audio|stitch, index}; a piece is an
object of shared.artifacts (parts/{jobId}/part-{i:04d}.mp4, parts/{jobId}/audio.m4a) whose custom
metadata names the job, its index and k (part_from_metadata). K (export_jobs.part_count) is what the
render execution was told, an upper bound: the plan cuts k <= K parts and every piece names k.
Errors: InvalidRequest (400), Conflict (409: the task stops), TransientError (redelivery).
"""
from __future__ import annotations

from typing import Any

from shared import api, cost, logs
from shared.worker_report import CompleteReport, ErrorBody, ReportOutput
from shared.artifacts import (AUDIO_PART, event_generation, object_not_current, parse_part_object, part_from_metadata,
                              part_object)
from shared.clock import utcnow
from shared.errors import Conflict, InvalidRequest, TransientError
from shared.parts import planned_parts
from shared.ports import JobRecord
from shared.report_output import checked_output
from shared.states import JobStatus, is_terminal

ACTIVE = frozenset({JobStatus.DISPATCHED, JobStatus.RUNNING})


def piece_in(info: Any, job_id: str, index: int, told: int,
             min_generation: int = 0) -> tuple[tuple[int, int | None] | None, str | None]:
    """Whether `info` (piece `index` of `job_id` as stat'd now; None: absent) counts for a render
    told K=`told`: ((k, frames or None), None) when it does, else (None, why). The one rule of the
    finalize handler and of reconcile's sync (shared.part_repairs)."""
    piece = part_from_metadata(info, job_id, index)
    why = object_not_current(info, min_generation) or (
        "not this piece (metadata)" if piece is None else
        f"it names {piece[0]} parts, more than the {told} told" if piece[0] > told else None)
    return (None, why) if why else (piece, None)


def task_label(role: str, index: int) -> str:
    """A task as messages name it: "part 3", "the audio task", "the stitch"."""
    return {"part": f"part {index}", "audio": "the audio task", "stitch": "the stitch"}.get(role, role)


class PartLifecycle:
    """The parallel-render use cases of ExportService (it provides settings, repo, storage, launcher,
    parts, _succeed, _events, _progress_event, _execution_log_uri)."""

    parts: Any  # shared.part_store.SqlPartStore, or None

    # -- dispatch ----------------------------------------------------------------------------------
    def _dispatch_parts(self, job_id: str) -> int:
        """K for the render execution of a claimed job, recorded on its row before the launch (a
        task's first report may come before the launch returns): 1 below RENDER_PARALLEL_AFTER_S
        (shared.parts.planned_parts, from the spec's length at its least) or without a part store."""
        if self.parts is None:
            return 1
        s = self.settings
        job = self.repo.get(job_id)
        try:
            k = planned_parts(job.spec or {}, s.render_parallel_after_s, s.render_max_parts, s.render_min_part_s)
        except InvalidRequest:  # accepted at start, so not expected: the render job reports the problem
            k = 1
        self.parts.set_part_count(job_id, k, s.render_min_part_s)
        return k

    def _launch_render(self, job_id: str, parts: int, min_part_s: float | None = None) -> str:
        """Start the render execution of `parts` parts: one part is today's request exactly; K >= 2
        sends the part floor K was cut with (min_part_s; default RENDER_MIN_PART_S, what dispatch and
        the handoff record with K) so every task and the stitch cut alike (EXPORT_MIN_PART_S)."""
        if parts < 2:
            return self.launcher.launch(job_id, parts=parts)
        floor = self.settings.render_min_part_s if min_part_s is None else min_part_s
        return self.launcher.launch(job_id, parts=parts, min_part_s=floor)

    def _keep_or_cancel(self, job_id: str, execution: str, recorded: bool, what: str) -> bool:
        """After a launch: `recorded` says whether the conditional record of `execution` on the
        still-active job (its claim standing) took. If not, the job ended (a cancel, a failure) or the
        claim passed on while it launched: the just-launched execution is nobody's and is cancelled
        (a failure is logged: its tasks stop at their first report, which gets 409). Returns recorded."""
        if recorded:
            return True
        logs.warning(f"{what} launched for an export that ended meanwhile (or under a claim since replaced); "
                     "cancelling it", job_id=job_id, execution=execution)
        try:
            self.launcher.cancel(execution)
        except TransientError as exc:
            logs.warning("could not cancel the execution; it will stop at its next report", job_id=job_id,
                         execution=execution, reason=exc.message)
        return False

    # -- export_complete of the whole-export task: the handoff ------------------------------------
    def _handoff(self, job: JobRecord, report: CompleteReport) -> dict:
        """A whole-export task's report (current attempt, active job) that asks for a handoff or whose
        job has a part count. Once K is set the K-part render owns the export: Conflict (stop) for
        every whole-export report, except while a handoff is being launched (K set, no execution
        recorded yet): not applied, the task renders on until the launch is known. Else the handoff
        {parts: K} (K capped at RENDER_MAX_PARTS; below 2 or no part store: not applied, the task
        renders): claimed once (shared.part_store.claim_handoff), launched told K, the parts
        execution recorded as the job's; returns {..., applied: True, handoff: {parts: K}}. A failed
        launch gives the claim back and raises (the task then renders the export itself)."""
        def answer(applied: bool, **extra: Any) -> dict:
            return {"jobId": job.id, "status": job.status.value, "applied": applied, **extra}

        if job.part_count:
            if job.execution_name is None:  # a handoff being launched (or a dispatch of parts)
                return answer(False)
            raise Conflict(f"export {job.id} is rendered in {job.part_count} parts now; this task stops")
        if report.status != "running":
            raise InvalidRequest("a handoff is asked with a running report",
                                 details=[{"path": "status", "message": "must be running with handoff"}])
        k = min(report.handoff.parts, self.settings.render_max_parts)
        if self.parts is None or k < 2:
            return answer(False)
        if not self.parts.claim_handoff(job.id, k, report.attempt, job.execution_name, self.settings.render_min_part_s):
            current = self.repo.get(job.id, with_spec=False)  # terminal, older attempt, or another claim won
            if current is None or is_terminal(current.status) or report.attempt + 1 < current.attempts:
                raise Conflict(f"export {job.id} is no longer this task's; stop rendering")
            job = current
            return self._handoff(current, report) if current.part_count else answer(False)
        try:
            execution = self._launch_render(job.id, k)
        except BaseException:
            self.parts.release_handoff(job.id, k, job.execution_name)
            logs.warning("handoff launch failed: the whole-export task renders it", job_id=job.id, parts=k)
            raise
        if self._keep_or_cancel(job.id, execution, self.parts.set_execution(
                job.id, execution, self._execution_log_uri(execution)), "a handoff's parts execution"):
            logs.info("export handed over to a parallel render", job_id=job.id, parts=k, execution=execution,
                      replaces=job.execution_name)
        return answer(True, handoff={"parts": k})

    # -- export_complete of a task of a parallel render ------------------------------------------
    def _task_report(self, job: JobRecord, report: CompleteReport, output: ReportOutput | None) -> dict:
        """Apply a report of one task of `job` (active, parallel): the attempt rule per task (a
        report from an older attempt of the same task: Conflict, stop rendering; other tasks'
        attempts do not matter); running: the task's own progress, lifting the job's; failed (part,
        audio or stitch): the job fails with the task's message and its executions are cancelled;
        succeeded: only the stitch, with the output as a single task's."""
        task = report.task
        k = job.part_count
        expected = {"part": range(k), "audio": range(k, k + 1), "stitch": range(1)}[task.role]
        if task.index not in expected:
            raise InvalidRequest(f"task index {task.index} is not a {task.role} task of this {k}-part render",
                                 details=[{"path": "task.index", "message": f"must be in {expected.start}.."
                                                                           f"{expected.stop - 1}"}])
        if report.status == "succeeded" and task.role != "stitch":
            raise InvalidRequest(f"{task_label(task.role, task.index)} never reports succeeded: the upload "
                                 "of its piece ends it", details=[{"path": "status", "message": "running or failed"}])
        if report.status == "succeeded" and output is None:
            raise InvalidRequest("a succeeded report needs output",
                                 details=[{"path": "output", "message": "required when status is succeeded"}])
        started = report.status == "running" and self.repo.transition(job.id, JobStatus.RUNNING, started_at=utcnow())
        stage = report.stage if report.status == "running" else None
        current = self.parts.report_task(job.id, task.role, task.index, report.attempt, stage,
                                         report.progress if report.status == "running" else None, task.execution)
        if current > report.attempt:
            raise Conflict(f"this report is from attempt {report.attempt} of {task_label(task.role, task.index)} "
                           f"but it is at attempt {current}"
                           + (f" of execution {task.execution}" if task.execution else "") + "; stop rendering")
        if report.status == "running":
            applied = True
            if not started:
                self._progress_event(job.id)
        elif report.status == "succeeded":
            applied = self._succeed(job.id, checked_output(self.storage, self.settings, job.id, output))
        else:
            err = report.error or ErrorBody(code="render_failed", message=f"{task_label(task.role, task.index)} failed")
            applied = self.repo.transition(job.id, JobStatus.FAILED, sources=ACTIVE, stage=None, finished_at=utcnow(),
                                           error_code=api.clean_text(err.code, 64),
                                           error_message=api.clean_text(err.message))
            if applied:
                logs.warning("export failed", job_id=job.id, task=f"{task.role} {task.index}", code=err.code,
                             reason=err.message)
                self._cancel_executions(job.id, job.execution_name)  # the other tasks stop now
        self._events(job.id)
        current_job = self.repo.get(job.id, with_spec=False)
        return {"jobId": job.id, "status": current_job.status.value if current_job else None, "applied": applied}

    # -- on_object_finalized of a piece ------------------------------------------------------------
    def _piece_finalized(self, bucket: str, name: str, generation: Any) -> str:
        """Count a piece (the object is stat'd: the event is not trusted) and start the stitch when
        it completes the set. Returns "part" (counted), "stitching" (this call started the stitch),
        "duplicate" (the job is not active) or "ignored". Raises TransientError (the stitch's launch
        failed: its claim is released, so the redelivery retries)."""
        job_id, index = parse_part_object(name)
        job = self.repo.get(job_id, with_spec=False)
        if job is None or not job.part_count or self.parts is None:
            logs.warning("finalize of a piece of no parallel render", bucket=bucket, object=name)
            return "ignored"
        if job.status not in ACTIVE:
            return "duplicate"
        info = self.storage.stat(bucket, name)
        piece, why = piece_in(info, job_id, index, job.part_count, event_generation(generation))
        if why:
            logs.warning("piece finalize ignored", job_id=job_id, object=name, reason=why)
            return "ignored"
        pieces = self.parts.record_piece(job_id, index, info.generation, piece[0], piece[1])
        if not pieces.complete():
            return "part"
        return "stitching" if self._start_stitch(job_id) else "part"

    def _start_stitch(self, job_id: str, relaunched_from: int | None = None) -> str | None:
        """Claim the stitch (one conditional UPDATE: one winner among concurrent callers; reconcile's
        re-claim: relaunched_from, shared.part_store.claim_stitch) and launch it told K. Returns the
        execution name, None when the claim was lost. Raises TransientError, the claim released."""
        claim = self.parts.claim_stitch(job_id, relaunched_from)
        if claim is None:
            return None
        told, claimed_at = claim
        state = self.parts.state(job_id)
        floor = state.min_part_s if state is not None else None
        try:
            execution = self.launcher.launch_stitch(job_id, told, **({"min_part_s": floor} if floor else {}))
        except TransientError:
            self.parts.release_stitch(job_id, claimed_at)
            raise
        if not self._keep_or_cancel(job_id, execution, self.parts.set_stitch_execution(job_id, claimed_at, execution),
                                    "a stitch"):
            return None
        logs.info("stitch execution started", job_id=job_id, execution=execution, parts=told)
        return execution

    # -- cancel, clean-up --------------------------------------------------------------------------
    def _cancel_executions(self, job_id: str, execution_name: str | None) -> None:
        """Ask the launcher to stop the job's render execution and, for a parallel render, its stitch
        (a failure is logged: the tasks stop at their next report, which gets 409)."""
        state = self.parts.state(job_id) if self.parts is not None else None
        for name in (execution_name, state and state.stitch_execution_name):
            if not name:
                continue
            try:
                self.launcher.cancel(name)
            except TransientError as exc:
                logs.warning("could not cancel the execution; it will stop at its next report", job_id=job_id,
                             execution=name, reason=exc.message)

    def _delete_pieces(self, job_id: str) -> int:
        """Delete a succeeded parallel render's pieces (best effort: what is left goes with the output
        bucket's lifecycle rule on parts/, PARTS_TTL_DAYS). Returns how many were deleted."""
        state = self.parts.state(job_id) if self.parts is not None else None
        if state is None or not state.part_count:
            return 0
        deleted = 0
        for index in [*range(state.part_count), AUDIO_PART]:
            try:
                deleted += bool(self.storage.delete(self.settings.output_bucket, part_object(job_id, index)))
            except Exception as exc:  # noqa: BLE001 - the export succeeded; the lifecycle rule cleans up
                logs.warning("could not delete a piece", job_id=job_id, index=index, error=type(exc).__name__)
        return deleted

    def _record_task_usage(self, job_id: str, report: CompleteReport) -> None:
        """Note a report's usage for its task and attempt (every task's attempts count)."""
        u = report.usage
        task = (report.task.role, report.task.index) if report.task else ("whole", 0)
        self.repo.record_usage(job_id, report.attempt, cost.billed(u.wall_s, u.cpu_s, u.vcpu, u.memory_gib), task)
