"""The embedded local mode (what `make demo` uses, pip only): SQLite, the in-process
gcp-storage-emulator with the finalize poller, loopback Pub/Sub pushes, the local launcher."""
from __future__ import annotations

import time

import pytest
import requests

from infra.local import client
from infra.local.stack import EmbeddedStack
from infra.local.verify import check_mp4
from render_job.usage import STOPPED_EXIT, allocated_vcpus
from sceneflow_flows import FLOW, SMALL_FILES, small_spec, wait_for_condition

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def embedded_stack(run_dir):
    with EmbeddedStack(run_dir=run_dir / "embedded") as stack:
        yield stack


def test_embedded_export_succeeds(embedded_stack, tmp_path):
    stack = embedded_stack
    t0 = time.monotonic()
    started = client.start_export(stack.base, small_spec("Embedded"), list(SMALL_FILES))
    assert started["status"] == "awaiting_upload"
    client.upload_all(started["uploads"], list(SMALL_FILES))
    seen: list[dict] = []
    final = client.wait_for(stack.base, started["jobId"], timeout_s=150, interval_s=0.2, on_status=seen.append)
    assert final["status"] == "succeeded", (final.get("error"), stack.run_dir)
    assert [h["status"] for h in final["history"]] == FLOW
    assert final["progress"] == pytest.approx(1.0)
    assert [s["progress"] for s in seen] == sorted(s["progress"] for s in seen)
    video = client.download(final["output"]["url"], tmp_path / "v.mp4")
    info, problems = check_mp4(video, 1280, 720, 30, expected_s=final["output"].get("durationS"))
    assert not problems, problems
    # the poller delivered one finalize per object: 4 uploads + the outputs, each exactly once
    wait_for_condition(lambda: len(stack.poller.delivered) >= 5, 10, "finalize deliveries")
    assert len(stack.poller.delivered) == len(set(stack.poller.delivered))
    # the task logs the CPU seconds it used: its own and its FFmpeg runs' (render_job.usage.task_cpu_s)
    finished = wait_for_condition(lambda: stack.render_log_entries("render task finished", started["jobId"]),
                                  10, "the render task's last log line")
    assert finished[0]["status"] == "succeeded" and finished[0]["exitCode"] == 0
    assert 0 < finished[0]["cpuS"] < finished[0]["childCpuS"], finished[0]  # FFmpeg does the work
    cost = check_cost(client.get_status(stack.base, started["jobId"]), time.monotonic() - t0)
    assert cost["cpuSeconds"] <= finished[0]["cpuS"] + finished[0]["childCpuS"]  # measured before this line


def check_cost(status: dict, within_s: float) -> dict:
    """The export's cost is positive and sane: one attempt of a task of this machine's CPUs and the
    default 8 GiB, billed no longer than the test has run, priced at the default list prices."""
    cost, vcpu = status["cost"], allocated_vcpus(0)
    assert 0 < cost["vcpuSeconds"] <= vcpu * within_s, (cost, within_s)
    assert cost["gibSeconds"] == pytest.approx(cost["vcpuSeconds"] * 8 / vcpu, rel=1e-3)
    assert 0 < cost["cpuSeconds"] <= vcpu * within_s
    assert cost["estimatedUsd"] == pytest.approx(cost["vcpuSeconds"] * 0.000018 + cost["gibSeconds"] * 0.000002,
                                                 abs=1e-6)
    assert cost["pricing"]["vcpuSecondUsd"] == 0.000018 and "cloud.google.com/run/pricing" in cost["pricing"]["source"]
    return cost


def test_a_failed_export_has_its_cost(embedded_stack, tmp_path):
    """A picture that is no picture: the task fails the job at preflight; the time it ran is counted."""
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture at all")
    spec = {"version": 1, "output": {"resolution": "720p", "quality": "draft"},
            "scenes": [{"id": "a", "visual": {"type": "image", "src": "broken.png"}, "duration": 1}]}
    t0 = time.monotonic()
    started = client.start_export(embedded_stack.base, spec, [broken])
    client.upload_all(started["uploads"], [broken])
    final = client.wait_for(embedded_stack.base, started["jobId"], timeout_s=120, interval_s=0.2)
    assert final["status"] == "failed", final
    check_cost(final, time.monotonic() - t0)


def test_a_canceled_export_has_its_cost_up_to_its_last_report(embedded_stack):
    """Canceled while rendering: the task, stopped by SIGTERM, reports its usage once more (409) and
    exits 143; the cost then covers its time until it stopped."""
    stack = embedded_stack
    spec = small_spec("Canceled")
    # long enough to be canceled while it renders; under RENDER_PARALLEL_AFTER_S (120 s), so one task
    spec["scenes"][1]["duration"] = 100.0
    t0 = time.monotonic()
    started = client.start_export(stack.base, spec, list(SMALL_FILES))
    job_id = started["jobId"]
    client.upload_all(started["uploads"], list(SMALL_FILES))
    wait_for_condition(lambda: client.get_status(stack.base, job_id).get("stage") == "rendering", 120, "rendering")
    before = client.get_status(stack.base, job_id)["cost"]
    r = requests.post(f"{stack.base}/export_cancel", json={"jobId": job_id}, timeout=30)
    assert r.json()["status"] == "canceled", r.text
    exited = wait_for_condition(lambda: stack.log_entries("render task exited", job_id=job_id), 30, "the task's exit")
    assert exited[-1]["exitCode"] == STOPPED_EXIT, exited  # the SIGTERM path: one last report, then exit
    final = client.get_status(stack.base, job_id)
    assert final["status"] == "canceled"
    cost = check_cost(final, time.monotonic() - t0)
    assert cost["vcpuSeconds"] > before["vcpuSeconds"] > 0, (before, cost)  # the last report counted
    assert stack.render_log_entries("render task told to stop (SIGTERM); reporting its usage", job_id)



def test_gateway_routes(embedded_stack):
    base = embedded_stack.base
    assert requests.get(f"{base}/healthz", timeout=5).json()["ok"] is True
    assert requests.get(f"{base}/nope", timeout=5).status_code == 404
    r = requests.get(f"{base}/export_status", params={"jobId": "00000000-0000-4000-8000-000000000000"}, timeout=5)
    assert r.status_code == 404
    r = requests.post(f"{base}/export_start", json={"spec": {"version": 1, "scenes": []}}, timeout=5)
    assert r.status_code == 400 and r.json()["error"]["details"]
    r = requests.get(f"{base}/export_list", params={"pageSize": "1"}, timeout=5)
    assert r.status_code == 200 and isinstance(r.json()["exports"], list)
    r = requests.get(f"{base}/export_list", params={"pageSize": "0"}, timeout=5)
    assert r.status_code == 400 and r.json()["error"]["details"][0]["path"] == "pageSize"
    # no redirect for the bare function path (Pub/Sub push and Eventarc do not follow redirects)
    r = requests.post(f"{base}/export_complete", json={}, timeout=5, allow_redirects=False)
    assert r.status_code == 401
