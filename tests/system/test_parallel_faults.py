"""Fault tests of the parallel path (issue 19, "Done when"), on real PostgreSQL.

Through the real pipeline (an embedded stack on PostgreSQL: functions, the storage emulator and its
finalize events, the local launcher running `python -m render_job` task subprocesses, forced down
the parallel path with RENDER_PARALLEL_AFTER_S=0, RENDER_MIN_PART_S=2, RENDER_MAX_PARTS=3):
a. a part task SIGKILLed while its FFmpeg renders is retried by the launcher and the export succeeds:
   the stitch found one object per part (and the audio), part 1's piece was uploaded once, the video
   has the plan's frames;
b. a part failing for good (an undecodable still that only part 0 reads: a part fetches the pictures
   of its own scenes and of the scene after its last) fails the job naming the part's scenes and the
   scene's path; no stitch is started;
d. cancel while the parts render stops every task process of the execution (none left, no process
   group file) and the job stays canceled, no stitch started;
e. a lost stitch (its launch "succeeded" but the execution ran nothing) is repaired by
   reconcile_exports, and the export succeeds.
And c. the same "all parts in" finalize event (the last piece's CloudEvent, as Eventarc POSTs it)
delivered 50 times at once to on_object_finalized served by functions-framework starts one stitch.
Faults come from a RENDER_PYTHON stand-in (parallel_flows.HOOKS) and the recording launcher; nothing
here adds a test-only path to production code.
"""
from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from infra.local import client
from infra.local.eventarc import finalize_cloudevent
from infra.local.stack import EmbeddedStack, fresh_postgres_database, migrate
from infra.local.tasks import task_processes
from parallel_flows import asset_files, frame_count, install_hooks, objects, start, wait_terminal
from sceneflow_flows import wait_for_condition
from shared import bootstrap
from shared.adapters.local_launcher import TASK_GROUP_SUFFIX
from shared.adapters.local_storage import LocalStorage
from shared.artifacts import AUDIO_PART, part_metadata, part_object
from shared.config import Settings
from shared.part_store import SqlPartStore
from tests.fakes import RecordingLauncher, RecordingPublisher
from tests.invariants import check_stack

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PARALLEL_ENV = {"RENDER_PARALLEL_AFTER_S": "0", "RENDER_MIN_PART_S": "2", "RENDER_MAX_PARTS": "3",
                "RECONCILE_STALE_AFTER_S": "0"}


def spec(first_still: str = "astronaut.png", seconds: float = 2.5, quality: str = "draft") -> dict:
    """Three stills with Ken Burns motion, cut, `seconds` each: 3 parts of one scene each."""
    stills = (first_still, "rocket.jpg", "hubble_deep_field.jpg")
    return {"version": 1, "title": "Parallel faults",
            "output": {"resolution": "720p", "aspectRatio": "16:9", "fps": 30, "quality": quality},
            "scenes": [{"id": f"s{i}", "visual": {"type": "image", "src": src, "motion": "zoom-in"},
                        "caption": {"text": f"Scene {i}"}, "duration": seconds} for i, src in enumerate(stills)],
            "music": {"src": "music.ogg", "volume": 0.3, "loop": True},
            "captions": {"burnIn": True, "sidecar": ["srt"]}}


@pytest.fixture(scope="module")
def stack(run_dir, pg_url, tmp_path_factory):
    folder = tmp_path_factory.mktemp("parallel-faults")
    wrapper, hooks = install_hooks(folder)
    db = fresh_postgres_database(pg_url, prefix="sceneflow_pfaults")
    migrate(db)
    env = {**PARALLEL_ENV, "DATABASE_URL": db, "RENDER_PYTHON": str(wrapper)}
    with EmbeddedStack(run_dir=run_dir / f"parallel-faults-{uuid.uuid4().hex[:6]}", extra_env=env) as s:
        s.hooks = hooks
        yield s
        check_stack(s)  # every succeeded job has its own video


def execution_of(stack, job_id: str) -> str:
    return client.get_status(stack.base, job_id)["executionName"]


def task_exits(stack, job_id: str, execution: str) -> dict[int, list[int]]:
    """{task index: exit codes of its attempts, in order} of one execution (the launcher's log)."""
    out: dict[int, list[int]] = {}
    for e in stack.log_entries("render task exited", job_id=job_id):
        if e["execution"] == execution:
            out.setdefault(e["taskIndex"], []).append(e["exitCode"])
    return out


def no_task_left(stack) -> bool:
    return not task_processes(stack.run_dir / "render")


