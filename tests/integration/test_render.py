"""A real render of a three-scene storyboard through run_export, with LocalStorage and a fake reporter.

Uses FFmpeg from FFMPEG_BINARY, else PATH, else imageio-ffmpeg (run once with each). Checks the MP4
with PyAV: codecs, size, rate, durations, faststart, captions, poster, metadata and reports.
"""
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # until the project's pytest config sets pythonpath
    sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import pysubs2  # noqa: E402
import pytest  # noqa: E402

from render_job.job import run_export  # noqa: E402
from shared.adapters.local_storage import LocalStorage  # noqa: E402
from shared.config import Settings  # noqa: E402
from tests import media_factory as mf  # noqa: E402
from tests.fakes import FakeReporter  # noqa: E402

SAMPLES = ROOT / "examples" / "storyboard"
IN, OUT = "sceneflow-in", "sceneflow-out"
FPS = 30
CAPTIONS = [
    "In 1995, Eileen Collins became the first woman to pilot the space shuttle.",
    "Every launch begins long before ignition: months of checks, rehearsals, and 100% focus.",
    "Mission control keeps a cat, of course \u2014 it's the crew's {mascot}.",
]




def settings():
    return Settings(input_bucket=IN, output_bucket=OUT, render_max_retries=3,
                    ffmpeg_binary=os.environ.get("FFMPEG_BINARY") or None)


def put_job(storage, job_id, spec, assets):
    storage.upload_bytes(IN, f"jobs/{job_id}/spec.json", json.dumps(spec).encode(), "application/json")
    for name, data in assets.items():
        storage.upload_bytes(IN, f"jobs/{job_id}/assets/{name}", data, "application/octet-stream")


def storyboard():
    return {
        "version": 1, "title": "Moon Mission: 100% Ready!",
        "output": {"resolution": "720p", "aspectRatio": "16:9", "fps": FPS, "quality": "draft"},
        "scenes": [
            {"id": "s1", "visual": {"type": "image", "src": "astronaut.png", "fit": "cover"},
             "narration": {"src": "n1.wav"}, "caption": {"text": CAPTIONS[0]},
             "transition": {"type": "fade", "duration": 0.5}},
            {"id": "s2", "visual": {"type": "image", "src": "rocket.jpg", "fit": "contain"},
             "narration": {"src": "n2.mp3"}, "caption": {"text": CAPTIONS[1]},
             "transition": {"type": "wipeleft", "duration": 0.5}},
            {"id": "s3", "visual": {"type": "video", "src": "clip_pan.mp4"},
             "narration": {"src": "n5.wav"}, "caption": {"text": CAPTIONS[2]}},
        ],
        "music": {"src": "music.ogg", "volume": 0.25, "loop": True, "ducking": True, "fadeInS": 1, "fadeOutS": 2},
        "captions": {"burnIn": True, "sidecar": ["srt", "vtt"]},
        "audio": {"loudnessLufs": -16},
        "poster": {"scene": 1},
    }


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("render")
    storage = LocalStorage(root / "store")
    job_id = "job-render-1"
    names = ["astronaut.png", "n1.wav", "rocket.jpg", "n2.mp3", "clip_pan.mp4", "n5.wav", "music.ogg"]
    put_job(storage, job_id, storyboard(), {n: (SAMPLES / n).read_bytes() for n in names})
    reporter = FakeReporter()
    work = root / "work"
    work.mkdir()
    t = time.monotonic()
    result = run_export(job_id, storage, reporter, settings(), str(work), attempt=0)
    elapsed = time.monotonic() - t
    print(f"\nrun_export took {elapsed:.1f} s (timings {result.timings})")
    return {"storage": storage, "root": root, "job_id": job_id, "reporter": reporter, "result": result,
            "elapsed": elapsed}


