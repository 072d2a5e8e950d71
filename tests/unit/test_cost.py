"""An export's cost (shared.cost): the arithmetic, and its accumulation through ExportService.complete
over attempts, duplicate, late and refused reports (in-memory fakes; the SQL upsert is compared in
tests/integration/test_repository.py)."""
from __future__ import annotations

import pytest

from shared.config import Settings
from shared.cost import AttemptUsage, billed, cost_view, merged, totals
from shared.errors import Conflict, InvalidRequest
from shared.service import ExportService
from tests.fakes import FakeRepository, FakeStorage, RecordingLauncher, RecordingPublisher

COLOR_SPEC = {"scenes": [{"id": "c", "visual": {"type": "color"}, "duration": 3}]}


def usage(wall_s, cpu_s=1.0, vcpu=4, memory_gib=8.0) -> dict:
    return {"wallS": wall_s, "cpuS": cpu_s, "vcpu": vcpu, "memoryGib": memory_gib}


@pytest.fixture
def svc() -> ExportService:
    settings = Settings(worker_token="t", price_vcpu_second_usd=0.00002, price_gib_second_usd=0.0000025,
                        price_source="test prices")
    return ExportService(settings=settings, repo=FakeRepository(), storage=FakeStorage(),
                         publisher=RecordingPublisher(), launcher=RecordingLauncher())


def dispatched(svc) -> str:
    job_id = svc.start({"spec": COLOR_SPEC}).body["jobId"]
    svc.dispatch(job_id)
    return job_id


def report(svc, job_id, attempt, wall_s, status="running", cpu_s=1.0):
    body = {"jobId": job_id, "status": status, "attempt": attempt, "usage": usage(wall_s, cpu_s)}
    if status == "running":
        body.update(stage="rendering", progress=0.5)
    if status == "failed":
        body["error"] = {"code": "render_failed", "message": "no"}
    return svc.complete(body)


def test_billed_is_allocation_times_wall_time_and_attempts_add_up():
    a = billed(wall_s=10.0, cpu_s=31.5, vcpu=4, memory_gib=8)
    assert a == AttemptUsage(wall_s=10.0, cpu_s=31.5, vcpu_s=40.0, gib_s=80.0)
    assert billed(2.5, 0.1, 0.5, 0.5) == AttemptUsage(2.5, 0.1, 1.25, 1.25)  # a fractional vCPU
    assert merged(None, a) == a
    assert merged(a, billed(4.0, 40.0, 4, 8)) == AttemptUsage(10.0, 40.0, 40.0, 80.0)  # each amount's largest
    assert totals([a, billed(5.0, 2.0, 4, 8)]) == (60.0, 120.0, 33.5)
    assert totals([]) == (0.0, 0.0, 0.0)


def test_the_cost_view_prices_the_sums():
    view = cost_view({"vcpuSeconds": 100, "gibSeconds": 200.0, "cpuSeconds": 75.12345}, 0.000018, 0.000002, "p")
    assert view == {"vcpuSeconds": 100.0, "gibSeconds": 200.0, "cpuSeconds": 75.123,
                    "estimatedUsd": 0.0022,  # 100 x 0.000018 + 200 x 0.000002
                    "pricing": {"vcpuSecondUsd": 0.000018, "gibSecondUsd": 0.000002, "source": "p"}}
    assert "source" not in cost_view({}, 0.0, 0.0, "")["pricing"]
    assert cost_view({}, 0.0, 0.0, None)["estimatedUsd"] == 0.0


def test_reports_of_one_attempt_count_once_and_attempts_add_up(svc):
    job_id = dispatched(svc)
    for wall in (1.0, 3.0, 3.0, 2.0):  # cumulative; a duplicate and an out-of-order one change nothing
        report(svc, job_id, 0, wall)
    assert svc.status(job_id)["cost"]["vcpuSeconds"] == 12.0  # 4 vCPUs x 3 s
    report(svc, job_id, 1, 5.0, cpu_s=4.0)  # a retry: its own attempt
    report(svc, job_id, 1, 5.0, status="failed", cpu_s=4.0)
    cost = svc.status(job_id)["cost"]
    assert cost == {"vcpuSeconds": 32.0, "gibSeconds": 64.0, "cpuSeconds": 5.0,
                    "estimatedUsd": round(32 * 0.00002 + 64 * 0.0000025, 6),
                    "pricing": {"vcpuSecondUsd": 0.00002, "gibSecondUsd": 0.0000025, "source": "test prices"}}
    # the failed job's task reports again (a late duplicate): the largest still counts once
    assert report(svc, job_id, 1, 6.0, status="failed")["applied"] is False
    assert svc.status(job_id)["cost"]["vcpuSeconds"] == 36.0


