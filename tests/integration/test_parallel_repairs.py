"""Regression tests of the parallel path's repairs (issue 19; the findings of /work/notes/adv19.md), on
real PostgreSQL with the recording launcher, through the functions' test clients (helpers of
test_parallel_lifecycle):
1. a relaunched execution's tasks count their attempts afresh (reports name their execution);
2. a piece the stitch deleted is un-counted and only its part is rendered again;
3. a piece whose finalize was lost is counted by reconcile;
4. a cancel racing a launch cancels the just-launched execution (stitch, reconcile's relaunch);
5. the part floor travels with K (EXPORT_MIN_PART_S), the same on every relaunch;
6. an audio cut for another k is not "all in", and reconcile treats it as absent.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from shared import bootstrap
from shared.artifacts import AUDIO_PART, part_metadata, part_object
from shared.clock import utcnow
from shared.models import ExportJob
from shared.part_repairs import MAX_RELAUNCHES
from shared.ports import ExecutionStatus
from tests.integration.test_parallel_lifecycle import (all_pieces, dispatched, make_env, piece, reconcile, report,
                                                      row, status)

pytestmark = pytest.mark.postgres


@pytest.fixture
def env(tmp_path, pg_url):
    yield make_env(tmp_path, pg_url, reconcile_stale_after_s=0.0)
    bootstrap.use_service(None)


def short(name: str) -> str:
    """An execution's short name, as Cloud Run gives it to its tasks (CLOUD_RUN_EXECUTION)."""
    return name.rsplit("/", 1)[-1]


def task_report(env, jid, role, index, execution, attempt=0, **body):
    """A task's running report naming its execution (render_job.task_env.TaskEnv.task)."""
    return env.c["export_complete"].post("/", headers={"Authorization": "Bearer worker-token"}, json={
        "jobId": jid, "status": "running", "attempt": attempt,
        "task": {"role": role, "index": index, "execution": short(execution)}, **body})


# -- 1. attempts per execution ----------------------------------------------------------------------------
def test_a_relaunched_parts_executions_tasks_count_their_attempts_afresh(env):
    """Part 1 crashed on every Cloud Run attempt (0..3, no failed report), the execution failed;
    reconcile relaunches it; the new execution's task 1 is attempt 0 again and must be heard."""
    jid = dispatched(env)
    first = status(env, jid)["executionName"]
    for a in range(4):
        assert task_report(env, jid, "part", 1, first, a, stage="rendering", progress=0.3).status_code == 200
    for i in (0, 2, 3, AUDIO_PART):
        piece(env, jid, i)
    env.launcher.states[first] = ExecutionStatus("failed", "1 of 5 task(s) failed")
    assert reconcile(env)["relaunched"] == 1
    second = status(env, jid)["executionName"]
    assert second != first and env.launcher.parts == [4, 4]
    r = task_report(env, jid, "part", 1, second, 0, stage="preparing", progress=0.0)
    assert r.status_code == 200 and r.json["applied"] is True, r.json
    assert task_report(env, jid, "part", 1, second, 1, stage="rendering", progress=0.5).status_code == 200
    before = status(env, jid)["progress"]
    # within one execution the attempt rule stands: its attempt 0 is now stale
    stale = task_report(env, jid, "part", 1, second, 0, stage="rendering", progress=0.9)
    assert stale.status_code == 409 and f"of execution {short(second)}" in stale.json["error"]["message"]
    # a late report of the ended execution moves the progress neither back nor anywhere
    late = task_report(env, jid, "part", 1, first, 3, stage="preparing", progress=0.0)
    assert late.status_code == 200 and status(env, jid)["progress"] == before
    assert status(env, jid)["stage"] == "rendering"


def test_a_relaunched_stitchs_attempts_start_afresh(env):
    jid = dispatched(env)
    all_pieces(env, jid)
    first = row(env, jid).stitch_execution_name
    for a in range(4):  # the stitch crashed (OOM / timeout) on each of its Cloud Run attempts
        assert task_report(env, jid, "stitch", 0, first, a, stage="stitching", progress=0.1).status_code == 200
    env.launcher.states[first] = ExecutionStatus("failed", "task timed out")
    assert reconcile(env)["relaunched"] == 1
    second = row(env, jid).stitch_execution_name
    assert second != first and len(env.launcher.stitched) == 2
    r = task_report(env, jid, "stitch", 0, second, 0, stage="stitching", progress=0.5)
    assert r.status_code == 200 and r.json["applied"] is True, r.json
    assert (status(env, jid)["stage"], status(env, jid)["progress"]) == ("stitching", 0.925)


