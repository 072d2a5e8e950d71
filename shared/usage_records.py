"""The job repository's usage records (export_job_usage): one row per render task attempt (task: its
role and index, so a parallel render's part, audio and stitch tasks each count; today's single task
is WHOLE_TASK), each
amount the largest any report of that attempt carried (shared.cost.merged, done by the database in
one upsert), so a duplicate, late or out-of-order report never counts twice. A mixin of
shared.repository.SqlJobRepository (its `_tx`); the arithmetic is shared.cost's.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import case, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from shared.clock import utcnow
from shared.cost import AttemptUsage
from shared.models import ExportJobUsage

_AMOUNTS = ("wall_s", "cpu_s", "vcpu_s", "gib_s")
WHOLE_TASK = ("whole", 0)  # (role, index) of today's single task rendering the whole export


class UsageRecords:
    """record_usage / usage_of of the JobRepository port (shared.ports)."""

    _tx: Any  # SqlJobRepository._tx

    def record_usage(self, job_id: str, attempt: int, usage: AttemptUsage,
                     task: tuple[str, int] = WHOLE_TASK) -> None:
        """Note the usage so far of attempt `attempt` of `task` (role, index): each amount becomes the
        larger of the stored one and `usage`'s (INSERT ... ON CONFLICT DO UPDATE: concurrent reports of
        one attempt cannot lose one)."""
        values = dict(zip(_AMOUNTS, (float(v) for v in usage)), job_id=job_id, attempt=attempt, updated_at=utcnow(),
                      task_role=task[0], task_index=task[1])
        with self._tx() as s:
            insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
            stmt = insert(ExportJobUsage).values(**values)
            table, new = ExportJobUsage.__table__.c, stmt.excluded
            larger = {name: case((table[name] < new[name], new[name]), else_=table[name]) for name in _AMOUNTS}
            s.execute(stmt.on_conflict_do_update(index_elements=["job_id", "task_role", "task_index", "attempt"],
                                                 set_={**larger, "updated_at": new.updated_at}))

    def usage_of(self, job_id: str) -> list[AttemptUsage]:
        """The job's usage per task attempt, in (attempt, task role, task index) order (the status
        view's SQL adds in the same order); empty when no task has reported any."""
        with self._tx(read_only=True) as s:
            rows = s.execute(select(*(getattr(ExportJobUsage, n) for n in _AMOUNTS))
                             .where(ExportJobUsage.job_id == job_id)
                             .order_by(ExportJobUsage.attempt, ExportJobUsage.task_role, ExportJobUsage.task_index)
                             ).all()
        return [AttemptUsage(*row) for row in rows]
