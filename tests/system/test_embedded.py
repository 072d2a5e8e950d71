"""The embedded local mode (what `make demo` uses, pip only): SQLite, the in-process
gcp-storage-emulator with the finalize poller, loopback Pub/Sub pushes, the local launcher."""
from __future__ import annotations

import pytest
import requests

from infra.local import client
from infra.local.stack import EmbeddedStack
from infra.local.verify import check_mp4
from sceneflow_flows import FLOW, SMALL_FILES, small_spec, wait_for_condition

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def embedded_stack(run_dir):
    with EmbeddedStack(run_dir=run_dir / "embedded") as stack:
        yield stack


def test_embedded_export_succeeds(embedded_stack, tmp_path):
    stack = embedded_stack
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
    # the task logs the CPU seconds it cost: its own and its FFmpeg runs' (render_job.job.task_cpu_s)
    finished = wait_for_condition(lambda: stack.render_log_entries("render task finished", started["jobId"]),
                                  10, "the render task's last log line")
    assert finished[0]["status"] == "succeeded" and finished[0]["exitCode"] == 0
    assert 0 < finished[0]["cpuS"] < finished[0]["childCpuS"], finished[0]  # FFmpeg does the work



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
