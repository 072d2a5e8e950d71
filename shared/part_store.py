"""The SQL side of a parallel render (issue 19; shared.part_lifecycle): the part count K on the job
row, the pieces found in the output bucket (export_job_parts), each task's own attempt and progress
(export_job_tasks), the stitch's claim and the relaunch counters reconcile bounds. On the
repository's sessions (SQLite or PostgreSQL); a lost database is TransientError (shared.repository).

Every write is one conditional statement (or an upsert) whose row count or RETURNING says who won,
so concurrent deliveries of one event agree: exactly one claims the stitch.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from shared.artifacts import AUDIO_PART
from shared.clock import utcnow
from shared.models import ExportJob, ExportJobPart, ExportJobTask
from shared.parts import Pieces, job_stage, render_progress, stage_rank, stitch_progress
from shared.states import JobStatus

_ACTIVE = (JobStatus.DISPATCHED.value, JobStatus.RUNNING.value)


@dataclass(frozen=True)
class ParallelState:
    """A parallel render's bookkeeping on its job row: part_count K (None: a single-task export),
    the stitch's claim time and execution name, how often reconcile relaunched the parts and the
    stitch, and the part floor."""

    part_count: int | None
    stitch_claimed_at: datetime | None
    stitch_execution_name: str | None
    part_relaunches: int
    stitch_relaunches: int
    min_part_s: float | None = None  # the part floor K was cut with (EXPORT_MIN_PART_S); None: unknown


class SqlPartStore:
    """The PartStore port (shared.ports) in SQL."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        from shared.repository import _database_errors  # one mapping of connection errors

        with _database_errors(), self._sessions.begin() as session:
            yield session

    @staticmethod
    def _insert(s: Session):
        return pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert

    # -- the job row -----------------------------------------------------------------------------
    def set_part_count(self, job_id: str, parts: int, min_part_s: float | None = None) -> None:
        """Record K and the part floor it was cut with (dispatch, before the launch): NULL for one
        part (today's single task)."""
        with self._tx() as s:
            s.execute(update(ExportJob).where(ExportJob.id == job_id)
                      .values(part_count=parts if parts >= 2 else None,
                              min_part_s=min_part_s if parts >= 2 else None, updated_at=utcnow()))

    def claim_handoff(self, job_id: str, parts: int, attempt: int, seen_execution: str | None,
                      min_part_s: float | None = None) -> bool:
        """Claim the handoff of a whole-export render to a `parts`-part one (shared.part_lifecycle) with
        one conditional UPDATE: K set where none is, the job active, `attempt` not older than its
        current one, its execution still `seen_execution` (cleared: the claim's mark until the parts
        execution is recorded). Marks the job seen (last_report_at). True to the one winner."""
        now = utcnow()
        with self._tx() as s:
            r = s.execute(update(ExportJob).where(
                ExportJob.id == job_id, ExportJob.part_count.is_(None), ExportJob.status.in_(_ACTIVE),
                ExportJob.attempts <= attempt + 1, ExportJob.execution_name.is_not_distinct_from(seen_execution))
                .values(part_count=parts, min_part_s=min_part_s, execution_name=None, last_report_at=now,
                        updated_at=now))
            return r.rowcount == 1

    def release_handoff(self, job_id: str, parts: int, execution_name: str | None) -> None:
        """Give back a handoff claim whose launch failed: no K, the whole-export execution's name again."""
        with self._tx() as s:
            s.execute(update(ExportJob).where(ExportJob.id == job_id, ExportJob.part_count == parts,
                                              ExportJob.execution_name.is_(None))
                      .values(part_count=None, execution_name=execution_name, updated_at=utcnow()))

    def state(self, job_id: str) -> ParallelState | None:
        """The job's ParallelState, None when there is no such job."""
        with self._tx() as s:
            row = s.execute(select(ExportJob.part_count, ExportJob.stitch_claimed_at, ExportJob.stitch_execution_name,
                                   ExportJob.part_relaunches, ExportJob.stitch_relaunches, ExportJob.min_part_s)
                            .where(ExportJob.id == job_id)).first()
        if row is None:
            return None
        claimed = row[1] if row[1] is None or row[1].tzinfo else row[1].replace(tzinfo=timezone.utc)  # SQLite: naive
        return ParallelState(row[0], claimed, row[2], row[3] or 0, row[4] or 0, row[5])

    # -- pieces ----------------------------------------------------------------------------------
    def record_piece(self, job_id: str, index: int, generation: int, part_count: int, frames: int | None) -> Pieces:
        """Note piece `index` (AUDIO_PART: the audio) at `generation` (a newer generation replaces an
        older one: a retried task overwrote it; an older, late event changes nothing), lift the job's
        progress (its task is done), and return the job's pieces."""
        now = utcnow()
        with self._tx() as s:
            # the job row first: two pieces' events at once must count one after the other, else each
            # counts without the other's uncommitted row and neither starts the stitch (READ COMMITTED)
            s.execute(select(ExportJob.id).where(ExportJob.id == job_id).with_for_update())
            stmt = self._insert(s)(ExportJobPart).values(job_id=job_id, part_index=index, generation=generation,
                                                         part_count=part_count, frames=frames, recorded_at=now)
            t, new = ExportJobPart.__table__.c, stmt.excluded
            s.execute(stmt.on_conflict_do_update(
                index_elements=["job_id", "part_index"], where=t.generation < new.generation,
                set_={"generation": new.generation, "part_count": new.part_count, "frames": new.frames,
                      "recorded_at": new.recorded_at}))
            pieces = self._pieces(s, job_id)
            if pieces is not None:
                self._lift(s, job_id, render_progress(pieces, self._tasks(s, job_id)), None)
        return pieces if pieces is not None else Pieces(told=0)

    def drop_piece(self, job_id: str, index: int, generation: int) -> bool:
        """Un-count piece `index` as recorded at `generation` (reconcile found it gone or not valid;
        a piece finalized since, at a newer generation, stays). True when a row was removed."""
        with self._tx() as s:
            r = s.execute(delete(ExportJobPart).where(ExportJobPart.job_id == job_id, ExportJobPart.part_index == index,
                                                      ExportJobPart.generation == generation))
            return r.rowcount == 1

    def recorded(self, job_id: str) -> dict[int, int]:
        """{piece index: generation} of the job's counted pieces (AUDIO_PART: the audio)."""
        with self._tx() as s:
            rows = s.execute(select(ExportJobPart.part_index, ExportJobPart.generation)
                             .where(ExportJobPart.job_id == job_id)).all()
        return {i: g for i, g in rows}

    def pieces(self, job_id: str) -> Pieces | None:
        """The job's pieces (Pieces), None when the job is not a parallel render."""
        with self._tx() as s:
            return self._pieces(s, job_id)

    _pieces = staticmethod(lambda s, job_id: pieces_in(s, job_id))

    # -- task reports ----------------------------------------------------------------------------
    def report_task(self, job_id: str, role: str, index: int, attempt: int, stage: str | None,
                    progress: float | None, execution: str | None = None) -> int:
        """Note a running report of task (role, index) from `execution` (its short name; None: not
        named): its attempt (the highest seen in that execution: a report from another execution
        than the last one noted starts the count afresh, as Cloud Run numbers a relaunched
        execution's attempts from 0 again), its own stage and progress (the largest of its current
        attempt), then lift the running job's progress (shared.parts.render_progress /
        stitch_progress) and stage (never back: a late report of an ended execution moves neither
        back). Returns the task's current attempt: larger than `attempt` means the report came from
        an older attempt of the same execution and changed nothing."""
        now = utcnow()
        with self._tx() as s:
            stmt = self._insert(s)(ExportJobTask).values(job_id=job_id, role=role, task_index=index, attempt=attempt,
                                                         execution=execution, stage=stage, progress=progress or 0.0,
                                                         updated_at=now)
            t, new = ExportJobTask.__table__.c, stmt.excluded
            fresh = t.execution.is_distinct_from(new.execution) | (t.attempt < new.attempt)
            same = t.attempt == new.attempt
            current = s.execute(stmt.on_conflict_do_update(index_elements=["job_id", "role", "task_index"], set_={
                "attempt": case((fresh, new.attempt), else_=t.attempt),
                "execution": case((fresh, new.execution), else_=t.execution),
                "progress": case((fresh, new.progress), (same & (t.progress < new.progress), new.progress),
                                 else_=t.progress),
                "stage": case((fresh | same, new.stage), else_=t.stage),
                "updated_at": new.updated_at}).returning(ExportJobTask.attempt)).scalar_one()
            if current > attempt:
                return current
            if role == "stitch":
                value = stitch_progress(stage, progress)
            else:
                pieces = self._pieces(s, job_id)
                value = render_progress(pieces, self._tasks(s, job_id)) if pieces is not None else None
            self._lift(s, job_id, value, job_stage(role, stage), attempt)
            return current

    @staticmethod
    def _tasks(s: Session, job_id: str) -> dict[tuple[str, int], float]:
        rows = s.execute(select(ExportJobTask.role, ExportJobTask.task_index, ExportJobTask.progress)
                         .where(ExportJobTask.job_id == job_id)).all()
        return {(r, i): p for r, i, p in rows}

    @staticmethod
    def _lift(s: Session, job_id: str, progress: float | None, stage: str | None, attempt: int | None = None) -> None:
        """Raise the running job's progress to `progress` and its stage to `stage` (neither goes back);
        a report also marks the job seen (last_report_at) and its attempts as 1 + the highest task
        attempt."""
        now = utcnow()
        values: dict[str, Any] = {"updated_at": now}
        if progress is not None:
            values["progress"] = case((ExportJob.progress < progress, progress), else_=ExportJob.progress)
        if stage is not None:
            ranks = case(*((ExportJob.stage == name, stage_rank(name))
                           for name in ("preparing", "rendering", "stitching", "uploading")), else_=-1)
            values["stage"] = case((ranks <= stage_rank(stage), stage), else_=ExportJob.stage)
        if attempt is not None:
            values["last_report_at"] = now
            values["attempts"] = case((ExportJob.attempts < attempt + 1, attempt + 1), else_=ExportJob.attempts)
        s.execute(update(ExportJob).where(ExportJob.id == job_id, ExportJob.status == JobStatus.RUNNING.value)
                  .values(**values))

    # -- the stitch's claim and reconcile's relaunches -------------------------------------------
    def claim_stitch(self, job_id: str, relaunched_from: int | None = None) -> tuple[int, datetime] | None:
        """Claim the right to start the stitch of an active (dispatched/running) parallel job with one
        conditional UPDATE: the first claim needs no claim yet; reconcile's re-claim
        (relaunched_from = the stitch_relaunches it read) needs that count unchanged, and adds one.
        Returns (K, claimed_at) to the one winner, None to everyone else."""
        now = utcnow()
        where = [ExportJob.id == job_id, ExportJob.status.in_(_ACTIVE), ExportJob.part_count.is_not(None)]
        values: dict[str, Any] = {"stitch_claimed_at": now, "stitch_execution_name": None, "updated_at": now}
        if relaunched_from is None:
            where.append(ExportJob.stitch_claimed_at.is_(None))
        else:
            where.append(ExportJob.stitch_relaunches == relaunched_from)
            values["stitch_relaunches"] = relaunched_from + 1
        with self._tx() as s:
            won = s.execute(update(ExportJob).where(*where).values(**values).returning(ExportJob.part_count)).all()
        return (won[0][0], now) if len(won) == 1 else None

    def release_stitch(self, job_id: str, claimed_at: datetime) -> None:
        """Give up the claim made at `claimed_at` (its launch failed): the next delivery may claim."""
        with self._tx() as s:
            s.execute(update(ExportJob).where(ExportJob.id == job_id, ExportJob.stitch_claimed_at == claimed_at,
                                              ExportJob.stitch_execution_name.is_(None))
                      .values(stitch_claimed_at=None, updated_at=utcnow()))

    def set_stitch_execution(self, job_id: str, claimed_at: datetime, execution_name: str) -> bool:
        """Record the stitch execution started under the claim made at `claimed_at`, if the job is
        still active and the claim still stands. False: the execution is nobody's (cancel it)."""
        with self._tx() as s:
            r = s.execute(update(ExportJob).where(ExportJob.id == job_id, ExportJob.stitch_claimed_at == claimed_at,
                                                  ExportJob.status.in_(_ACTIVE))
                          .values(stitch_execution_name=execution_name, updated_at=utcnow()))
            return r.rowcount == 1

    def set_execution(self, job_id: str, execution_name: str, log_uri: str | None) -> bool:
        """Record a (re)launched parts execution as the job's if the job is still active (a cancel
        may have landed during the launch). False: the execution is nobody's (cancel it)."""
        with self._tx() as s:
            r = s.execute(update(ExportJob).where(ExportJob.id == job_id, ExportJob.status.in_(_ACTIVE))
                          .values(execution_name=execution_name, execution_log_uri=log_uri, updated_at=utcnow()))
            return r.rowcount == 1

    def count_part_relaunch(self, job_id: str, seen: int, undo: bool = False) -> bool:
        """Count one relaunch of the parts execution of an active job whose part_relaunches is still
        `seen`, and release the stitch's claim (pieces are missing: the finalize that completes them
        again claims a new stitch). undo=True: take back the count made from `seen`, its launch
        failed. True to the winner."""
        before, after = (seen + 1, seen) if undo else (seen, seen + 1)
        values: dict[str, Any] = {"part_relaunches": after, "updated_at": utcnow()}
        if not undo:
            values.update(stitch_claimed_at=None, stitch_execution_name=None)
        with self._tx() as s:
            r = s.execute(update(ExportJob).where(ExportJob.id == job_id, ExportJob.status.in_(_ACTIVE),
                                                  ExportJob.part_relaunches == before).values(**values))
            return r.rowcount == 1


def pieces_in(s: Session, job_id: str) -> Pieces | None:
    """The job's Pieces read in session `s` (also the status view's on SQLite), None when the job is
    not a parallel render."""
    told = s.execute(select(ExportJob.part_count).where(ExportJob.id == job_id)).scalar()
    if not told:
        return None
    rows = s.execute(select(ExportJobPart.part_index, ExportJobPart.part_count, ExportJobPart.frames)
                     .where(ExportJobPart.job_id == job_id)).all()
    video = {i: (k, f) for i, k, f in rows if i != AUDIO_PART}
    audio = next((k for i, k, _ in rows if i == AUDIO_PART), None)
    return Pieces(told=told, video=video, audio_k=audio)
