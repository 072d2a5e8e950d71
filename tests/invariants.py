"""Invariants every test that creates jobs checks at teardown (issue 14): a succeeded job has its
own video. `succeeded_without_their_video(outputs, stat)` lists the jobs that break it; the
fixtures in tests/integration/conftest.py and tests/system/conftest.py call it. The system tests'
stacks also check that every finished job a render task reported on has a cost (issue 18:
`finished_without_cost`).

Cheap: one SELECT of the succeeded jobs' outputs and one stat per such job.
"""
from __future__ import annotations

import json
from typing import Callable
from urllib.parse import quote

from shared.ports import ObjectInfo


def succeeded_without_their_video(outputs: dict[str, dict | None],
                                  stat: Callable[[str], ObjectInfo | None]) -> dict[str, str]:
    """{job id: problem} for succeeded jobs whose output video is missing, empty, or lacks
    custom metadata job-id equal to the job. outputs: JobRepository.succeeded_outputs();
    stat(object name): the output bucket's object, or None."""
    problems = {}
    for job_id, output in outputs.items():
        name = (output or {}).get("object")
        info = stat(name) if name else None
        if info is None:
            problems[job_id] = f"no video object ({name!r})"
        elif info.metadata.get("job-id") != job_id:
            problems[job_id] = f"{name} has job-id {info.metadata.get('job-id')!r}"
        elif info.size <= 0:
            problems[job_id] = f"{name} is empty"
    return problems


def check_service(service) -> None:
    """Assert the invariant for an ExportService (its repository and storage)."""
    bucket = service.settings.output_bucket
    bad = succeeded_without_their_video(service.repo.succeeded_outputs(),
                                        lambda name: service.storage.stat(bucket, name))
    assert not bad, f"succeeded jobs without their own video: {bad}"


def emulator_stat(emulator_url: str, bucket: str) -> Callable[[str], ObjectInfo | None]:
    """stat(name) through a storage emulator's JSON API (gcp-storage-emulator, fake-gcs-server)."""
    import requests

    def stat(name: str) -> ObjectInfo | None:
        r = requests.get(f"{emulator_url.rstrip('/')}/storage/v1/b/{bucket}/o/{quote(name, safe='')}", timeout=10)
        if r.status_code == 404:
            return None
        r.raise_for_status()
        obj = json.loads(r.text)
        return ObjectInfo(bucket=bucket, name=name, size=int(obj.get("size") or 0),
                          generation=int(obj.get("generation") or 0), metadata=dict(obj.get("metadata") or {}))
    return stat


def finished_without_cost(engine) -> list[str]:
    """Ids of succeeded, failed or canceled jobs that were `running` (a render task reported, and every
    report carries its usage) but have no positive vCPU-seconds (shared.cost)."""
    from sqlalchemy import func, select

    from shared.models import ExportJob, ExportJobEvent, ExportJobUsage

    ran = select(ExportJobEvent.job_id).where(ExportJobEvent.status == "running")
    spent = (select(ExportJobUsage.job_id, func.sum(ExportJobUsage.vcpu_s).label("vcpu_s"))
             .group_by(ExportJobUsage.job_id).subquery())
    with engine.connect() as c:
        return list(c.execute(select(ExportJob.id).outerjoin(spent, spent.c.job_id == ExportJob.id).where(
            ExportJob.status.in_(["succeeded", "failed", "canceled"]), ExportJob.id.in_(ran),
            func.coalesce(spent.c.vcpu_s, 0) <= 0)).scalars())


def check_stack(stack) -> None:
    """Assert the invariant for a started infra.local.stack Stack (its database and storage emulator)."""
    from shared.bootstrap import build_repository
    from shared.db import engine_for_url

    engine = engine_for_url(stack.env["DATABASE_URL"])
    try:
        outputs = build_repository(engine).succeeded_outputs()
        no_cost = finished_without_cost(engine)
    finally:
        engine.dispose()
    bad = succeeded_without_their_video(outputs, emulator_stat(stack.env["STORAGE_EMULATOR_HOST"],
                                                               stack.output_bucket))
    assert not bad, f"succeeded jobs without their own video: {bad}"
    assert not no_cost, f"finished jobs a render task reported on, without a cost: {no_cost}"
