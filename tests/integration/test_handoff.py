"""The handoff of a whole-export render to a parallel one (shared.part_lifecycle._handoff) on real
PostgreSQL: a storyboard of narrated scenes without durations counts short at dispatch (one task);
the task, having measured it long, asks once with `handoff: {parts: K}`. Applied once (20 concurrent
identical reports, one launch told K), refused for a job already parallel, terminal or from an older
attempt, given back when the launch fails; after it, the single task's reports get 409 while the
parts' own attempt rule, cancel and reconcile use the parts execution."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared import bootstrap
from shared.errors import Conflict, TransientError
from shared.part_store import SqlPartStore
from shared.ports import ExecutionStatus
from tests.integration.test_parallel_lifecycle import AUTH, LONG, USAGE, dispatched, make_env, report, row, start, status

pytestmark = pytest.mark.postgres

# 30 narrated scenes without durations (one narration file): 15 s at their least, so one task
NARRATED = {"scenes": [{"id": f"n{i}", "visual": {"type": "color"}, "narration": {"src": "voice.wav"}}
                       for i in range(30)]}
SINGLE = "projects/local/locations/local/jobs/render/executions/exec-1"
PARTS = "projects/local/locations/local/jobs/render/executions/exec-2"


@pytest.fixture
def env(tmp_path, pg_url):
    yield make_env(tmp_path, pg_url, reconcile_stale_after_s=0.0)
    bootstrap.use_service(None)


def whole(env, jid, attempt=0, parts=None, status_="running", **body):
    """A report of the whole-export task (no `task`), with `handoff` when parts is given."""
    return env.c["export_complete"].post("/", headers=AUTH, json={
        "jobId": jid, "status": status_, "attempt": attempt, "stage": "preparing", "progress": 0.05,
        **({"handoff": {"parts": parts}} if parts else {}), **body})


def narrated_dispatched(env):
    """A NARRATED export, its narration uploaded, dispatched (as one task: its least length is 15 s)."""
    jid = start(env, NARRATED, [{"name": "voice.wav", "contentType": "audio/wav"}])
    gen = env.storage.upload_bytes("in", f"jobs/{jid}/assets/voice.wav", b"RIFF", "audio/wav")
    assert env.service.object_finalized("in", f"jobs/{jid}/assets/voice.wav", str(gen), 4) == "queued"
    assert env.service.dispatch(jid)
    return jid


def narrated_running(env, attempt=0):
    """A narrated_dispatched export, its task reporting."""
    jid = narrated_dispatched(env)
    assert row(env, jid).part_count is None and status(env, jid)["executionName"].startswith(SINGLE[:-1])
    assert whole(env, jid, attempt).status_code == 200
    return jid


def test_twenty_concurrent_handoffs_launch_once_and_the_parts_own_the_job(env):
    jid = narrated_running(env)
    assert env.launcher.parts == [1]
    racers = 20
    barrier = threading.Barrier(racers, timeout=60)

    class RacingStore(SqlPartStore):  # every report reaches the claim before any makes it
        def claim_handoff(self, *args):
            barrier.wait()
            return super().claim_handoff(*args)

    store = env.service.parts
    env.service.parts = RacingStore(store._sessions)
    body = {"jobId": jid, "status": "running", "stage": "preparing", "progress": 0.05, "attempt": 0,
            "handoff": {"parts": 4}, "usage": USAGE}

    def ask():
        try:
            return env.service.complete(dict(body))
        except Conflict as exc:
            return exc.message

    with ThreadPoolExecutor(racers) as pool:
        answers = list(pool.map(lambda _: ask(), range(racers)))
    env.service.parts = store
    assert env.launcher.parts == [1, 4] and env.launcher.task_counts == [1, 5]
    handed = [a for a in answers if isinstance(a, dict) and a.get("handoff")]
    assert handed == [{"jobId": jid, "status": "running", "applied": True, "handoff": {"parts": 4}}]
    for a in answers:  # the others: render on until the launch is known, or stop (409)
        assert a in ({"jobId": jid, "status": "running", "applied": False}, handed[0]) or (
            a == f"export {jid} is rendered in 4 parts now; this task stops"), a
    assert row(env, jid).part_count == 4 and row(env, jid).execution_name == PARTS
    st = status(env, jid)
    assert st["executionName"] == PARTS and st["parts"] == {"count": 4, "rendered": 0, "audio": False}
    assert st["status"] == "running" and st["cost"]["vcpuSeconds"] == 20.0  # the single task's attempt 0, once
    # the single task (any attempt) stops at its next report; a retried one too, at its first
    r = whole(env, jid, attempt=0, stage="rendering", progress=0.2)
    assert r.status_code == 409 and "rendered in 4 parts now" in r.json["error"]["message"]
    assert whole(env, jid, attempt=1).status_code == 409
    assert whole(env, jid, attempt=1, parts=4).status_code == 409
    assert env.launcher.parts == [1, 4]


def test_after_a_handoff_attempts_are_per_task_and_cancel_stops_the_parts_execution(env):
    jid = narrated_dispatched(env)
    assert whole(env, jid, attempt=1).status_code == 200  # the single task's second attempt
    r = whole(env, jid, attempt=1, parts=20)  # capped at RENDER_MAX_PARTS = 16
    assert r.status_code == 200 and r.json["handoff"] == {"parts": 16} and env.launcher.parts == [1, 16]
    # the parts' attempt 0 counts for itself, not against the single task's attempt 1
    assert report(env, jid, "part", 0, stage="rendering", progress=0.5).status_code == 200
    assert report(env, jid, "audio", 16, stage="rendering", progress=0.5).status_code == 200
    assert status(env, jid)["stage"] == "rendering"
    assert env.c["export_cancel"].post("/", json={"jobId": jid}).json["status"] == "canceled"
    assert env.launcher.cancelled == [PARTS]  # the current execution, not the finished single one


def test_reconcile_repairs_a_handed_over_export_through_the_parts_execution(env):
    jid = narrated_running(env)
    assert whole(env, jid, parts=4).json["handoff"] == {"parts": 4}
    env.launcher.states[SINGLE] = ExecutionStatus("succeeded")  # the single task exited 0
    r = env.c["reconcile_exports"].post("/")
    assert r.status_code == 200 and r.json.get("relaunched") is None and r.json["failed"] == 0
    assert status(env, jid)["status"] == "running"  # its parts execution is running
    env.launcher.states[PARTS] = ExecutionStatus("missing")
    assert env.c["reconcile_exports"].post("/").json["relaunched"] == 1
    assert env.launcher.parts == [1, 4, 4] and status(env, jid)["executionName"].endswith("exec-3")


def test_a_handoff_is_refused_for_a_parallel_a_terminal_job_and_an_older_attempt(env):
    parallel = dispatched(env, LONG)  # K = 4 at dispatch: no whole-export task may report
    r = whole(env, parallel, parts=4)
    assert r.status_code == 409 and "rendered in 4 parts now" in r.json["error"]["message"]
    canceled = narrated_running(env)
    env.c["export_cancel"].post("/", json={"jobId": canceled})
    assert whole(env, canceled, parts=4).status_code == 409
    older = narrated_running(env)
    assert whole(env, older, attempt=1).status_code == 200
    r = whole(env, older, attempt=0, parts=4)
    assert r.status_code == 409 and "from attempt 0" in r.json["error"]["message"]
    assert whole(env, older, attempt=1, parts=4, status_="failed").status_code == 400  # running only
    assert env.launcher.parts == [4, 1, 1] and row(env, older).part_count is None
    # parallel renders off on the API side: not applied, the task renders
    env.service.settings = env.service.settings.model_copy(update={"render_max_parts": 1})
    r = whole(env, older, attempt=1, parts=4)
    assert r.status_code == 200 and r.json == {"jobId": older, "status": "running", "applied": False}
    assert row(env, older).part_count is None


def test_a_failed_launch_gives_the_handoff_back_and_the_task_renders_on(env):
    jid = narrated_running(env)
    during = []
    launch = env.launcher.launch

    def failing_launch(job_id, *, parts=1, **kw):  # while it launches, the task's other reports render on
        during.append(env.service.complete({"jobId": jid, "status": "running", "stage": "rendering",
                                            "progress": 0.3, "attempt": 0}))
        env.launcher.launch = launch
        raise TransientError("run_job failed (injected)")

    env.launcher.launch = failing_launch
    r = whole(env, jid, parts=4)
    assert r.status_code == 503
    assert during == [{"jobId": jid, "status": "running", "applied": False}]
    assert row(env, jid).part_count is None and row(env, jid).execution_name == SINGLE
    assert "parts" not in status(env, jid)
    r = whole(env, jid, stage="rendering", progress=0.4)  # the task renders the export itself
    assert r.status_code == 200 and r.json["applied"] is True and status(env, jid)["progress"] == 0.4
    assert whole(env, jid, parts=4).json["handoff"] == {"parts": 4}  # a later ask may still be applied
    assert env.launcher.parts == [1, 4] and row(env, jid).execution_name == PARTS
