"""The API's limits at the longest storyboard the spec accepts (issue 15): a MAX_SCENES storyboard with
its own picture and narration on every scene, plus music (401 uploads), starts, fits the request body
limit, gets one signed PUT per upload in order, and its status stays small; a job whose uploads add up
to more than EXPORT_MAX_JOB_BYTES fails as soon as the upload that crosses it arrives."""
from __future__ import annotations

import json

import pytest

from render_job.job import run_export
from shared import bootstrap
from shared.adapters.local_storage import LocalStorage
from shared.config import Settings
from shared.errors import MESSAGE_MAX_CHARS
from shared.spec import MAX_SCENES
from tests import media_factory as mf
from tests.fakes import FakeReporter
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


# The length limit (EXPORT_MAX_TOTAL_S) is on the output: at start, the length the render will plan, as
# far as the spec fixes it (shared.timeline.least_grid), transitions subtracted as the plan does.

def test_a_max_scenes_storyboard_whose_fades_bring_it_under_the_length_limit_starts(env):
    # trial 15: 200 x 9.02 s = 1,804 s of scenes, less 199 x 0.5 s fades: a 1,704.5 s video was refused
    spec, uploads = max_storyboard(caption_chars=10)
    for scene in spec["scenes"]:
        scene["duration"] = 9.02
        scene["transition"] = {"type": "fade", "duration": 0.5}
    r = env.c["export_start"].post("/", json={"spec": spec, "uploads": uploads})
    assert r.status_code == 202, r.json["error"]["details"][:3]


def _limited(tmp_path, **settings):
    return make_functions_env(tmp_path, input_bucket="in", output_bucket="out", **settings)


def _start_problems(env, scenes, uploads=(), **spec):
    r = env.c["export_start"].post("/", json={"spec": {"scenes": scenes, **spec}, "uploads": list(uploads)})
    if r.status_code == 202:
        return 202, []
    assert r.status_code == 400, r.json
    return 400, [d["message"] for d in r.json["error"]["details"] if d["path"] == "spec.scenes"]


def test_the_start_check_subtracts_transitions_as_the_plan_does(tmp_path):
    env = _limited(tmp_path, max_total_s=60)
    try:
        fades = {"transition": {"type": "fade", "duration": 1.0}}
        # 10 x 6.4 s = 64 s of scenes, less 9 x 1 s: a 55 s video (the trial's explicit_trans)
        scenes = [{"id": f"s{i}", "visual": {"type": "color"}, "duration": 6.4, **fades} for i in range(10)]
        assert _start_problems(env, scenes) == (202, [])
        scenes = [{"id": f"s{i}", "visual": {"type": "color"}, "duration": 7, **fades} for i in range(10)]
        assert _start_problems(env, scenes) == (400, [
            "the video would be 61 s long (70 s of scenes less 9 s where transitions overlap), over "
            "EXPORT_MAX_TOTAL_S = 60 s; longest scenes: scenes[0] (id 's0') 7 s, scenes[1] (id 's1') 7 s, "
            "scenes[2] (id 's2') 7 s"])
    finally:
        bootstrap.use_service(None)


def test_scenes_of_the_default_length_count_at_start(tmp_path):
    # trial 15: 20 stills without duration or narration are 20 x 4 s = 80 s, known from the spec alone;
    # they were accepted and failed only after every upload, with a message about narrations
    env = _limited(tmp_path, max_total_s=60)
    try:
        scenes = [{"id": f"s{i}", "visual": {"type": "image", "src": f"img{i}.png"}} for i in range(20)]
        uploads = [{"name": f"img{i}.png", "contentType": "image/png"} for i in range(20)]
        assert _start_problems(env, scenes, uploads) == (400, [
            "the video would be 80 s long, over EXPORT_MAX_TOTAL_S = 60 s; longest scenes: "
            "scenes[0] (id 's0') 4 s, scenes[1] (id 's1') 4 s, scenes[2] (id 's2') 4 s"])
        assert _start_problems(env, scenes[:15], uploads[:15]) == (202, [])  # 60 s: at the limit
    finally:
        bootstrap.use_service(None)


