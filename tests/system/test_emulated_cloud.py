"""The whole export flow on the emulated cloud (DESIGN §6): real PostgreSQL, the Pub/Sub emulator
with push subscriptions, fake-gcs-server publishing finalize notifications, the functions behind
the gateway, and the render job run by the local launcher.

A small 2-scene storyboard at 720p draft keeps the render to a few seconds.
"""
from __future__ import annotations

import time

import pytest

from sceneflow_flows import FLOW, SMALL_FILES, small_spec, wait_for_condition
from infra.local import client
from infra.local.verify import check_mp4

pytestmark = [pytest.mark.emulators, pytest.mark.postgres, pytest.mark.slow]


def dispatch_deliveries(stack) -> int:
    """How many Pub/Sub pushes dispatch_export has handled so far (acked or dropped)."""
    return len(stack.log_entries("dispatch handled")) + len(stack.log_entries("dispatch dropped"))


def executions_started(stack, job_id: str) -> list[dict]:
    return stack.log_entries("render execution started", job_id=job_id)


@pytest.fixture(scope="module")
def finished_job(emulated_stack, tmp_path_factory):
    """Run one export through the stack; returns (start body, final status, observed statuses)."""
    stack = emulated_stack
    spec = small_spec()
    files = list(SMALL_FILES)
    started = client.start_export(stack.base, spec, files)
    assert started["status"] == "awaiting_upload"
    assert sorted(u["name"] for u in started["uploads"]) == sorted(f.name for f in files)
    assert all(u["method"] == "PUT" and u["url"].startswith(stack.env["STORAGE_EMULATOR_HOST"])
               for u in started["uploads"])
    client.upload_all(started["uploads"], files)
    # A duplicate of the dispatch message, racing the one the last upload's finalize publishes.
    stack.publish_job(started["jobId"])

    seen: list[dict] = []
    final = client.wait_for(stack.base, started["jobId"], timeout_s=150, interval_s=0.2,
                            on_status=seen.append)
    out = tmp_path_factory.mktemp("system-output")
    return started, final, seen, out


def test_export_runs_through_every_state(finished_job, emulated_stack):
    started, final, seen, out = finished_job
    assert final["status"] == "succeeded", (final.get("error"), emulated_stack.run_dir)
    assert [h["status"] for h in final["history"]] == FLOW
    assert final["progress"] == pytest.approx(1.0)
    progresses = [s["progress"] for s in seen]
    assert progresses == sorted(progresses), "progress must only rise"
    assert final["attempts"] == 1
    assert final["executionName"]
    assert final["startedAt"] and final["finishedAt"]


def test_output_downloads_and_plays(finished_job):
    started, final, seen, out = finished_job
    output = final["output"]
    video = client.download(output["url"], out / "video.mp4")
    info, problems = check_mp4(video, 1280, 720, 30, expected_s=output.get("durationS"))
    assert not problems, problems
    # 3.27 s narration + 0.5 s pause, then 2 s, overlapped by a 0.5 s fade
    assert 4.5 < info.video_s < 6.5
    assert output.get("width") == 1280 and output.get("height") == 720
    if output.get("posterUrl"):
        poster = client.download(output["posterUrl"], out / "poster.jpg")
        assert poster.read_bytes()[:2] == b"\xff\xd8"
    for kind in ("srt", "vtt"):
        url = (output.get("captions") or {}).get(kind)
        assert url, f"no {kind} sidecar"
        text = client.download(url, out / f"captions.{kind}").read_text(encoding="utf-8")
        assert "crew’s" in text and "100%" in text


def test_duplicate_dispatch_message_starts_no_second_execution(finished_job, emulated_stack):
    stack = emulated_stack
    started, final, seen, out = finished_job
    job_id = final["jobId"]
    before = dispatch_deliveries(stack)
    stack.publish_job(job_id)  # the same {"jobId"} data again
    wait_for_condition(lambda: dispatch_deliveries(stack) > before, 20, "the duplicate push")
    time.sleep(0.5)
    after = client.get_status(stack.base, job_id)
    assert after["status"] == "succeeded"
    assert after["attempts"] == final["attempts"] == 1
    assert after["executionName"] == final["executionName"]
    assert after["history"] == final["history"]
    assert len(executions_started(stack, job_id)) == 1
    videos = [o for o in stack.list_objects(stack.output_bucket, f"exports/{job_id}/")
              if o["name"].endswith(".mp4")]
    assert len(videos) == 1, [o["name"] for o in videos]


def test_duplicate_finalize_notification_leaves_one_succeeded_job(finished_job, emulated_stack):
    stack = emulated_stack
    started, final, seen, out = finished_job
    job_id = final["jobId"]
    outputs = stack.list_objects(stack.output_bucket, f"exports/{job_id}/")
    inputs = stack.list_objects(stack.input_bucket, f"jobs/{job_id}/")
    assert outputs and inputs
    handled = len(stack.log_entries("finalize handled"))
    video = next(o for o in outputs if o["name"].endswith(".mp4"))
    asset = next(o for o in inputs if "/assets/" in o["name"])
    for obj in (video, asset, video):
        stack.publish_finalize(obj)
    wait_for_condition(lambda: len(stack.log_entries("finalize handled")) >= handled + 3, 20,
                       "the duplicate notifications")
    after = client.get_status(stack.base, job_id)
    assert after["status"] == "succeeded"
    assert [h["status"] for h in after["history"]] == FLOW
    assert after["finishedAt"] == final["finishedAt"]
    assert len(executions_started(stack, job_id)) == 1


def test_job_without_uploads_is_dispatched_once_despite_duplicates(emulated_stack):
    """A color-only storyboard is queued at once; two more copies of its message race the first."""
    stack = emulated_stack
    spec = {"version": 1, "output": {"resolution": "720p", "fps": 30, "quality": "draft"},
            "scenes": [{"id": "c", "visual": {"type": "color", "color": "#203040"}, "duration": 1.5,
                        "caption": {"text": "Colour: 100%"}}],
            "captions": {"burnIn": True, "sidecar": []}}
    started = client.start_export(stack.base, spec, [])
    assert started["status"] == "queued"
    job_id = started["jobId"]
    stack.publish_job(job_id)
    stack.publish_job(job_id)
    final = client.wait_for(stack.base, job_id, timeout_s=90, interval_s=0.2)
    assert final["status"] == "succeeded", final.get("error")
    states = [h["status"] for h in final["history"]]
    # created queued: its history starts there
    assert states == FLOW[1:], states
    assert final["attempts"] == 1
    assert len(executions_started(stack, job_id)) == 1