def test_render_succeeds_and_reports(rendered):
    result, reporter = rendered["result"], rendered["reporter"]
    assert result.exit_code == 0, result.error
    assert result.status == "succeeded"
    calls = reporter.calls
    assert calls[-1]["status"] == "succeeded"
    running = [c for c in calls if c["status"] == "running"]
    progress = [c["progress"] for c in running]
    assert progress == sorted(progress) and progress[0] == 0.0 and progress[-1] <= 1.0
    stages = [c["stage"] for c in running]
    assert stages.index("preparing") < stages.index("rendering") < stages.index("uploading")
    assert any(0.1 < p < 0.9 for p in progress)  # ffmpeg progress arrived
    out = calls[-1]["output"]
    job = rendered["job_id"]
    assert out["uri"] == f"gs://{OUT}/exports/{job}/moon-mission-100-ready.mp4"
    assert out["filename"] == "moon-mission-100-ready.mp4"
    assert (out["width"], out["height"]) == (1280, 720)
    assert out["poster"] == f"exports/{job}/poster.jpg"
    assert out["captions"] == {"srt": f"exports/{job}/captions.srt", "vtt": f"exports/{job}/captions.vtt"}
    assert out["durationS"] == pytest.approx(result.plan.total_s, abs=1 / FPS)
    assert out["sizeBytes"] > 10_000


def test_mp4_streams_durations_and_faststart(rendered):
    storage, job = rendered["storage"], rendered["job_id"]
    plan = rendered["result"].plan
    name = f"exports/{job}/moon-mission-100-ready.mp4"
    info = storage.stat(OUT, name)
    assert info is not None and info.content_type == "video/mp4"
    assert info.metadata == {"job-id": job, "duration-s": info.metadata["duration-s"], "width": "1280",
                             "height": "720", "filename": "moon-mission-100-ready.mp4", "poster": "poster.jpg",
                             "srt": "captions.srt", "vtt": "captions.vtt",
                             "scene-starts": ",".join(f"{sc.start:.3f}" for sc in plan.scenes),
                             "scene-durations": ",".join(f"{sc.duration:.3f}" for sc in plan.scenes),
                             "loudness-i": info.metadata["loudness-i"], "loudness-tp": info.metadata["loudness-tp"],
                             "loudness-lra": info.metadata["loudness-lra"]}
    assert float(info.metadata["loudness-i"]) == pytest.approx(-16, abs=1.0)
    assert rendered["result"].output["scenes"] == [{"startS": round(sc.start, 3), "durationS": round(sc.duration, 3)}
                                                   for sc in plan.scenes]
    path = rendered["root"] / "store" / OUT / name
    atoms = mf.top_level_atoms(path)
    assert atoms.index("moov") < atoms.index("mdat")
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert v.codec_context.name == "h264"
        assert v.codec_context.pix_fmt == "yuv420p"
        assert (v.codec_context.width, v.codec_context.height) == (1280, 720)
        assert v.average_rate == FPS
        assert a.codec_context.name == "aac"
        assert a.sample_rate == 48000 and a.codec_context.layout.nb_channels == 2
        container_s = c.duration / 1_000_000
        v_s = float(v.duration * v.time_base)
        a_s = float(a.duration * a.time_base)
        assert container_s == pytest.approx(plan.total_s, abs=1 / FPS)
        assert v_s == pytest.approx(plan.total_s, abs=1 / FPS)
        assert a_s == pytest.approx(v_s, abs=0.05)
        # the sound heard covers the picture to within one frame, and its packets have no timestamp
        # gap (FFmpeg 9's loudnorm stamps its last ~3 s 3200 samples late: unless the graph re-stamps
        # them, ~67-83 ms of sound go missing while the stream's duration above still looks right)
        packets = [p for p in c.demux(a) if p.size]
        gaps = [(p.pts, q.pts - p.pts - p.duration) for p, q in zip(packets, packets[1:])
                if q.pts != p.pts + p.duration]
        assert gaps == []
    with av.open(str(path)) as c:
        heard_s = sum(f.samples for f in c.decode(audio=0)) / 48000
        assert heard_s == pytest.approx(v_s, abs=1 / FPS)
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frame = next(c.decode(video=0))
        assert frame.format.name == "yuv420p"
        cc = v.codec_context
        if hasattr(cc, "color_range"):
            assert int(cc.color_range) == 1  # MPEG / limited ("tv")
        if hasattr(cc, "colorspace"):
            assert int(cc.colorspace) == 1  # BT.709