def test_a_scene_timed_by_its_narration_or_clip_counts_at_its_least_at_start(tmp_path):
    env = _limited(tmp_path, max_total_s=10)
    try:
        nine = [{"id": f"s{i}", "visual": {"type": "color"}, "duration": 1} for i in range(9)]
        late = {"id": "n", "visual": {"type": "color"}, "narration": {"src": "n.wav", "offsetS": 1.5}}
        narration = [{"name": "n.wav", "contentType": "audio/wav"}]
        # at least 1.5 s offset + the 0.5 s pause, whatever the narration's length: 11 s
        assert _start_problems(env, nine + [late], narration) == (400, [
            "the video would be at least 11 s long, over EXPORT_MAX_TOTAL_S = 10 s; a scene without duration "
            "lasts as long as its narration or clip, counted here at its shortest; longest scenes: "
            "scenes[9] (id 'n') 2 s, scenes[0] (id 's0') 1 s, scenes[1] (id 's1') 1 s"])
        # a clip counts at its least, 2 frames (9.067 s): accepted, the render checks its real length
        clip = {"id": "c", "visual": {"type": "video", "src": "c.mp4"}}
        assert _start_problems(env, nine + [clip], [{"name": "c.mp4", "contentType": "video/mp4"}]) == (202, [])
    finally:
        bootstrap.use_service(None)


def _render_error(tmp_path, spec, media=None, **settings):
    """Run the render job (run_export, LocalStorage) on `spec` as written to the bucket, bypassing the
    API: its failure {code, message} (None when it succeeded)."""
    storage = LocalStorage(tmp_path / "render-store")
    storage.upload_bytes("in", "jobs/job-len/spec.json", json.dumps(spec).encode(), "application/json")
    for name, data in (media or {}).items():
        storage.upload_bytes("in", f"jobs/job-len/assets/{name}", data, "application/octet-stream")
    work = tmp_path / "render-work"
    work.mkdir()
    reporter = FakeReporter()
    run_export("job-len", storage, reporter, Settings(input_bucket="in", output_bucket="out", render_max_retries=0,
                                                      **settings), str(work))
    return reporter.final.get("error")


def test_the_render_and_the_start_check_give_one_length_for_a_fully_known_storyboard(tmp_path):
    # lengths off the 30 fps grid (1.01 s = 30.3 frames), fades clamped to half a scene, default scenes
    scenes = [{"id": f"s{i}", "visual": {"type": "color"}, "duration": round(1.01 + 0.37 * (i % 3), 2),
               "transition": {"type": "fade", "duration": 0.8}} for i in range(12)]
    scenes += [{"id": "title", "visual": {"type": "title", "text": "The end"}},
               {"id": "still", "visual": {"type": "color"}, "transition": {"type": "wipeleft", "duration": 0.5}},
               {"id": "last", "visual": {"type": "color"}, "duration": 0.7}]
    output = {"resolution": "720p", "fps": 30, "quality": "draft"}
    spec = {"output": output, "scenes": scenes}
    env = _limited(tmp_path, max_total_s=17.7)
    try:
        status, problems = _start_problems(env, scenes, output=output)
    finally:
        bootstrap.use_service(None)
    # 25.26 s of scenes (25.333 s on the frame grid), less the fades clamped to half a scene: 17.8 s
    assert (status, problems) == (400, [
        "the video would be 17.8 s long (25.333 s of scenes less 7.533 s where transitions overlap), over "
        "EXPORT_MAX_TOTAL_S = 17.7 s; longest scenes: scenes[12] (id 'title') 4 s, scenes[13] (id 'still') 4 s, "
        "scenes[5] (id 's5') 1.767 s"])
    error = _render_error(tmp_path, spec, max_total_s=17.7)
    assert error == {"code": "too_long", "message": problems[0]}  # the same number, the same words
    # at the limit: past the length check in both (the render then stops at its memory check, before FFmpeg)
    assert _start_problems(_limited(tmp_path / "a", max_total_s=17.8), scenes, output=output) == (202, [])
    bootstrap.use_service(None)
    error = _render_error(tmp_path / "a", spec, max_total_s=17.8, render_memory_bytes=512 * 2**20)
    assert error["code"] == "memory_limit", error


