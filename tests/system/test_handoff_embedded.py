"""The handoff end to end through the embedded stack (SQLite, the storage emulator and its finalize
events, the local launcher running real render tasks): a storyboard of narrated scenes without
durations counts 1.5 s at its least, so dispatch starts one task; that task measures it over
RENDER_PARALLEL_AFTER_S and hands it over; the parts, the audio and the stitch finish it."""
from __future__ import annotations

import pytest

from infra.local import client
from infra.local.stack import EmbeddedStack
from infra.local.verify import check_mp4
from sceneflow_flows import ASSETS, FLOW, wait_for_condition

pytestmark = [pytest.mark.slow]

SPEC = {"version": 1, "title": "Handed over",
        "output": {"resolution": "720p", "aspectRatio": "16:9", "fps": 30, "quality": "draft"},
        "scenes": [{"id": f"s{i}", "visual": {"type": "color", "color": color}, "narration": {"src": "n5.wav"},
                    "caption": {"text": f"Scene {i}"}} for i, color in enumerate(("#203040", "#402030", "#304020"))],
        "music": {"src": "music.ogg", "volume": 0.2, "loop": True, "ducking": True}}
FILES = [ASSETS / "n5.wav", ASSETS / "music.ogg"]


def test_a_narrated_export_measured_long_goes_single_handoff_parts_stitch(run_dir, tmp_path):
    env = {"RENDER_PARALLEL_AFTER_S": "6", "RENDER_MIN_PART_S": "3", "RENDER_MAX_PARTS": "3"}
    with EmbeddedStack(run_dir=run_dir / "handoff", extra_env=env) as stack:
        started = client.start_export(stack.base, SPEC, FILES)
        job_id = started["jobId"]
        client.upload_all(started["uploads"], FILES)
        seen: list[dict] = []
        final = client.wait_for(stack.base, job_id, timeout_s=180, interval_s=0.2, on_status=seen.append)
        assert final["status"] == "succeeded", (final.get("error"), stack.run_dir)
        assert [h["status"] for h in final["history"]] == FLOW
        handed = stack.render_log_entries("handed over to a 3-part render", job_id)
        assert len(handed) == 1 and handed[0]["parts"] == 3, handed
        plan_s = handed[0]["totalS"]
        assert plan_s > 6
        # the single task stopped (exit 0, nothing rendered); the parts and the stitch then ran
        # the job succeeds on the output's finalize, a moment before the stitch process logs its end
        finished = wait_for_condition(lambda: (lambda f: f if {e["status"] for e in f} >= {
            "handed_over", "uploaded", "succeeded"} else None)(stack.render_log_entries("render task finished", job_id)),
            10, "the tasks' last log lines (the handed-over task, the parts, the stitch)")
        assert [(f["status"], f["exitCode"]) for f in finished if f["status"] == "handed_over"] == [("handed_over", 0)]
        assert {f["status"] for f in finished} >= {"handed_over", "uploaded", "succeeded"}
        assert any(s.get("parts", {}).get("count") == 3 for s in seen), seen  # status showed the parts
        assert final["parts"] == {"count": 3, "rendered": 3, "audio": True}
        assert final["executionName"] and final["progress"] == pytest.approx(1.0)
        assert [s["progress"] for s in seen] == sorted(s["progress"] for s in seen)
        assert abs(final["output"]["durationS"] - plan_s) <= 1 / 30
        video = client.download(final["output"]["url"], tmp_path / "v.mp4")
        info, problems = check_mp4(video, 1280, 720, 30, expected_s=plan_s)
        assert not problems, problems
