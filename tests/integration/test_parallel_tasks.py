"""A parallel render's tasks run through the render job's real modes (issue 19; real FFmpeg, LocalStorage,
the real Reporter posting into a recording session).

The ~10 s storyboard of test_parts_render.py, told K = 4 parts with a 2 s floor: the plan cuts k = 3
(5 scenes). Tasks 0..3 (render_job.part_task.run_task, role "part") and task 4 (role "audio") run
one after the other as `python -m render_job` would run them (task_env's arguments), then the stitch
(render_job.stitch_task.run_stitch, told K). Checked: the pieces' objects and metadata, what each
task fetched, the reports' task and stages, task 3 doing nothing, a re-run skipping its uploaded
piece, the export's video (frames and duration of the plan), and the stitch deleting a part that does
not match the plan.
"""
from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from render_job.part_plan import plan_parts
from render_job.part_render import part_file
from render_job.part_task import run_task
from render_job.plan import build_plan
from render_job.reporter import Reporter
from render_job.stitch import result_lengths
from render_job.stitch_task import run_stitch
from shared.adapters.local_storage import LocalStorage
from shared.artifacts import AUDIO_PART, part_metadata, part_object
from shared.config import Settings
from shared.executions import AUDIO_ROLE, PART_ROLE
from shared.spec import parse_spec
from tests import media_factory as mf
from tests.integration.test_parts_render import storyboard

ROOT = Path(__file__).resolve().parents[2]
IN, OUT = "sceneflow-in", "sceneflow-out"
FPS = 30
JOB = "5f0c7a52-1d2e-4c3b-9a8f-0123456789ab"
OTHER = "5f0c7a52-1d2e-4c3b-9a8f-0123456789ac"  # the mismatch test's job: the same storyboard
K = 4


class RecordingSession:
    """A requests.Session stand-in: records every JSON body posted, answers 200."""

    def __init__(self):
        self.bodies = []

    def post(self, url, json=None, headers=None, timeout=None):
        self.bodies.append(json)

        class Resp:
            status_code = 200
        return Resp()


def settings():
    return Settings(input_bucket=IN, output_bucket=OUT, render_max_retries=3, render_min_part_s=2.0,
                    ffmpeg_binary=os.environ.get("FFMPEG_BINARY") or None)


def reporter(job_id, task):
    session = RecordingSession()
    return Reporter("http://api.invalid/export_complete", "tok", job_id, 0, min_interval_s=0.0, session=session,
                    task=task), session


def stage(storage, media, job_id):
    storage.upload_bytes(IN, f"jobs/{job_id}/spec.json", json.dumps(storyboard()).encode(), "application/json")
    for p in media.iterdir():
        storage.upload_bytes(IN, f"jobs/{job_id}/assets/{p.name}", p.read_bytes(), "application/octet-stream")


def run_part_or_audio(storage, root, job_id, index):
    """Part `index` (0..K-1), or the audio for index K, run with its role given directly (not
    through task_role): (RenderResult, report bodies, names of the asset files it fetched)."""
    role, role_index = (AUDIO_ROLE, K) if index == K else (PART_ROLE, index)
    rep, session = reporter(job_id, {"role": role, "index": role_index})
    work = root / f"work-{job_id[-2:]}-{index}"
    work.mkdir()
    result = run_task(job_id, storage, rep, settings(), str(work), 0, parts=K, role=role, index=role_index)
    fetched = sorted(os.listdir(work / "assets")) if (work / "assets").exists() else []
    shutil.rmtree(work)
    return result, session.bodies, fetched


def run_the_stitch(storage, root, job_id, name="stitch"):
    rep, session = reporter(job_id, {"role": "stitch", "index": 0})
    work = root / f"work-{job_id[-2:]}-{name}"
    work.mkdir()
    result = run_stitch(job_id, storage, rep, settings(), str(work), 0, parts=K)
    shutil.rmtree(work)
    return result, session.bodies


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("taskmedia")
    mf.ff("-f", "lavfi", "-i", "testsrc2=s=1280x720", "-frames:v", "1", str(d / "still.png"))
    mf.clip(d / "clip.mp4", seconds=2.0, size="640x360", rate=30, audio=True)
    mf.tone(d / "voice.wav", 1.5, rate=48000, freq=800)
    mf.tone(d / "music.wav", 3.0, rate=48000, freq=300)
    return d