# -- 2 and 3. reconcile syncs the counted pieces with the bucket -----------------------------------------------
def test_a_lost_piece_finalize_is_counted_by_reconcile_which_starts_the_stitch(env):
    jid = dispatched(env)
    for i in (0, 1, 2, AUDIO_PART):
        piece(env, jid, i)
    env.storage.upload_bytes("out", part_object(jid, 3), b"p" * 64, "video/mp4",
                             metadata=part_metadata(jid, 3, 4, 300))  # no object_finalized
    env.launcher.states[status(env, jid)["executionName"]] = ExecutionStatus("succeeded")  # tasks skipped
    assert reconcile(env)["relaunched"] == 1
    assert env.launcher.parts == [4] and env.launcher.stitched == [(jid, 4)]  # the stitch, no parts relaunch
    assert status(env, jid)["parts"] == {"count": 4, "rendered": 4, "audio": True}
    assert status(env, jid)["status"] in ("dispatched", "running")


def test_a_piece_the_stitch_deleted_is_rendered_again_and_a_new_stitch_joins_it(env):
    """The stitch found part 2 not matching the plan, deleted it and ended (exit 0, no report): the
    job goes stale; reconcile un-counts part 2, relaunches the parts (the others skip their
    pieces) and releases the stitch's claim; part 2's new piece starts a new stitch; its video
    completes the job."""
    env.service.settings = env.service.settings.model_copy(update={"reconcile_stale_after_s": 300.0})
    jid = dispatched(env)
    assert all_pieces(env, jid)[-1] == "stitching"
    stitch_1 = row(env, jid).stitch_execution_name
    assert task_report(env, jid, "stitch", 0, stitch_1, stage="stitching", progress=0.0).status_code == 200
    env.storage.delete("out", part_object(jid, 2))  # stitch_task.discard_part, then it ends
    env.launcher.states[stitch_1] = ExecutionStatus("succeeded")
    env.launcher.states[status(env, jid)["executionName"]] = ExecutionStatus("succeeded")
    assert reconcile(env).get("relaunched", 0) == 0  # not stale yet: nothing touched
    assert status(env, jid)["parts"]["rendered"] == 4
    with env.service.parts._sessions.begin() as s:  # RECONCILE_STALE_AFTER_S later
        s.execute(update(ExportJob).where(ExportJob.id == jid)
                  .values(last_report_at=utcnow() - timedelta(seconds=301), updated_at=utcnow() - timedelta(seconds=301)))
    assert reconcile(env)["relaunched"] == 1
    assert env.launcher.parts == [4, 4] and len(env.launcher.stitched) == 1
    assert status(env, jid)["parts"] == {"count": 4, "rendered": 3, "audio": True}
    assert (row(env, jid).stitch_claimed_at, row(env, jid).stitch_execution_name) == (None, None)
    assert status(env, jid)["status"] == "running"
    assert piece(env, jid, 2) == "stitching"  # the relaunched part 2's piece
    assert len(env.launcher.stitched) == 2
    name = f"exports/{jid}/long.mp4"
    gen = env.storage.upload_bytes("out", name, b"v" * 100, "video/mp4", metadata={"job-id": jid})
    assert env.service.object_finalized("out", name, str(gen), 100) == "succeeded"
    assert status(env, jid)["status"] == "succeeded"


def test_pieces_never_rendered_again_fail_the_job_naming_them(env):
    jid = dispatched(env)
    all_pieces(env, jid)
    env.storage.delete("out", part_object(jid, 1))
    env.storage.delete("out", part_object(jid, AUDIO_PART))
    for n in range(MAX_RELAUNCHES):
        env.launcher.states[status(env, jid)["executionName"]] = ExecutionStatus("succeeded")
        assert reconcile(env)["relaunched"] == 1
    env.launcher.states[status(env, jid)["executionName"]] = ExecutionStatus("succeeded")
    assert reconcile(env)["failed"] == 1
    st = status(env, jid)
    assert st["status"] == "failed" and st["error"]["code"] == "parts_missing"
    assert st["error"]["message"].endswith("pieces never arrived: part 1, the audio")