def test_a_part_task_killed_mid_render_is_retried_and_the_export_has_one_part_per_range(stack, tmp_path):
    sb = spec()
    job_id = start(stack.base, sb, asset_files(sb), stack.hooks, kill={"role": "part", "index": 1}, keepPieces=True)
    final = wait_terminal(stack.base, job_id)
    killed = json.loads((stack.hooks / f"{job_id}-killed.json").read_text())
    assert killed == {"killed": True, "ffmpegAliveAtKill": True, "index": 1}, killed
    assert final["status"] == "succeeded", (final.get("error"), stack.run_dir)
    assert final["parts"] == {"count": 3, "rendered": 3, "audio": True}
    exits = wait_for_condition(lambda: (lambda x: x if len(x) == 4 and len(x[2]) == 2 else None)(
        task_exits(stack, job_id, final["executionName"])), 30, "every part task to exit")
    # by task index (task 0 renders the audio): part 1's task killed once, retried on its own
    assert exits == {0: [0], 1: [0], 2: [137, 0], 3: [0]}, exits
    # what the stitch found: one object per part, each with its range's frames, and the audio
    found = json.loads((stack.hooks / f"{job_id}-pieces-0.json").read_text())
    assert sorted(o["name"] for o in found) == sorted(part_object(job_id, i) for i in (0, 1, 2, AUDIO_PART))
    frames = {o["name"]: int(o["metadata"]["frames"]) for o in found if o["name"].endswith(".mp4")}
    assert list(frames.values()) == [75, 75, 75]
    for name, n in frames.items():
        assert frame_count(stack.hooks / f"{job_id}-pieces-0" / name.rsplit("/", 1)[1]) == n
    # part 1's piece was uploaded once (the killed attempt never got that far): one finalize of it
    delivered = [k for k in stack.poller.delivered if k[1] == part_object(job_id, 1)]
    assert len(delivered) == 1, delivered
    assert len(stack.log_entries("stitch execution started", job_id=job_id)) == 1
    video = client.download(final["output"]["url"], tmp_path / "v.mp4")
    assert frame_count(video) == 225
    assert objects(stack, f"parts/{job_id}/") == []  # deleted once the export succeeded