@pytest.fixture(scope="module")
def tasks(tmp_path_factory, media):
    root = tmp_path_factory.mktemp("tasks")
    storage = LocalStorage(root / "store")
    stage(storage, media, JOB)
    runs = [run_part_or_audio(storage, root, JOB, i) for i in range(K + 1)]
    return root, storage, runs


@pytest.fixture(scope="module")
def cut():
    probes = {"voice.wav": {"duration_s": 1.5}, "clip.mp4": {"duration_s": 2.0, "video_duration_s": 2.0,
                                                             "width": 640, "height": 360, "has_audio": True}}
    plan = build_plan(parse_spec(storyboard()), probes)
    return plan, plan_parts(plan, K, settings().render_min_part_s)


def test_part_and_audio_tasks_upload_their_pieces_and_report_as_their_task(tasks, cut):
    root, storage, runs = tasks
    plan, parts = cut
    assert [(p.first_scene, p.last_scene, p.frames) for p in parts] == [(0, 0, 75), (1, 2, 93), (3, 4, 120)]
    statuses = [r.status for r, _, _ in runs]
    assert statuses == ["uploaded", "uploaded", "uploaded", "idle", "uploaded"], [r.error for r, _, _ in runs]
    assert all(r.exit_code == 0 for r, _, _ in runs)
    for p in parts:
        info = storage.stat(OUT, part_object(JOB, p.index))
        assert info.metadata == part_metadata(JOB, p.index, 3, p.frames) and info.content_type == "video/mp4"
    audio = storage.stat(OUT, part_object(JOB, AUDIO_PART))
    assert audio.content_type == "audio/mp4"
    assert {k: audio.metadata[k] for k in ("job-id", "part-index", "part-count")} == part_metadata(JOB, AUDIO_PART, 3)
    assert -20.0 < float(audio.metadata["loudness-i"]) < -10.0 and "loudness-tp" in audio.metadata
    assert storage.stat(OUT, part_object(JOB, 3)) is None  # task 3: nothing to do

    # what each task fetched (assets aNN, numbered by first use: still a00, voice a01, clip a02, music a03)
    fetched = [f for _, _, f in runs]
    assert fetched[0] == ["a00.png", "a01.wav", "a02.mp4"]  # scene 0's still, scene 1's clip (its transition)
    assert fetched[1] == ["a00.png", "a01.wav", "a02.mp4"]  # scene 2's still
    assert fetched[2] == ["a01.wav", "a02.mp4"]  # a colour and a title card: no picture
    assert fetched[4] == ["a01.wav", "a02.mp4", "a03.wav"]  # the audio: never a picture, the music

    # reports: every one names its task; preparing then rendering, the task's own progress; never succeeded
    for i, (_, bodies, _) in enumerate(runs):
        if i == 3:
            assert bodies == []
            continue
        task = {"role": "audio", "index": K} if i == K else {"role": "part", "index": i}
        assert bodies and all(b["task"] == task and b["jobId"] == JOB for b in bodies)
        assert {b["status"] for b in bodies} == {"running"}
        stages = [b["stage"] for b in bodies]
        assert stages[0] == "preparing" and stages[-1] == "rendering" and set(stages) == {"preparing", "rendering"}
        progress = [b["progress"] for b in bodies]
        # the last report, after the upload, is 1.0: it carries the whole task's usage (its cost)
        assert progress == sorted(progress) and progress[0] == 0.0 and progress[-1] == 1.0


def test_a_rerun_task_skips_its_uploaded_piece(tasks):
    root, storage, _ = tasks
    before = [storage.stat(OUT, part_object(JOB, i)).generation for i in (1, AUDIO_PART)]
    again = [run_part_or_audio(storage, root, JOB, i) for i in (1, K)]
    assert [r.status for r, _, _ in again] == ["uploaded", "uploaded"]
    assert [bodies for _, bodies, _ in again] == [[], []]  # nothing rendered, nothing reported
    assert [storage.stat(OUT, part_object(JOB, i)).generation for i in (1, AUDIO_PART)] == before