def test_sidecar_captions_match_plan(rendered):
    storage, job = rendered["storage"], rendered["job_id"]
    plan = rendered["result"].plan
    assert len(plan.cues) == 3
    for ext, ctype in (("srt", "application/x-subrip"), ("vtt", "text/vtt")):
        info = storage.stat(OUT, f"exports/{job}/captions.{ext}")
        assert info is not None and info.content_type == ctype
        text = storage.read_bytes(OUT, f"exports/{job}/captions.{ext}").decode("utf-8")
        subs = pysubs2.SSAFile.from_string(text, format_=ext)
        assert len(subs) == len(plan.cues)
        for ev, cue in zip(subs, plan.cues):
            assert ev.start / 1000 == pytest.approx(cue.start, abs=0.05)
            assert ev.end / 1000 == pytest.approx(cue.end, abs=0.05)
        # apostrophes, colons, %, dash literal; braces as no player reads markup (test_sidecar_safety.py)
        seen = text.replace("\u200b", "").replace("\uff5b", "{").replace("\uff5d", "}").replace("&amp;", "&")
        for caption in CAPTIONS:
            assert caption in seen
    # each caption is shown while its scene is the visible one
    assert plan.cues[1].start == pytest.approx(plan.scenes[1].start)
    assert plan.cues[-1].end == pytest.approx(plan.total_s)


def test_poster_decodes(rendered):
    storage, job = rendered["storage"], rendered["job_id"]
    info = storage.stat(OUT, f"exports/{job}/poster.jpg")
    assert info is not None and info.content_type == "image/jpeg" and info.size > 1000
    path = rendered["root"] / "store" / OUT / f"exports/{job}/poster.jpg"
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        assert (frame.width, frame.height) == (1280, 720)


def test_retry_after_video_uploaded_reports_success_without_rendering(rendered, tmp_path):
    """A retried task finds the video (uploaded last) in place and reports success from its metadata."""
    storage, job = rendered["storage"], rendered["job_id"]
    before = storage.stat(OUT, f"exports/{job}/moon-mission-100-ready.mp4")
    reporter = FakeReporter()
    t = time.monotonic()
    result = run_export(job, storage, reporter, settings(), str(tmp_path), attempt=1)
    assert time.monotonic() - t < 5
    assert result.exit_code == 0 and reporter.calls[-1]["status"] == "succeeded"
    assert reporter.calls[-1]["output"] == rendered["reporter"].calls[-1]["output"]
    assert storage.stat(OUT, f"exports/{job}/moon-mission-100-ready.mp4").generation == before.generation


def test_existing_outputs_conflict_counts_as_uploaded(tmp_path):
    """Poster and captions left by an interrupted attempt: if_generation_match=0 conflicts are fine."""
    storage = LocalStorage(tmp_path / "store")
    spec = {"output": {"resolution": "720p", "fps": FPS, "quality": "draft"},
            "scenes": [{"id": "c", "visual": {"type": "color", "color": "#204060"}, "duration": 1,
                        "caption": {"text": "Only: colour"}}]}
    put_job(storage, "job-colour", spec, {})
    old = storage.upload_bytes(OUT, "exports/job-colour/poster.jpg", b"old", "image/jpeg", if_generation_match=0)
    reporter = FakeReporter()
    (tmp_path / "work").mkdir()
    result = run_export("job-colour", storage, reporter, settings(), str(tmp_path / "work"), attempt=1)
    assert result.exit_code == 0, result.error
    assert storage.stat(OUT, "exports/job-colour/poster.jpg").generation == old
    out = reporter.calls[-1]["output"]
    assert out["filename"] == "export.mp4" and out["durationS"] == pytest.approx(1.0, abs=1 / FPS)
    path = tmp_path / "store" / OUT / "exports/job-colour/export.mp4"
    with av.open(str(path)) as c:  # silent track still present
        assert c.streams.audio[0].sample_rate == 48000