# -- 4. cancel racing a launch -------------------------------------------------------------------------------
def test_a_cancel_during_the_stitchs_launch_cancels_the_stitch(env):
    jid = dispatched(env)
    for i in (0, 1, 2, AUDIO_PART):
        piece(env, jid, i)
    real = env.launcher.launch_stitch

    def launch_stitch(job_id, k, **kw):
        assert env.c["export_cancel"].post("/", json={"jobId": job_id}).status_code == 200
        return real(job_id, k, **kw)

    env.launcher.launch_stitch = launch_stitch
    assert piece(env, jid, 3) == "part"  # launched, but not the job's
    assert status(env, jid)["status"] == "canceled"
    assert env.launcher.cancelled[-1].endswith("/stitch-1")
    assert row(env, jid).stitch_execution_name is None


def test_a_cancel_during_reconciles_relaunch_cancels_the_relaunched_execution(env):
    jid = dispatched(env)
    first = status(env, jid)["executionName"]
    piece(env, jid, 0)
    env.launcher.states[first] = ExecutionStatus("failed")
    real = env.launcher.launch

    def launch(job_id, **kw):
        assert env.c["export_cancel"].post("/", json={"jobId": job_id}).status_code == 200
        return real(job_id, **kw)

    env.launcher.launch = launch
    reconcile(env)
    st = status(env, jid)
    assert st["status"] == "canceled" and st["executionName"] == first  # the relaunch is not written on it
    assert env.launcher.cancelled == [first, first.replace("exec-1", "exec-2")]


# -- 5. the part floor travels with K --------------------------------------------------------------------------
def test_the_part_floor_is_recorded_with_k_and_sent_to_every_execution(env):
    jid = dispatched(env)
    assert row(env, jid).min_part_s == 10.0 and env.launcher.floors == [10.0]
    env.service.settings = env.service.settings.model_copy(update={"render_min_part_s": 3.0})  # a deploy
    piece(env, jid, 0)
    env.launcher.states[status(env, jid)["executionName"]] = ExecutionStatus("missing")
    assert reconcile(env)["relaunched"] == 1
    for i in (1, 2, 3, AUDIO_PART):
        piece(env, jid, i)
    assert env.launcher.parts == [4, 4] and env.launcher.floors == [10.0, 10.0]
    assert env.launcher.stitched == [(jid, 4)] and env.launcher.stitch_floors == [10.0]


# -- 6. the audio's k --------------------------------------------------------------------------------------
def test_an_audio_cut_for_another_k_is_not_all_in_and_reconcile_renders_it_again(env):
    jid = dispatched(env)
    for i in range(4):
        piece(env, jid, i)
    assert piece(env, jid, AUDIO_PART, k=3) == "part"  # the stitch would refuse it: no stitch
    assert env.launcher.stitched == []
    env.launcher.states[status(env, jid)["executionName"]] = ExecutionStatus("succeeded")
    assert reconcile(env)["relaunched"] == 1
    assert env.launcher.parts == [4, 4] and env.launcher.stitched == []
    assert status(env, jid)["parts"] == {"count": 4, "rendered": 4, "audio": False}
    assert piece(env, jid, AUDIO_PART, k=4) == "stitching"


def test_pieces_of_two_plans_fail_the_job_naming_them(env):
    jid = dispatched(env)
    for i in range(3):
        piece(env, jid, i, k=3)
    piece(env, jid, 3, k=4)
    piece(env, jid, AUDIO_PART, k=3)
    for n in range(MAX_RELAUNCHES):
        env.launcher.states[status(env, jid)["executionName"]] = ExecutionStatus("succeeded")
        assert reconcile(env)["relaunched"] == 1
    env.launcher.states[status(env, jid)["executionName"]] = ExecutionStatus("succeeded")
    assert reconcile(env)["failed"] == 1
    message = status(env, jid)["error"]["message"]
    assert message.endswith("pieces never arrived: part 0 (cut for 3 parts, not 4), part 1 (cut for 3 parts, not 4), "
                            "part 2 (cut for 3 parts, not 4), the audio"), message