def test_the_stitch_publishes_the_export_as_a_single_render_does(tasks, cut):
    root, storage, _ = tasks
    plan, parts = cut
    result, bodies = run_the_stitch(storage, root, JOB)
    assert result.status == "succeeded" and result.exit_code == 0, result.error
    out = result.output
    video = root / "store" / OUT / "exports" / JOB / out["filename"]
    checked = result_lengths(str(video))
    total = sum(p.frames for p in parts)
    assert total == round(plan.total_s * FPS) == 288
    assert checked.frames == total and abs(checked.video_s - plan.total_s) <= 1 / FPS
    assert abs(out["durationS"] - plan.total_s) <= 1 / FPS
    assert (out["width"], out["height"]) == (1280, 720)
    assert out["uri"] == f"gs://{OUT}/exports/{JOB}/parts.mp4"
    assert out["loudness"]["integratedLufs"] == float(storage.stat(OUT, part_object(JOB, AUDIO_PART)).metadata["loudness-i"])
    assert storage.stat(OUT, f"exports/{JOB}/poster.jpg").size > 0
    assert [s["durationS"] for s in out["scenes"]] == [round(sc.duration, 3) for sc in plan.scenes]
    assert all(b["task"] == {"role": "stitch", "index": 0} for b in bodies)
    stages = [b.get("stage") for b in bodies if b["status"] == "running"]
    assert stages[0] == "stitching" and stages[-1] == "uploading" and set(stages) == {"stitching", "uploading"}
    assert stages.index("uploading") > max(i for i, s in enumerate(stages) if s == "stitching")
    assert bodies[-1]["status"] == "succeeded" and bodies[-1]["output"] == out

    # a retried stitch after the video was uploaded: the same output, nothing rendered again
    generation = storage.stat(OUT, f"exports/{JOB}/parts.mp4").generation
    again, bodies = run_the_stitch(storage, root, JOB, "stitch-again")
    assert again.status == "succeeded" and again.output == out
    assert storage.stat(OUT, f"exports/{JOB}/parts.mp4").generation == generation


def test_python_m_render_job_runs_the_mode_it_is_told(tasks):
    """`python -m render_job` with the env of a part execution and of the stitch (after the tests above):
    task 3 has nothing to do, task 1's piece is in, the stitch finds the video uploaded; each exits 0,
    and only the stitch reports, as the stitch."""
    root, _, _ = tasks
    posts = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = dict(os.environ, EXPORT_JOB_ID=JOB, CLOUD_RUN_TASK_ATTEMPT="0", EXPORT_STORAGE_BACKEND="local",
                EXPORT_LOCAL_STORAGE_DIR=str(root / "store"), EXPORT_INPUT_BUCKET=IN, EXPORT_OUTPUT_BUCKET=OUT,
                EXPORT_API_BASE=f"http://127.0.0.1:{server.server_address[1]}", EXPORT_WORKER_TOKEN="tok",
                RENDER_MIN_PART_S="2", RENDER_WORKDIR=str(root / "work-main"), PYTHONPATH=str(ROOT))
    part = dict(base, RENDER_MODE="part", EXPORT_PART_COUNT=str(K), CLOUD_RUN_TASK_COUNT=str(K + 1))
    try:
        # task index = part + 1 (task 0 renders the audio): part 3 (idle, k = 3), then part 1
        for env in (dict(part, CLOUD_RUN_TASK_INDEX="4"), dict(part, CLOUD_RUN_TASK_INDEX="2"),
                    dict(base, RENDER_MODE="stitch", EXPORT_PART_COUNT=str(K), CLOUD_RUN_TASK_INDEX="0",
                         CLOUD_RUN_TASK_COUNT="1")):
            proc = subprocess.run([sys.executable, "-m", "render_job"], cwd=str(ROOT), env=env, capture_output=True,
                                  text=True, timeout=120)
            assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
            finished = [json.loads(line) for line in proc.stdout.splitlines() if "render task finished" in line]
            assert [f["status"] for f in finished] == [{"2": "uploaded", "4": "idle"}.get(
                env.get("CLOUD_RUN_TASK_INDEX") if env.get("RENDER_MODE") == "part" else None, "succeeded")]
    finally:
        server.shutdown()
    assert [(p["status"], p["task"]) for p in posts] == [("running", {"role": "stitch", "index": 0}),
                                                         ("succeeded", {"role": "stitch", "index": 0})]
    assert posts[-1]["output"]["uri"] == f"gs://{OUT}/exports/{JOB}/parts.mp4"