def test_a_canceled_or_older_attempt_is_counted_though_its_report_is_refused(svc):
    job_id = dispatched(svc)
    report(svc, job_id, 1, 2.0)
    with pytest.raises(Conflict, match="attempt 0"):
        report(svc, job_id, 0, 7.0)  # an older attempt still running: told to stop, its time counted
    svc.cancel({"jobId": job_id})
    with pytest.raises(Conflict, match="canceled"):
        report(svc, job_id, 1, 4.0)  # the canceled task's next report (409) carries its last usage
    assert svc.status(job_id)["cost"]["vcpuSeconds"] == 4 * (7.0 + 4.0)


def test_a_job_no_task_reported_on_costs_nothing_and_reports_before_dispatch_are_not_counted(svc):
    job_id = svc.start({"spec": COLOR_SPEC}).body["jobId"]
    with pytest.raises(Conflict, match="never dispatched"):
        report(svc, job_id, 0, 5.0)
    assert svc.status(job_id)["cost"]["vcpuSeconds"] == 0.0
    assert svc.status(job_id)["cost"]["estimatedUsd"] == 0.0


@pytest.mark.parametrize("bad, path", [({"wallS": -1}, "usage.wallS"), ({"vcpu": 0}, "usage.vcpu"),
                                       ({"memoryGib": True}, "usage.memoryGib"), ({"cpuS": "1"}, "usage.cpuS"),
                                       ({"wallS": 1e9}, "usage.wallS"), ({"extra": 1}, "usage.extra")])
def test_a_malformed_usage_is_refused_naming_its_field(svc, bad, path):
    job_id = dispatched(svc)
    with pytest.raises(InvalidRequest) as err:
        svc.complete({"jobId": job_id, "status": "running", "attempt": 0, "usage": {**usage(1.0), **bad}})
    assert path in [d["path"] for d in err.value.details]
    assert svc.repo.usage_of(job_id) == []


# -- the render task's side: what it measures and sends (render_job.usage, render_job.reporter) -----------
class _Session:
    def __init__(self, status_code=200):
        self.sent, self.status_code = [], status_code

    def post(self, url, json, headers, timeout):
        self.sent.append(json)
        return type("Resp", (), {"status_code": self.status_code})()


def test_the_task_measures_from_its_process_start_and_every_report_carries_it():
    from render_job.reporter import Reporter
    from render_job.usage import TaskUsage, allocated_vcpus, process_age_s

    now = [100.0]
    task = TaskUsage(vcpu=4.0, memory_bytes=8 * 2**30, clock=lambda: now[0], age_s=0.75, cpu=lambda: 2.5)
    now[0] = 110.0
    assert task.snapshot() == {"wallS": 10.75, "cpuS": 2.5, "vcpu": 4.0, "memoryGib": 8.0}
    session = _Session(status_code=409)  # a canceled job: the report is refused, its usage still sent
    reporter = Reporter("http://api/export_complete", "t", "job", 1, session=session, usage=task.snapshot)
    reporter.running("rendering", 0.5)
    now[0] = 111.0
    reporter.stopping()
    assert [(b["status"], b["stage"], b["usage"]["wallS"]) for b in session.sent] == [
        ("running", "rendering", 10.75), ("running", "rendering", 11.75)]
    assert reporter.rejected
    assert allocated_vcpus(2.0) == 2.0 and allocated_vcpus(0) >= 1  # 0: the CPUs this process may use
    assert 0 < process_age_s() < 24 * 3600  # this test process started a moment ago
