"""The API's limits at the longest storyboard the spec accepts (issue 15): a MAX_SCENES storyboard with
its own picture and narration on every scene, plus music (401 uploads), starts, fits the request body
limit, gets one signed PUT per upload in order, and its status stays small; a job whose uploads add up
to more than EXPORT_MAX_JOB_BYTES fails as soon as the upload that crosses it arrives."""
from __future__ import annotations

import json

import pytest

from shared import bootstrap
from shared.config import Settings
from shared.errors import MESSAGE_MAX_CHARS
from shared.spec import MAX_SCENES
from tests.integration.functions_env import make_functions_env

CJK = "物語の場面を語る字幕です。" * 40  # 13 x 40 = 520 characters; cut to the caption limit below


def max_storyboard(caption_chars: int = 500) -> tuple[dict, list[dict]]:
    """200 scenes, each with its own still, its own narration and a caption of `caption_chars` CJK
    characters, plus music: the spec and its 401 uploads."""
    scenes, uploads = [], []
    for i in range(MAX_SCENES):
        scenes.append({"id": f"s{i:03d}", "visual": {"type": "image", "src": f"scene-{i:03d}.png"},
                       "narration": {"src": f"narration-{i:03d}.wav"}, "caption": {"text": CJK[:caption_chars]}})
        uploads += [{"name": f"scene-{i:03d}.png", "contentType": "image/png"},
                    {"name": f"narration-{i:03d}.wav", "contentType": "audio/wav"}]
    uploads.append({"name": "music.mp3", "contentType": "audio/mpeg"})
    return {"title": "The longest story", "scenes": scenes, "music": {"src": "music.mp3"}}, uploads


@pytest.fixture
def env(tmp_path):
    yield make_functions_env(tmp_path, worker_token="t", input_bucket="in", output_bucket="out")
    bootstrap.use_service(None)


def test_the_default_limits_admit_a_max_scenes_storyboard():
    s = Settings()
    assert s.max_scenes == MAX_SCENES == 200
    assert s.max_assets == 2 * MAX_SCENES + 1  # a visual and a narration per scene, plus music
    assert s.max_job_bytes == s.max_output_bytes == 2 * 2**30


def test_a_max_scenes_storyboard_with_every_upload_starts(env):
    spec, uploads = max_storyboard()
    # requests' json= escapes every CJK character as \\uXXXX (6 bytes): the largest encoding of this body
    body = json.dumps({"spec": spec, "uploads": uploads}).encode()
    assert len(body) < Settings().max_body_bytes, len(body)  # 650,348 bytes of 1,000,000 (350,348 as UTF-8)
    r = env.c["export_start"].post("/", data=body, content_type="application/json")
    assert r.status_code == 202, r.json
    got = r.json["uploads"]
    assert [u["name"] for u in got] == [u["name"] for u in uploads]  # one signed PUT each, in order
    assert all(f"/jobs/{r.json['jobId']}/assets/{u['name']}?" in u["url"] for u in got)
    status = env.c["export_status"].get(f"/?jobId={r.json['jobId']}")
    assert status.json["status"] == "awaiting_upload" and len(status.json["uploads"]["expected"]) == 401
    # the status of a job awaiting 401 uploads (names of ~17 characters) stays small: 8,028 bytes
    assert len(status.data) < 16_000, len(status.data)


def test_one_upload_more_than_the_limit_is_refused_by_the_setting(env):
    spec, uploads = max_storyboard(caption_chars=10)
    spec["scenes"][0]["visual"] = {"type": "image", "src": "extra.png"}  # 402 used uploads
    uploads.append({"name": "extra.png", "contentType": "image/png"})
    r = env.c["export_start"].post("/", json={"spec": spec, "uploads": uploads})
    assert r.status_code == 400
    assert {"path": "uploads", "message": "at most 401 uploads per export"} in r.json["error"]["details"]


def _upload(env, jid, name, size):
    gen = env.storage.upload_bytes("in", f"jobs/{jid}/assets/{name}", b"\0" * size, "image/png")
    return env.service.object_finalized("in", f"jobs/{jid}/assets/{name}", str(gen), size)


def _start(env, names):
    spec = {"scenes": [{"id": f"s{i}", "visual": {"type": "image", "src": n}} for i, n in enumerate(names)]}
    r = env.c["export_start"].post("/", json={"spec": spec, "uploads": [
        {"name": n, "contentType": "image/png"} for n in names]})
    assert r.status_code == 202, r.json
    return r.json["jobId"]


def test_uploads_over_the_job_byte_limit_fail_the_job_when_they_arrive(tmp_path):
    env = make_functions_env(tmp_path, input_bucket="in", output_bucket="out", max_job_bytes=1000)
    try:
        jid = _start(env, ["a.png", "b.png", "c.png"])
        assert _upload(env, jid, "a.png", 400) == "upload"
        assert _upload(env, jid, "b.png", 700) == "failed"  # 1,100 bytes > 1,000: not left awaiting c.png
        st = env.c["export_status"].get(f"/?jobId={jid}").json
        assert st["status"] == "failed" and st["finishedAt"] and "uploads" not in st
        assert st["error"] == {"code": "job_too_large", "message":
                               "media add up to 1,100 bytes, over EXPORT_MAX_JOB_BYTES = 1,000 bytes: "
                               "b.png (700 bytes), a.png (400 bytes)"}
        assert _upload(env, jid, "c.png", 10) == "upload"  # a late upload changes nothing
        assert env.c["export_status"].get(f"/?jobId={jid}").json["status"] == "failed"
        assert env.publisher.messages == []  # never queued

        exact = _start(env, ["a.png", "b.png"])  # exactly at the limit: queued
        assert _upload(env, exact, "a.png", 400) == "upload"
        assert _upload(env, exact, "b.png", 600) == "queued"
        assert env.publisher.messages == [exact]
    finally:
        bootstrap.use_service(None)


def test_the_job_too_large_message_is_bounded_and_names_the_largest_files_first(tmp_path):
    env = make_functions_env(tmp_path, input_bucket="in", output_bucket="out", max_job_bytes=10_000)
    try:
        names = [f"{i:03d}-" + "n" * 190 + ".png" for i in range(60)]
        jid = _start(env, names)
        outcomes = [_upload(env, jid, n, 100 + i) for i, n in enumerate(names)]
        assert sum(100 + i for i in range(60)) == 7_770  # under 10,000: queued
        assert outcomes == ["upload"] * 59 + ["queued"]
        jid = _start(env, names)
        outcomes = [_upload(env, jid, n, 200 + i) for i, n in enumerate(names)]
        first_over = next(k for k in range(60) if sum(200 + i for i in range(k + 1)) > 10_000)
        assert outcomes == ["upload"] * first_over + ["failed"] + ["upload"] * (59 - first_over)
        error = env.c["export_status"].get(f"/?jobId={jid}").json["error"]
        total = sum(200 + i for i in range(first_over + 1))
        assert error["code"] == "job_too_large" and len(error["message"]) <= MESSAGE_MAX_CHARS
        assert error["message"].startswith(f"media add up to {total:,} bytes, over EXPORT_MAX_JOB_BYTES = "
                                           f"10,000 bytes: {names[first_over]} ({200 + first_over} bytes), "
                                           f"{names[first_over - 1]} ")
        assert error["message"].endswith(" more")  # the files that do not fit are counted
    finally:
        bootstrap.use_service(None)