def test_foreign_video_in_the_output_folder_fails_instead_of_succeeding(tmp_path):
    """A video object already in exports/{jobId}/ without our job-id metadata is not ours: the job
    fails with output_conflict instead of reporting that file (16 bytes of junk) as its output."""
    storage = LocalStorage(tmp_path / "store")
    spec = {"output": {"resolution": "720p", "fps": FPS, "quality": "draft"},
            "scenes": [{"id": "c", "visual": {"type": "color", "color": "#204060"}, "duration": 1}]}
    put_job(storage, "job-foreign", spec, {})
    junk = storage.upload_bytes(OUT, "exports/job-foreign/export.mp4", b"not our video 16", "video/mp4",
                                if_generation_match=0)
    reporter = FakeReporter()
    (tmp_path / "work").mkdir()
    result = run_export("job-foreign", storage, reporter, settings(), str(tmp_path / "work"), attempt=0)
    assert result.exit_code == 0 and result.status == "failed"
    final = reporter.calls[-1]
    assert final["status"] == "failed" and final["error"]["code"] == "output_conflict"
    assert "exports/job-foreign/export.mp4" in final["error"]["message"]
    assert storage.stat(OUT, "exports/job-foreign/export.mp4").generation == junk


def test_corrupt_asset_fails_permanently_naming_scene_and_file(tmp_path):
    storage = LocalStorage(tmp_path / "store")
    spec = storyboard()
    spec["scenes"][1]["visual"]["src"] = "broken.png"
    names = ["astronaut.png", "n1.wav", "n2.mp3", "clip_pan.mp4", "n5.wav", "music.ogg"]
    assets = {n: (SAMPLES / n).read_bytes() for n in names}
    assets["broken.png"] = b"\x89PNG garbage " + os.urandom(2000)
    put_job(storage, "job-corrupt", spec, assets)
    reporter = FakeReporter()
    (tmp_path / "work").mkdir()
    result = run_export("job-corrupt", storage, reporter, settings(), str(tmp_path / "work"), attempt=0)
    assert result.exit_code == 0 and result.status == "failed"
    final = reporter.calls[-1]
    assert final["status"] == "failed"
    msg = final["error"]["message"]
    assert "scenes[1]" in msg and "'s2'" in msg and "visual.src" in msg and "broken.png" in msg
    assert final["error"]["code"] == "invalid_media"
    assert storage.stat(OUT, "exports/job-corrupt/poster.jpg") is None


def test_missing_assets_all_listed_and_foreign_bucket_rejected(tmp_path):
    storage = LocalStorage(tmp_path / "store")
    spec = storyboard()
    spec["music"]["src"] = "gs://someone-elses-bucket/library/music.ogg"
    put_job(storage, "job-missing", spec, {"astronaut.png": (SAMPLES / "astronaut.png").read_bytes()})
    reporter = FakeReporter()
    result = run_export("job-missing", storage, reporter, settings(), str(tmp_path), attempt=0)
    assert result.exit_code == 0
    msg = reporter.calls[-1]["error"]["message"]
    for src in ("n1.wav", "rocket.jpg", "n2.mp3", "clip_pan.mp4", "n5.wav", "someone-elses-bucket"):
        assert src in msg
    assert "astronaut.png" not in msg


def test_invalid_spec_in_the_job_folder_fails_naming_every_problem(tmp_path):
    """A spec.json that never went through export_start (written straight to the bucket): the job
    fails permanently and the client's message names each invalid field, not only a count."""
    storage = LocalStorage(tmp_path / "store")
    spec = storyboard()
    spec["output"]["fps"] = 29
    spec["scenes"][1]["transition"]["type"] = "spin-around"
    put_job(storage, "job-bad-spec", spec, {})
    reporter = FakeReporter()
    result = run_export("job-bad-spec", storage, reporter, settings(), str(tmp_path), attempt=0)
    assert (result.exit_code, result.status) == (0, "failed")
    final = reporter.calls[-1]
    assert final["status"] == "failed" and final["error"]["code"] == "invalid_request"
    msg = final["error"]["message"]
    assert msg.startswith("spec is invalid: 2 problem(s): ")
    assert "output.fps" in msg and "scenes[1].transition.type" in msg, msg
    assert len(result.error["details"]) == 2


