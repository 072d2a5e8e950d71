"""The API side of a parallel render (issue 19) on real PostgreSQL: dispatch's part count, pieces
counted from finalize events (stat'd objects) starting exactly one stitch, per-task reports (attempts,
progress, usage, failure), status `parts`, cancel, reconcile's repairs, the pieces' clean-up. The
functions run through functions-framework's test client (functions_env), the launcher is the
recording fake (shared.ports.JobLauncher)."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from infra.local.stack import fresh_postgres_database
from shared import bootstrap
from shared.artifacts import AUDIO_PART, part_metadata, part_object
from shared.errors import TransientError
from shared.models import ExportJob, ExportJobUsage
from shared.part_repairs import MAX_RELAUNCHES
from shared.part_store import SqlPartStore
from shared.ports import ExecutionStatus
from tests.integration.functions_env import make_functions_env

pytestmark = pytest.mark.postgres

TOKEN = "worker-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# 4 x 10 s: over RENDER_PARALLEL_AFTER_S=20, K = 40 // RENDER_MIN_PART_S(10) = 4
LONG = {"title": "Long", "scenes": [{"id": f"s{i}", "visual": {"type": "color"}, "duration": 10} for i in range(4)]}
SHORT = {"scenes": [{"id": "c", "visual": {"type": "color"}, "duration": 5}]}
# narration scenes without duration count at their least (0.5 s of pause each): single task
NARRATED = {"scenes": [{"id": f"n{i}", "visual": {"type": "color"}, "narration": {"src": f"n{i}.wav"}}
                       for i in range(30)]}
USAGE = {"wallS": 10.0, "cpuS": 8.0, "vcpu": 2.0, "memoryGib": 4.0}


@pytest.fixture
def env(tmp_path, pg_url):
    yield make_env(tmp_path, pg_url)
    bootstrap.use_service(None)


def make_env(tmp_path, pg_url, **settings):
    return make_functions_env(tmp_path, database_url=fresh_postgres_database(pg_url, "sfparts"), worker_token=TOKEN,
                              input_bucket="in", output_bucket="out", render_parallel_after_s=20.0,
                              render_min_part_s=10.0, render_max_parts=16, **settings)


def start(env, spec=LONG, uploads=()):
    r = env.c["export_start"].post("/", json={"spec": spec, "uploads": list(uploads)})
    assert r.status_code == 202, r.json
    return r.json["jobId"]


def dispatched(env, spec=LONG):
    jid = start(env, spec)
    assert env.service.dispatch(jid)
    return jid


def status(env, jid):
    r = env.c["export_status"].get(f"/?jobId={jid}")
    assert r.status_code == 200, r.json
    return r.json


def report(env, jid, role, index, status_="running", attempt=0, **body):
    return env.c["export_complete"].post("/", headers=AUTH, json={
        "jobId": jid, "status": status_, "attempt": attempt, "task": {"role": role, "index": index}, **body})


def piece(env, jid, index, k=4, frames=300):
    """Upload a piece as the render job does and deliver its finalize; returns what the service did."""
    gen = env.storage.upload_bytes("out", part_object(jid, index), b"p" * 64,
                                   "audio/mp4" if index == AUDIO_PART else "video/mp4",
                                   metadata=part_metadata(jid, index, k, None if index == AUDIO_PART else frames))
    return env.service.object_finalized("out", part_object(jid, index), str(gen), 64)


def all_pieces(env, jid, k=4):
    return [piece(env, jid, i, k) for i in range(k)] + [piece(env, jid, AUDIO_PART, k)]


def row(env, jid):
    with env.service.parts._sessions() as s:
        return s.execute(select(ExportJob).where(ExportJob.id == jid)).scalar_one()


# -- dispatch -------------------------------------------------------------------------------------------
def test_a_short_export_keeps_todays_single_task(env):
    jid = dispatched(env, SHORT)
    narrated = start(env, NARRATED, [{"name": f"n{i}.wav", "contentType": "audio/wav"} for i in range(30)])
    for i in range(30):
        gen = env.storage.upload_bytes("in", f"jobs/{narrated}/assets/n{i}.wav", b"RIFF", "audio/wav")
        env.service.object_finalized("in", f"jobs/{narrated}/assets/n{i}.wav", str(gen), 4)
    assert env.service.dispatch(narrated)
    assert env.launcher.parts == [1, 1] and env.launcher.task_counts == [1, 1]
    assert row(env, jid).part_count is None and row(env, narrated).part_count is None
    assert "parts" not in status(env, jid)
    # a task report is refused for a single-task export
    assert report(env, jid, "part", 0, progress=0.5).status_code == 409


def test_a_long_export_launches_k_parts_plus_audio_and_status_shows_them(env):
    jid = dispatched(env)
    assert env.launcher.parts == [4] and env.launcher.task_counts == [5]
    assert row(env, jid).part_count == 4
    st = status(env, jid)
    assert st["status"] == "dispatched" and st["parts"] == {"count": 4, "rendered": 0, "audio": False}


# -- task reports ------------------------------------------------------------------------------------------
def test_attempts_are_per_task_progress_is_the_mean_and_usage_counts_every_task(env):
    jid = dispatched(env)
    assert report(env, jid, "part", 0, stage="rendering", progress=0.5, usage=USAGE).status_code == 200
    # task 1 retried by Cloud Run: its attempt 1 must not make task 0's attempt-0 reports refused
    assert report(env, jid, "part", 1, attempt=1, stage="rendering", progress=0.25, usage=USAGE).status_code == 200
    assert report(env, jid, "part", 0, stage="rendering", progress=0.75, usage=USAGE).status_code == 200
    late = report(env, jid, "part", 1, attempt=0, stage="rendering", progress=0.9, usage=USAGE)
    assert late.status_code == 409 and "stop rendering" in late.json["error"]["message"]
    assert report(env, jid, "audio", 4, stage="rendering", progress=1.0, usage=USAGE).status_code == 200
    bad = report(env, jid, "audio", 3, progress=0.1)
    assert bad.status_code == 400 and bad.json["error"]["details"][0]["path"] == "task.index"
    st = status(env, jid)
    # 0.05 + 0.85 x mean(part0 .75, part1 .25, part2 0, part3 0, audio 1) = 0.05 + 0.85 x 0.4
    assert st["status"] == "running" and st["stage"] == "rendering" and st["progress"] == 0.39
    # part 0, part 1 attempt 0 (refused but counted) and 1, audio: four task attempts of 2 vCPU x 10 s
    with env.service.parts._sessions() as s:
        keys = s.execute(select(ExportJobUsage.task_role, ExportJobUsage.task_index, ExportJobUsage.attempt)
                         .where(ExportJobUsage.job_id == jid)).all()
    assert sorted(keys) == [("audio", 4, 0), ("part", 0, 0), ("part", 1, 0), ("part", 1, 1)]
    assert st["cost"]["vcpuSeconds"] == 80.0 and st["cost"]["gibSeconds"] == 160.0
    assert report(env, jid, "part", 2, "succeeded", output={}).status_code == 400  # parts end by their upload


def test_a_part_failing_fails_the_job_naming_its_scenes_and_stops_the_execution(env):
    jid = dispatched(env)
    execution = status(env, jid)["executionName"]
    assert report(env, jid, "part", 2, stage="rendering", progress=0.2).status_code == 200
    r = report(env, jid, "part", 2, "failed", error={"code": "render_failed",
                                                     "message": "part 2 (scenes[2]..scenes[2]): ffmpeg exited 1"})
    assert r.status_code == 200 and r.json["status"] == "failed"
    st = status(env, jid)
    assert st["error"] == {"code": "render_failed", "message": "part 2 (scenes[2]..scenes[2]): ffmpeg exited 1"}
    assert env.launcher.cancelled == [execution]
    assert report(env, jid, "part", 0, progress=0.3).status_code == 409  # the others stop at their next report


# -- pieces and the stitch ---------------------------------------------------------------------------------
def test_pieces_start_one_stitch_told_k_and_the_stitch_completes_the_job(env):
    jid = dispatched(env)
    assert all_pieces(env, jid) == ["part", "part", "part", "part", "stitching"]
    assert env.launcher.stitched == [(jid, 4)]
    assert status(env, jid)["parts"] == {"count": 4, "rendered": 4, "audio": True}
    assert piece(env, jid, 3) == "part"  # a duplicate event: no second stitch
    assert env.launcher.stitched == [(jid, 4)]
    assert report(env, jid, "stitch", 0, stage="stitching", progress=0.5).status_code == 200
    st = status(env, jid)
    assert (st["stage"], st["progress"]) == ("stitching", 0.925)
    assert report(env, jid, "part", 0, stage="rendering", progress=0.1).status_code == 200  # late: changes nothing
    assert status(env, jid)["stage"] == "stitching" and status(env, jid)["progress"] == 0.925
    name = f"exports/{jid}/long.mp4"
    gen = env.storage.upload_bytes("out", name, b"v" * 100, "video/mp4", metadata={"job-id": jid})
    assert env.service.object_finalized("out", name, str(gen), 100) == "succeeded"
    assert status(env, jid)["status"] == "succeeded"
    assert [env.storage.stat("out", part_object(jid, i)) for i in (0, 1, 2, 3, AUDIO_PART)] == [None] * 5


def test_fewer_parts_than_told_stitch_told_k_and_count_k(env):
    jid = dispatched(env)
    assert piece(env, jid, 0, k=2) == "part"
    assert status(env, jid)["parts"] == {"count": 2, "rendered": 1, "audio": False}
    assert piece(env, jid, AUDIO_PART, k=2) == "part"
    assert piece(env, jid, 1, k=2) == "stitching"
    assert env.launcher.stitched == [(jid, 4)]  # EXPORT_PART_COUNT = the K the parts were told


def test_pieces_that_are_not_ours_are_ignored(env):
    jid = dispatched(env)
    other = dispatched(env)
    env.storage.upload_bytes("out", part_object(jid, 0), b"p", "video/mp4", metadata=part_metadata(other, 0, 4, 1))
    assert env.service.object_finalized("out", part_object(jid, 0), "1", 1) == "ignored"  # another job's metadata
    assert piece(env, jid, 1, k=5) == "ignored"  # more parts than the 4 told
    assert status(env, jid)["parts"]["rendered"] == 0


def test_fifty_concurrent_deliveries_of_the_last_piece_start_one_stitch(env):
    jid = dispatched(env)
    for i in range(3):
        piece(env, jid, i)
    piece(env, jid, AUDIO_PART)
    gen = env.storage.upload_bytes("out", part_object(jid, 3), b"p" * 64, "video/mp4",
                                   metadata=part_metadata(jid, 3, 4, 300))
    racers = 50
    barrier = threading.Barrier(racers, timeout=60)
    store = env.service.parts

    class RacingStore(SqlPartStore):  # every delivery reaches the claim before any makes it
        def claim_stitch(self, job_id, relaunched_from=None):
            barrier.wait()
            return super().claim_stitch(job_id, relaunched_from)

    env.service.parts = RacingStore(store._sessions)
    env.launcher.fail_next = 1  # the first winner's launch fails: its claim is released, a redelivery wins

    def deliver() -> str:
        try:
            return env.service.object_finalized("out", part_object(jid, 3), str(gen), 64)
        except TransientError:
            env.service.parts = store  # the redelivery of this event, after the race
            return env.service.object_finalized("out", part_object(jid, 3), str(gen), 64)

    with ThreadPoolExecutor(racers) as pool:
        outcomes = list(pool.map(lambda _: deliver(), range(racers)))
    assert env.launcher.stitched == [(jid, 4)]
    assert outcomes.count("stitching") == 1 and outcomes.count("part") == racers - 1
    assert row(env, jid).stitch_execution_name == "projects/local/locations/local/jobs/stitch/executions/stitch-1"


def test_the_last_two_pieces_finalized_at_once_start_the_stitch(env):
    """Two different pieces' events at the same moment: each transaction records its piece, then
    counts; the count must see the other's piece once that one is committed (the job row is locked
    first), or neither starts the stitch and the export waits for reconcile (seen in CI)."""
    jid = dispatched(env)
    for i in (0, 1, AUDIO_PART):
        piece(env, jid, i)
    gens = {i: env.storage.upload_bytes("out", part_object(jid, i), b"p" * 64, "video/mp4",
                                        metadata=part_metadata(jid, i, 4, 300)) for i in (2, 3)}
    barrier = threading.Barrier(2, timeout=30)
    store = env.service.parts

    class RacingStore(SqlPartStore):  # both record at once; each commits a moment after its count
        def record_piece(self, *args, **kwargs):
            barrier.wait()
            return super().record_piece(*args, **kwargs)

        def _pieces(self, s, job_id):
            counted = super()._pieces(s, job_id)
            time.sleep(0.3)
            return counted

    env.service.parts = RacingStore(store._sessions)
    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(lambda i: env.service.object_finalized("out", part_object(jid, i), str(gens[i]), 64),
                                   (2, 3)))
    assert outcomes == ["part", "stitching"]
    assert env.launcher.stitched == [(jid, 4)]


# -- cancel ------------------------------------------------------------------------------------------------
def test_cancel_stops_the_parts_and_the_stitch(env):
    jid = dispatched(env)
    all_pieces(env, jid)
    r = env.c["export_cancel"].post("/", json={"jobId": jid})
    assert r.status_code == 200 and status(env, jid)["status"] == "canceled"
    assert env.launcher.cancelled == [status(env, jid)["executionName"], row(env, jid).stitch_execution_name]
    assert report(env, jid, "stitch", 0, stage="stitching", progress=0.5).status_code == 409


# -- reconcile ---------------------------------------------------------------------------------------------
@pytest.fixture
def stale_env(tmp_path, pg_url):
    yield make_env(tmp_path, pg_url, reconcile_stale_after_s=0.0)
    bootstrap.use_service(None)


def reconcile(env) -> dict:
    r = env.c["reconcile_exports"].post("/")
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.json


def test_reconcile_starts_a_stitch_never_claimed_or_claimed_and_lost(stale_env):
    env = stale_env
    jid = dispatched(env)
    env.launcher.fail_next = 100  # every finalize's launch fails: the pieces are in, no stitch
    with pytest.raises(TransientError):
        all_pieces(env, jid)
    env.launcher.fail_next = 0
    assert row(env, jid).stitch_claimed_at is None and env.launcher.stitched == []
    assert reconcile(env)["relaunched"] == 1
    assert env.launcher.stitched == [(jid, 4)]
    assert reconcile(env).get("relaunched") is None  # the stitch runs: nothing to do

    crashed = dispatched(env)
    env.launcher.fail_next = 100
    with pytest.raises(TransientError):
        all_pieces(env, crashed)
    env.launcher.fail_next = 0
    assert env.service.parts.claim_stitch(crashed)  # a finalize claimed, then crashed before launching
    assert reconcile(env)["relaunched"] == 1
    assert env.launcher.stitched[-1] == (crashed, 4) and row(env, crashed).stitch_execution_name
    assert row(env, crashed).stitch_relaunches == 1


def test_reconcile_relaunches_a_vanished_parts_execution_then_fails_naming_the_missing_pieces(stale_env):
    env = stale_env
    jid = dispatched(env)
    piece(env, jid, 0)
    piece(env, jid, 2)
    for n in range(MAX_RELAUNCHES):
        env.launcher.states[status(env, jid)["executionName"]] = ExecutionStatus("missing")
        assert reconcile(env)["relaunched"] == 1
        assert env.launcher.parts == [4] * (n + 2)  # the same K each time
    assert status(env, jid)["executionName"].endswith(f"exec-{MAX_RELAUNCHES + 1}")
    env.launcher.states[status(env, jid)["executionName"]] = ExecutionStatus("failed", "2 of 5 task(s) failed")
    assert reconcile(env)["failed"] == 1
    st = status(env, jid)
    assert st["status"] == "failed" and st["error"]["code"] == "parts_missing"
    assert st["error"]["message"] == (f"the parts execution failed (2 of 5 task(s) failed) after {MAX_RELAUNCHES} "
                                      "relaunches; pieces never arrived: part 1, part 3, the audio")


def test_reconcile_relaunches_a_lost_stitch_then_fails(stale_env):
    env = stale_env
    jid = dispatched(env)
    env.launcher.states[status(env, jid)["executionName"]] = ExecutionStatus("succeeded")
    all_pieces(env, jid)
    for n in range(MAX_RELAUNCHES):
        env.launcher.states[row(env, jid).stitch_execution_name] = ExecutionStatus("missing")
        assert reconcile(env)["relaunched"] == 1
        assert len(env.launcher.stitched) == n + 2
    env.launcher.states[row(env, jid).stitch_execution_name] = ExecutionStatus("succeeded")  # but no video
    assert reconcile(env)["failed"] == 1
    st = status(env, jid)
    assert st["error"] == {"code": "stitch_failed", "message": f"the stitch execution ended without a video "
                                                               f"({MAX_RELAUNCHES} relaunches)"}


def test_sqlite_counts_pieces_and_shows_parts_as_postgresql_does(tmp_path, pg_url):
    """Local modes run on SQLite: the same claim, count and view (status_fields, not the prepared SQL)."""
    views = []
    for url in (None, fresh_postgres_database(pg_url, "sfparts")):
        env = make_functions_env(tmp_path / ("pg" if url else "lite"), **({"database_url": url} if url else {}),
                                 worker_token=TOKEN, input_bucket="in", output_bucket="out",
                                 render_parallel_after_s=20.0, render_min_part_s=10.0)
        try:
            jid = dispatched(env)
            assert report(env, jid, "part", 1, stage="rendering", progress=0.5, usage=USAGE).status_code == 200
            assert [piece(env, jid, 0, k=2), piece(env, jid, AUDIO_PART, k=2)] == ["part", "part"]
            st = status(env, jid)
            views.append((st["parts"], st["progress"], st["stage"], st["cost"]["vcpuSeconds"]))
            assert piece(env, jid, 1, k=2) == "stitching" and env.launcher.stitched == [(jid, 4)]
        finally:
            bootstrap.use_service(None)
    # part 0 and the audio in, part 1 at 0.5: 0.05 + 0.85 x 2.5 / 3
    assert views[0] == views[1] == ({"count": 2, "rendered": 1, "audio": True}, 0.7583, "rendering", 20.0)