def test_a_part_failing_for_good_fails_the_job_naming_its_scenes_and_starts_no_stitch(stack, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture at all")
    sb = spec(first_still="broken.png")
    files = [broken, *asset_files(sb)[1:]]
    job_id = start(stack.base, sb, files)
    final = wait_terminal(stack.base, job_id)
    assert final["status"] == "failed", final
    message = final["error"]["message"]
    assert message.startswith("part 0 (scenes[0]..scenes[0]): "), message
    assert "scenes[0]" in message and "visual.src 'broken.png'" in message, message
    wait_for_condition(lambda: no_task_left(stack), 30, "the execution's tasks to stop")
    assert not stack.log_entries("stitch execution started", job_id=job_id)
    assert client.get_status(stack.base, job_id)["status"] == "failed"


def test_cancel_during_the_parts_stops_every_task_and_the_job_stays_canceled(stack):
    sb = spec(seconds=8.0, quality="standard")  # long enough to be canceled while the parts render
    job_id = start(stack.base, sb, asset_files(sb))
    st = wait_for_condition(lambda: (lambda s: s if s.get("stage") == "rendering" else None)(
        client.get_status(stack.base, job_id)), 120, "the parts to render")
    assert st["parts"]["rendered"] < st["parts"]["count"] and not st["parts"]["audio"], st["parts"]
    execution = st["executionName"]
    wait_for_condition(lambda: task_processes(stack.run_dir / "render"), 30, "task processes")
    r = requests.post(f"{stack.base}/export_cancel", json={"jobId": job_id}, timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "canceled", r.text
    wait_for_condition(lambda: no_task_left(stack), 30, "every task process to end")
    assert list((stack.run_dir / "render").glob(f"*{TASK_GROUP_SUFFIX}")) == []
    # the tasks running when it was canceled were stopped; the others never started
    exits = wait_for_condition(lambda: task_exits(stack, job_id, execution), 10, "the tasks' exits")
    assert exits and all(codes and codes[-1] != 0 for codes in exits.values()), exits
    assert len(exits) <= 2, exits  # EXPORT_LOCAL_TASK_PARALLELISM = 2 of the 4 tasks
    final = client.get_status(stack.base, job_id)
    assert final["status"] == "canceled" and [h["status"] for h in final["history"]][-1] == "canceled"
    assert not stack.log_entries("stitch execution started", job_id=job_id)


def test_a_lost_stitch_is_repaired_by_reconcile_and_the_export_succeeds(stack, tmp_path):
    sb = spec()
    job_id = start(stack.base, sb, asset_files(sb), stack.hooks, stitchNoop=True)
    noop = stack.hooks / f"{job_id}-stitch-noop"
    lost = wait_for_condition(lambda: noop.exists() and noop.read_text(), 120, "the stitch execution")
    wait_for_condition(lambda: task_exits(stack, job_id, lost) == {0: [0]}, 30, "the lost stitch to end")
    st = client.get_status(stack.base, job_id)
    assert st["status"] == "running" and st["parts"] == {"count": 3, "rendered": 3, "audio": True}, st
    r = requests.post(f"{stack.base}/reconcile_exports", timeout=60)
    assert r.status_code == 200 and r.json().get("relaunched") == 1, r.text
    final = wait_terminal(stack.base, job_id)
    assert final["status"] == "succeeded", (final.get("error"), stack.run_dir)
    started = stack.log_entries("stitch execution started", job_id=job_id)
    assert len(started) == 2 and started[0]["execution"] == lost, started
    assert len(stack.log_entries("reconcile relaunched the stitch", job_id=job_id)) == 1
    assert frame_count(client.download(final["output"]["url"], tmp_path / "v.mp4")) == 225


# --------------------------------------------------------------------------------------------------
# c. 50 concurrent deliveries of the "all parts in" event through the HTTP entry point

SOURCE = str(ROOT / "functions" / "main.py")
COLOR_LONG = {"version": 1, "title": "Fifty", "output": {"resolution": "720p"},
              "scenes": [{"id": f"c{i}", "visual": {"type": "color"}, "duration": 4} for i in range(3)]}


@contextmanager
def functions_server(db_url: str, storage, launcher):
    """functions/main.py's export_start, export_status and on_object_finalized through
    functions-framework on a threaded werkzeug server, wired to this service."""
    from werkzeug.serving import make_server

    from infra.local.gateway import build_app

    server = make_server("127.0.0.1", 0, build_app(SOURCE, ("export_start", "export_status", "on_object_finalized")),
                         threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    settings = Settings(project="sceneflow-pfaults", database_url=db_url, input_bucket="in", output_bucket="out",
                        worker_token="t", api_base=base, render_parallel_after_s=0.0, render_min_part_s=2.0,
                        render_max_parts=3)
    service = bootstrap.build_service(settings, storage=storage, launcher=launcher, publisher=RecordingPublisher(),
                                      migrate_db=False)
    bootstrap.use_service(service)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="pfaults-functions")
    thread.start()
    try:
        yield base, service
    finally:
        server.shutdown()
        thread.join(10)
        bootstrap.use_service(None)
        service.repo._sessions.kw["bind"].dispose()


def test_fifty_concurrent_deliveries_of_the_all_parts_in_event_start_one_stitch(pg_url, tmp_path):
    db = fresh_postgres_database(pg_url, prefix="sceneflow_pfaults")
    migrate(db)
    storage, launcher = LocalStorage(tmp_path / "gcs"), RecordingLauncher()
    with functions_server(db, storage, launcher) as (base, service):
        r = requests.post(f"{base}/export_start", json={"spec": COLOR_LONG}, timeout=30)
        assert r.status_code == 202 and r.json()["status"] == "queued", r.text
        job_id = r.json()["jobId"]
        assert service.dispatch(job_id) and launcher.parts == [3]

        def piece(index: int):
            """Upload a piece as a task does: (CloudEvent headers, data) of its finalize."""
            name, body = part_object(job_id, index), b"p" * 64
            meta = part_metadata(job_id, index, 3, None if index == AUDIO_PART else 120)
            gen = storage.upload_bytes("out", name, body, "audio/mp4" if index == AUDIO_PART else "video/mp4",
                                       metadata=meta)
            return finalize_cloudevent({"bucket": "out", "name": name, "generation": gen, "size": len(body),
                                        "contentType": "video/mp4", "metadata": meta})

        def deliver(event, s=requests) -> int:
            headers, data = event
            return s.post(f"{base}/on_object_finalized", headers=headers, data=json.dumps(data), timeout=120).status_code

        for index in (0, 1, AUDIO_PART):
            assert deliver(piece(index)) == 200
        assert launcher.stitched == []
        last = piece(2)  # one event (one ce-id), delivered 50 times at once
        racers = 50
        store = service.parts
        # shorter than the client's timeout: a racer that never reaches the claim shows as a status code
        barrier = threading.Barrier(racers, timeout=30)

        class RacingStore(SqlPartStore):  # every delivery reaches the claim before any makes it
            def claim_stitch(self, job_id, relaunched_from=None):
                barrier.wait()
                return super().claim_stitch(job_id, relaunched_from)

        service.parts = RacingStore(store._sessions)
        client_barrier = threading.Barrier(racers, timeout=60)

        def racer(_):
            with requests.Session() as s:
                client_barrier.wait()
                return deliver(last, s)

        with ThreadPoolExecutor(racers) as pool:
            codes = list(pool.map(racer, range(racers)))
        service.parts = store
        assert codes == [200] * racers, codes
        assert launcher.stitched == [(job_id, 3)]
        st = requests.get(f"{base}/export_status", params={"jobId": job_id}, timeout=30).json()
        assert st["parts"] == {"count": 3, "rendered": 3, "audio": True}
        assert deliver(last) == 200 and launcher.stitched == [(job_id, 3)]  # a later redelivery: still one
