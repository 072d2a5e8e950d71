"""The whole-export task's side of the handoff (render_job.handoff; real FFmpeg, LocalStorage, the
real Reporter posting into a scripted session): a storyboard of narrated scenes without durations,
dispatched as one task because it counts short at its least (0.5 s a scene), measures 6 s once
its narrations are probed, over RENDER_PARALLEL_AFTER_S = 3 s. The task asks once for a 3-part
render; handed over, it stops without rendering; answered 503 it renders the export itself."""
from __future__ import annotations

import json
import os

import pytest

from render_job.job import run_export
from render_job.reporter import Reporter
from render_job.stitch import result_lengths
from shared.adapters.local_storage import LocalStorage
from shared.config import Settings
from shared.parts import least_total_s
from tests import media_factory as mf

IN, OUT = "sceneflow-in", "sceneflow-out"
JOB = "7a1c2e3f-4b5d-4e6f-8a9b-0c1d2e3f4a5b"
FPS = 30
SPEC = {"version": 1, "title": "Narrated",
        "output": {"resolution": "720p", "aspectRatio": "16:9", "fps": FPS, "quality": "draft"},
        "scenes": [{"id": f"s{i}", "visual": {"type": "color", "color": "#203040"},
                    "narration": {"src": "voice.wav"}} for i in range(3)]}


class Answer:
    def __init__(self, status_code, body):
        self.status_code, self._body = status_code, body

    def json(self):
        return self._body


class ScriptedSession:
    """A requests.Session stand-in: records every body; a report with `handoff` gets `handoff`
    (status, body), every other one 200."""

    def __init__(self, handoff):
        self.bodies, self.handoff = [], handoff

    def post(self, url, json=None, headers=None, timeout=None):
        self.bodies.append(json)
        return Answer(*self.handoff) if "handoff" in json else Answer(200, {"applied": True})


def settings():
    return Settings(input_bucket=IN, output_bucket=OUT, render_max_retries=3, render_parallel_after_s=3.0,
                    render_min_part_s=2.0, render_max_parts=4, ffmpeg_binary=os.environ.get("FFMPEG_BINARY") or None)


@pytest.fixture(scope="module")
def voice(tmp_path_factory):
    d = tmp_path_factory.mktemp("handoffmedia")
    return mf.tone(d / "voice.wav", 1.5, rate=48000, freq=600)


def export(tmp_path, voice, handoff):
    storage = LocalStorage(tmp_path / "store")
    storage.upload_bytes(IN, f"jobs/{JOB}/spec.json", json.dumps(SPEC).encode(), "application/json")
    storage.upload_bytes(IN, f"jobs/{JOB}/assets/voice.wav", voice.read_bytes(), "audio/wav")
    session = ScriptedSession(handoff)
    reporter = Reporter("http://api.invalid/export_complete", "tok", JOB, 0, min_interval_s=0.0, session=session,
                        sleep=lambda s: None)
    work = tmp_path / "work"
    work.mkdir()
    return run_export(JOB, storage, reporter, settings(), str(work)), session.bodies, tmp_path / "store" / OUT


def test_dispatch_counts_it_short():
    assert least_total_s(SPEC) == 1.5 < settings().render_parallel_after_s  # one task at dispatch


def test_handed_over_the_task_stops_without_rendering(tmp_path, voice):
    result, bodies, out = export(tmp_path, voice, (200, {"jobId": JOB, "status": "running", "applied": True,
                                                         "handoff": {"parts": 3}}))
    assert (result.status, result.exit_code) == ("handed_over", 0)
    assert result.plan.total_s == pytest.approx(6.0)  # 3 x (1.5 s narration + 0.5 s pause)
    asks = [b for b in bodies if "handoff" in b]
    assert asks == [bodies[-1]] and asks[0]["handoff"] == {"parts": 3}  # K = 6 // 2, capped at 4
    assert (asks[0]["status"], asks[0]["stage"]) == ("running", "preparing") and "task" not in asks[0]
    assert [b["stage"] for b in bodies] == ["preparing"] * len(bodies)  # nothing rendered, nothing after
    assert not (out / "exports").exists()  # no video, poster or captions uploaded by it


def test_refused_with_503_the_task_renders_the_whole_export(tmp_path, voice):
    result, bodies, out = export(tmp_path, voice, (503, {"error": {"code": "unavailable", "message": "x"}}))
    assert (result.status, result.exit_code) == ("succeeded", 0), result.error
    asks = [b for b in bodies if "handoff" in b]
    assert len(asks) == 1  # asked once, never retried
    assert bodies[-1]["status"] == "succeeded" and "rendering" in [b.get("stage") for b in bodies]
    video = out / "exports" / JOB / result.output["filename"]
    lengths = result_lengths(str(video))
    assert lengths.frames == round(result.plan.total_s * FPS) == 180
    assert abs(lengths.video_s - 6.0) <= 1 / FPS and abs(result.output["durationS"] - 6.0) <= 1 / FPS


def test_refused_with_409_the_task_stops_as_canceled(tmp_path, voice):
    result, bodies, out = export(tmp_path, voice, (409, {"error": {"code": "conflict", "message": "parts"}}))
    assert (result.status, result.exit_code) == ("canceled", 0)
    assert "handoff" in bodies[-1] and not (out / "exports").exists()