def test_the_too_long_message_mentions_narrations_only_when_one_timed_a_scene(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    voice = mf.tone(media / "voice.wav", 3.0, rate=48000).read_bytes()
    spec = {"output": {"resolution": "720p", "fps": 30, "quality": "draft"}, "scenes": [
        {"id": "a", "visual": {"type": "color"}, "duration": 1},
        {"id": "b", "visual": {"type": "color"}, "narration": {"src": "voice.wav"}}]}
    error = _render_error(tmp_path, spec, {"voice.wav": voice}, max_total_s=2)
    assert error["message"] == ("the video would be 4.5 s long, over EXPORT_MAX_TOTAL_S = 2 s; a scene without "
                                "duration lasts as long as its narration or clip; longest scenes: scenes[1] "
                                "(id 'b') 3.5 s, scenes[0] (id 'a') 1 s")
    spec["scenes"][1]["duration"] = 3.5  # the same length, given: nothing about narrations
    error = _render_error(tmp_path / "given", spec, {"voice.wav": voice}, max_total_s=2)
    assert error["message"] == ("the video would be 4.5 s long, over EXPORT_MAX_TOTAL_S = 2 s; longest scenes: "
                                "scenes[1] (id 'b') 3.5 s, scenes[0] (id 'a') 1 s")


def test_more_scenes_than_the_spec_allows_are_refused_in_our_words_beside_the_upload_count(env):
    # trial 15: pydantic's "List should have at most 200 items after validation, not 201"
    spec, uploads = max_storyboard(caption_chars=10)
    spec["scenes"].append({"id": "s200", "visual": {"type": "image", "src": "scene-200.png"},
                           "narration": {"src": "narration-200.wav"}})
    uploads += [{"name": "scene-200.png", "contentType": "image/png"},
                {"name": "narration-200.wav", "contentType": "audio/wav"}]
    r = env.c["export_start"].post("/", json={"spec": spec, "uploads": uploads})
    assert r.status_code == 400
    assert r.json["error"]["details"] == [  # the upload count is checked even though the spec is not valid
        {"path": "spec.scenes", "message": "201 scenes; at most 200 scenes per storyboard "
                                           "(EXPORT_MAX_SCENES / the spec's MAX_SCENES)"},
        {"path": "uploads", "message": "at most 401 uploads per export"}]


def test_a_file_over_a_limit_never_prints_as_equal_to_it(tmp_path):
    """Trial 15b: "media is 5 s long, over the limit of 5 s" (5.2 s) and "(9 MP), over the limit of
    9 MP" (8.64 against 8.6): the numbers are printed to the precision that tells them apart."""
    from PIL import Image
    from render_job.normalize import normalize_image
    from render_job.probe import probe
    from shared.errors import PermanentRenderError
    from tests import media_factory as mf
    mf.tone(tmp_path / "voice.wav", 5.2, rate=48000, freq=440)
    with pytest.raises(PermanentRenderError) as err:
        probe(str(tmp_path / "voice.wav"), label="voice.wav", full=True, max_duration_s=5.0)
    assert "media is 5.2 s long, over the limit of 5 s (RENDER_MAX_MEDIA_S)" in err.value.message
    Image.new("RGB", (3600, 2400), (10, 20, 30)).save(tmp_path / "big.png")
    with pytest.raises(PermanentRenderError) as err:
        normalize_image(str(tmp_path / "big.png"), str(tmp_path / "big.norm.jpg"), 1920, 1080,
                        max_pixels=8_600_000, max_decode_pixels=50_000_000, label="big.png")
    assert "image is 3600x2400 (8.64 MP), over the limit of 8.6 MP (RENDER_MAX_IMAGE_PIXELS)" in err.value.message
