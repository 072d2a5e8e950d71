"""Warnings of a succeeded export (issue 14, item 8): parts of the spec that cannot show in the video
(caption cues cut to less than one frame once narration lengths are known) reach `output.warnings`
in export_status, bounded, whichever of the worker's report and the video's finalize event comes
first."""
import json

import pytest

from shared import bootstrap
from shared.outputs import MAX_WARNINGS, WARNING_TEXT_MAX
from tests.integration.functions_env import make_functions_env
from tests.integration.test_functions import TOKEN, complete, finalize, push, start, status

SPEC = {"scenes": [{"id": "a", "visual": {"type": "color"}, "narration": {"src": "n.wav"},
                    "caption": {"cues": [{"startS": 0.2, "endS": 1.0, "text": "shown"},
                                         {"startS": 4.0, "endS": 5.0, "text": "maybe not"}]}}]}
WARNING = {"path": "scenes[0].caption.cues[1]",
           "message": "starts 4 s into its scene, at or after the next scene's start (1.500 s into this scene): "
                      "it would show on no frame"}


@pytest.fixture
def env(tmp_path):
    yield make_functions_env(tmp_path, worker_token=TOKEN, input_bucket="in-bkt", output_bucket="out-bkt",
                             api_base="http://api.test")
    bootstrap.use_service(None)


def running_job(env) -> str:
    jid = start(env, spec=SPEC, uploads=[{"name": "n.wav", "contentType": "audio/wav"}]).json["jobId"]
    env.storage.upload_bytes("in-bkt", f"jobs/{jid}/assets/n.wav", b"RIFF", "audio/wav")  # finalize stats it
    finalize(env, "in-bkt", f"jobs/{jid}/assets/n.wav")
    push(env, jid)
    complete(env, {"jobId": jid, "status": "running", "stage": "rendering", "progress": 0.5, "attempt": 0})
    return jid


def test_warnings_of_the_report_are_in_status_bounded(env):
    jid = running_job(env)
    video = f"exports/{jid}/export.mp4"
    env.storage.upload_bytes("out-bkt", video, b"\0" * 64, "video/mp4", metadata={"job-id": jid})
    many = [WARNING] + [{"path": f"scenes[0].caption.cues[{k}]", "message": "x" * 1000} for k in range(40)]
    r = complete(env, {"jobId": jid, "status": "succeeded", "attempt": 0,
                       "output": {"uri": f"gs://out-bkt/{video}", "durationS": 1.5, "warnings": many}})
    assert r.status_code == 200 and r.json["applied"] is True, r.json
    warnings = status(env, jid).json["output"]["warnings"]
    assert len(warnings) == MAX_WARNINGS and warnings[0] == WARNING
    assert all(len(w["message"]) <= WARNING_TEXT_MAX for w in warnings)


def test_warnings_in_the_video_metadata_are_in_status_when_finalize_comes_first(env):
    jid = running_job(env)
    video = f"exports/{jid}/export.mp4"
    meta = {"job-id": jid, "duration-s": "1.5", "width": "1920", "height": "1080", "filename": "export.mp4",
            "warnings": json.dumps([WARNING])}
    env.storage.upload_bytes("out-bkt", video, b"\0" * 64, "video/mp4", metadata=meta)
    assert finalize(env, "out-bkt", video, metadata=meta).status_code == 200
    st = status(env, jid).json
    assert st["status"] == "succeeded" and st["output"]["warnings"] == [WARNING]


def test_an_export_without_warnings_says_so(env):
    jid = running_job(env)
    video = f"exports/{jid}/export.mp4"
    meta = {"job-id": jid, "duration-s": "1.5", "filename": "export.mp4", "warnings": "not json"}
    env.storage.upload_bytes("out-bkt", video, b"\0" * 64, "video/mp4", metadata=meta)
    finalize(env, "out-bkt", video, metadata=meta)
    assert status(env, jid).json["output"]["warnings"] == []