def test_transient_error_retries_until_last_attempt(tmp_path):
    class Flaky(LocalStorage):
        def read_bytes(self, bucket, name):
            from shared.errors import TransientError
            raise TransientError("storage unavailable")

    storage = Flaky(tmp_path / "store")
    r1 = FakeReporter()
    res = run_export("job-x", storage, r1, settings(), str(tmp_path), attempt=0)
    assert res.exit_code == 1 and res.status == "retry"
    assert all(c["status"] == "running" for c in r1.calls)
    r2 = FakeReporter()
    res = run_export("job-x", storage, r2, settings(), str(tmp_path), attempt=3)
    assert res.exit_code == 1 and r2.calls[-1]["status"] == "failed"
    assert r2.calls[-1]["error"]["code"] == "unavailable"


def test_main_wiring_via_python_m_render_job(tmp_path):
    """`python -m render_job` with the local storage backend posts its reports to EXPORT_API_BASE."""
    import http.server
    import subprocess
    import threading

    posts = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            posts.append((self.path, self.headers.get("Authorization"), json.loads(body)))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        store = tmp_path / "store"
        storage = LocalStorage(store)
        spec = {"title": "Wiring", "output": {"resolution": "720p", "fps": 24, "quality": "draft"},
                "scenes": [{"id": "c", "visual": {"type": "color"}, "duration": 0.5}]}
        put_job(storage, "job-main", spec, {})
        env = dict(os.environ, EXPORT_JOB_ID="job-main", CLOUD_RUN_TASK_ATTEMPT="0", CLOUD_RUN_TASK_INDEX="0",
                   CLOUD_RUN_TASK_COUNT="1", CLOUD_RUN_EXECUTION="exec-1", EXPORT_STORAGE_BACKEND="local",
                   EXPORT_LOCAL_STORAGE_DIR=str(store), EXPORT_INPUT_BUCKET=IN, EXPORT_OUTPUT_BUCKET=OUT,
                   EXPORT_API_BASE=f"http://127.0.0.1:{server.server_address[1]}", EXPORT_WORKER_TOKEN="tok-123",
                   RENDER_WORKDIR=str(tmp_path / "work"), PYTHONPATH=str(ROOT))
        proc = subprocess.run([sys.executable, "-m", "render_job"], cwd=str(ROOT), env=env, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "tok-123" not in proc.stdout + proc.stderr
        for line in proc.stdout.splitlines():
            entry = json.loads(line)
            assert entry["severity"] and entry["message"]
        assert all(p[0] == "/export_complete" and p[1] == "Bearer tok-123" for p in posts)
        assert posts[-1][2]["status"] == "succeeded" and posts[-1][2]["jobId"] == "job-main"
        assert posts[-1][2]["output"]["uri"] == f"gs://{OUT}/exports/job-main/wiring.mp4"
        assert list((tmp_path / "work").iterdir()) == []  # scratch space removed
    finally:
        server.shutdown()


def test_runner_kills_a_stalled_ffmpeg(tmp_path):
    """The watchdog kills a process whose progress stops moving and raises TransientError."""
    from render_job.runner import run_ffmpeg
    from shared.errors import PermanentRenderError, TransientError

    fake = tmp_path / "fake_ffmpeg.py"
    fake.write_text("import sys, time\n"
                    "print('out_time_us=100000', flush=True)\n"
                    "print('progress=continue', flush=True)\n"
                    "while True:\n    print('out_time_us=100000', flush=True); time.sleep(0.1)\n")
    seen = []
    t = time.monotonic()
    with pytest.raises(TransientError, match="stalled"):
        run_ffmpeg([sys.executable, str(fake)], total_s=1.0, on_progress=seen.append, stall_s=1.5)
    assert time.monotonic() - t < 10
    assert seen == [pytest.approx(0.1)]
    bad = tmp_path / "bad_ffmpeg.py"
    bad.write_text("import sys\nsys.stderr.write('x.png: Invalid data found when processing input\\n')\nsys.exit(1)\n")
    with pytest.raises(PermanentRenderError, match="Invalid data found"):
        run_ffmpeg([sys.executable, str(bad)], total_s=1.0)