def test_the_stitch_deletes_a_part_that_does_not_match_the_plan(tasks, media, cut):
    root, storage, _ = tasks
    _, parts = cut
    stage(storage, media, OTHER)
    pieces = root / "pieces"
    pieces.mkdir(exist_ok=True)
    for index in (0, 1, 2, AUDIO_PART):  # the first job's pieces, as if rendered for this one
        storage.download_file(OUT, part_object(JOB, index), str(pieces / f"{index}"))
    loud = {k: v for k, v in storage.stat(OUT, part_object(JOB, AUDIO_PART)).metadata.items() if k.startswith("loud")}
    storage.upload_file(OUT, part_object(OTHER, AUDIO_PART), str(pieces / "-1"), "audio/mp4",
                        metadata={**part_metadata(OTHER, AUDIO_PART, 3), **loud})
    storage.upload_file(OUT, part_object(OTHER, 0), str(pieces / "0"), "video/mp4",
                        metadata=part_metadata(OTHER, 0, 3, parts[0].frames))
    # part 1's object holds part 2's render (another range) while its metadata claims part 1's frames
    storage.upload_file(OUT, part_object(OTHER, 1), str(pieces / "2"), "video/mp4",
                        metadata=part_metadata(OTHER, 1, 3, parts[1].frames))
    storage.upload_file(OUT, part_object(OTHER, 2), str(pieces / "2"), "video/mp4",
                        metadata=part_metadata(OTHER, 2, 3, parts[2].frames))
    result, bodies = run_the_stitch(storage, root, OTHER)
    # the stitch ends without failing the export or retrying (exit 0, no failed report): reconcile
    # finds the piece gone and renders only that part again (shared.part_repairs)
    assert (result.exit_code, result.status, result.error["code"]) == (0, "piece_missing", "part_mismatch")
    assert result.error["message"].startswith(f"part 1 (scenes[1]..scenes[2]): {parts[2].frames} frames in "
                                              f"{part_file(1)}, the plan has {parts[1].frames}")
    assert storage.stat(OUT, part_object(OTHER, 1)) is None  # deleted: the parts' re-run renders it again
    assert storage.stat(OUT, part_object(OTHER, 0)) is not None and storage.stat(OUT, part_object(OTHER, 2)) is not None
    assert bodies and all(b["status"] == "running" for b in bodies)  # never failed
    assert storage.stat(OUT, f"exports/{OTHER}/parts.mp4") is None

    # again, now part 1 missing: the same end, nothing deleted
    result, bodies = run_the_stitch(storage, root, OTHER, "stitch-missing")
    assert (result.exit_code, result.status, result.error["code"]) == (0, "piece_missing", "part_missing")
    assert bodies and all(b["status"] == "running" for b in bodies)
    assert "part 1 (scenes[1]..scenes[2]): not in the bucket" in result.error["message"]
    # a piece whose metadata says it was cut for another plan: deleted before it is even downloaded
    storage.upload_file(OUT, part_object(OTHER, 1), str(pieces / "1"), "video/mp4",
                        metadata=part_metadata(OTHER, 1, 3, parts[1].frames))
    storage.upload_file(OUT, part_object(OTHER, 2), str(pieces / "2"), "video/mp4",
                        metadata=part_metadata(OTHER, 2, 3, parts[2].frames + 30))
    result, _ = run_the_stitch(storage, root, OTHER, "stitch-other-plan")
    assert (result.exit_code, result.status, result.error["code"]) == (0, "piece_missing", "part_mismatch")
    assert result.error["message"].startswith("part 2 (scenes[3]..scenes[4]): its piece was cut from a plan")
    assert storage.stat(OUT, part_object(OTHER, 2)) is None


def test_a_part_failing_permanently_names_its_scenes(tasks, media):
    """A picture that does not decode fails the part that shows it (the audio task never reads it)."""
    root, storage, _ = tasks
    job_id = "5f0c7a52-1d2e-4c3b-9a8f-0123456789ad"
    stage(storage, media, job_id)
    storage.upload_bytes(IN, f"jobs/{job_id}/assets/still.png", b"\x89PNG\r\n\x1a\nnot a picture", "image/png")
    result, bodies, _ = run_part_or_audio(storage, root, job_id, 1)
    assert (result.exit_code, result.status, result.error["code"]) == (0, "failed", "invalid_media")
    failed = [b for b in bodies if b["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["task"] == {"role": "part", "index": 1}
    message = failed[0]["error"]["message"]
    assert message.startswith("part 1 (scenes[1]..scenes[2]): ") and "scenes[2] (id 's2') visual.src 'still.png'" in message
    assert storage.stat(OUT, part_object(job_id, 1)) is None
