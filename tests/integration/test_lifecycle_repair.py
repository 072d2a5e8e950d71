"""export_cancel, reconcile_exports and the client token, through functions-framework's test
client on SQLite with the local adapters (recording publisher and launcher)."""
from datetime import timedelta

import pytest

from shared import bootstrap
from tests.integration.functions_env import make_functions_env
from shared.ports import ExecutionStatus
from shared.clock import utcnow

TOKEN = "worker-token"
COLOR = {"scenes": [{"id": "c", "visual": {"type": "color"}, "duration": 1}]}
IMAGE = {"title": "Pics", "scenes": [{"id": "a", "visual": {"type": "image", "src": "a.png"}},
                                     {"id": "b", "visual": {"type": "image", "src": "b.png"}}]}


def make_env(tmp_path, **settings):
    return make_functions_env(tmp_path, worker_token=TOKEN, input_bucket="in", output_bucket="out", **settings)


@pytest.fixture
def env(tmp_path):
    yield make_env(tmp_path)
    bootstrap.use_service(None)


def start(env, spec=COLOR, uploads=(), **headers):
    r = env.c["export_start"].post("/", json={"spec": spec, "uploads": list(uploads)}, headers=headers)
    assert r.status_code == 202, r.json
    return r.json["jobId"]


def status(env, jid):
    return env.c["export_status"].get(f"/?jobId={jid}").json


def upload(env, jid, name):
    """Put an asset in the input bucket and deliver its finalize (the object is stat'd)."""
    gen = env.storage.upload_bytes("in", f"jobs/{jid}/assets/{name}", b"\x89PNG\r\n", "image/png")
    return env.service.object_finalized("in", f"jobs/{jid}/assets/{name}", str(gen), 6)


def cancel(env, jid):
    return env.c["export_cancel"].post("/", json={"jobId": jid})


def test_cancel_stops_the_execution_and_is_final(env):
    jid = start(env)
    assert env.service.dispatch(jid)
    r = cancel(env, jid)
    assert r.status_code == 200 and r.json == {"jobId": jid, "status": "canceled"}
    assert env.launcher.cancelled == [status(env, jid)["executionName"]]
    assert cancel(env, jid).status_code == 200  # idempotent
    report = env.c["export_complete"].post("/", json={"jobId": jid, "status": "running", "progress": 0.5},
                                           headers={"Authorization": f"Bearer {TOKEN}"})
    assert report.status_code == 409  # the render job stops and publishes nothing
    assert env.service.object_finalized("out", f"exports/{jid}/export.mp4", "1", 10, {"job-id": jid}) == "duplicate"
    st = status(env, jid)
    assert st["status"] == "canceled" and st["error"]["code"] == "canceled"
    assert [h["status"] for h in st["history"]] == ["queued", "dispatched", "canceled"]


def test_cancel_refuses_finished_jobs_and_bad_ids(env):
    jid = start(env)
    env.service.dispatch(jid)
    env.service.complete({"jobId": jid, "status": "failed", "error": {"code": "x", "message": "boom"}})
    r = cancel(env, jid)
    assert r.status_code == 409 and "already failed" in r.json["error"]["message"]
    assert cancel(env, "not-a-uuid").status_code == 400
    assert env.c["export_cancel"].post("/", data=b"[1]", content_type="application/json").status_code == 400


def test_reconcile_repairs_every_kind_of_stale_job(env):
    queued = start(env)                                    # publish "lost": re-published
    waiting = start(env, IMAGE, [{"name": "a.png", "contentType": "image/png"},
                                 {"name": "b.png", "contentType": "image/png"}])
    upload(env, waiting, "a.png")
    failed_exec, running_exec, vanished, done = (start(env) for _ in range(4))
    for jid in (failed_exec, running_exec, vanished, done):
        env.service.dispatch(jid)
    names = {jid: status(env, jid)["executionName"] for jid in (failed_exec, running_exec, vanished, done)}
    env.launcher.states[names[failed_exec]] = ExecutionStatus("failed", "Task sceneflow-render-x failed: exit 137")
    env.launcher.states[names[vanished]] = ExecutionStatus("missing", "the execution no longer exists")
    env.launcher.states[names[done]] = ExecutionStatus("succeeded")
    env.storage.upload_bytes("out", f"exports/{done}/export.mp4", b"mp4", "video/mp4",
                             metadata={"job-id": done, "duration-s": "1.000", "width": "1920", "height": "1080"})
    env.publisher.messages.clear()

    assert env.service.reconcile() == {"republished": 0, "failed": 0, "succeeded": 0, "checked": 0,
                                      "skipped": 0, "deferred": 0}  # nothing stale yet
    counts = env.service.reconcile(now=utcnow() + timedelta(hours=2))
    assert counts == {"republished": 1, "failed": 3, "succeeded": 1, "checked": 4, "skipped": 0,
                      "deferred": 0}
    assert env.publisher.messages == [queued]
    assert status(env, failed_exec)["error"] == {
        "code": "execution_failed", "message": "the render execution failed: Task sceneflow-render-x failed: exit 137"}
    assert status(env, vanished)["error"]["code"] == "execution_missing"
    assert status(env, running_exec)["status"] == "dispatched"
    assert status(env, done)["status"] == "succeeded" and status(env, done)["output"]["width"] == 1920
    w = status(env, waiting)
    assert w["status"] == "failed" and w["error"] == {"code": "upload_expired",
                                                      "message": "uploads never arrived: b.png"}
    r = env.c["reconcile_exports"].post("/")
    assert r.status_code == 200 and set(r.json) == {"republished", "failed", "succeeded", "checked", "skipped",
                                                  "deferred"}


def test_client_token(tmp_path):
    env = make_env(tmp_path, client_token="client-secret")
    try:
        body = {"spec": COLOR}
        assert env.c["export_start"].post("/", json=body).status_code == 401
        assert env.c["export_start"].post("/", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
        ok = env.c["export_start"].post("/", json=body, headers={"Authorization": "Bearer client-secret"})
        assert ok.status_code == 202
        jid = ok.json["jobId"]
        assert env.c["export_status"].get(f"/?jobId={jid}").status_code == 401
        assert env.c["export_status"].get(f"/?jobId={jid}",
                                          headers={"Authorization": "Bearer client-secret"}).status_code == 200
        assert env.c["export_cancel"].post("/", json={"jobId": jid}).status_code == 401
    finally:
        bootstrap.use_service(None)


def test_configured_limits(tmp_path):
    env = make_env(tmp_path, max_scenes=3, max_total_s=10, max_caption_chars=20, max_assets=1)
    try:
        scenes = [{"id": f"s{i}", "visual": {"type": "color"}, "duration": 4,
                   "caption": {"text": "x" * (25 if i == 0 else 5)}} for i in range(4)]
        spec = {"scenes": scenes + [{"id": "img", "visual": {"type": "image", "src": "a.png"}},
                                    {"id": "img2", "visual": {"type": "image", "src": "b.png"}}]}
        r = env.c["export_start"].post("/", json={"spec": spec, "uploads": [
            {"name": "a.png", "contentType": "image/png"}, {"name": "b.png", "contentType": "image/png"}]})
        assert r.status_code == 400
        messages = {d["path"]: d["message"] for d in r.json["error"]["details"]}
        assert messages["uploads"] == "at most 1 uploads per export"
        assert messages["spec.scenes[0].caption.text"] == "caption has 25 characters; the limit is 20"
        problems = [d["message"] for d in r.json["error"]["details"] if d["path"] == "spec.scenes"]
        assert problems == [  # the two stills without duration last the default 4 s
            "6 scenes; at most 3 scenes per storyboard (EXPORT_MAX_SCENES / the spec's MAX_SCENES)",
            "the video would be 24 s long, over EXPORT_MAX_TOTAL_S = 10 s; longest scenes: scenes[0] (id 's0') 4 s, "
            "scenes[1] (id 's1') 4 s, scenes[2] (id 's2') 4 s"]
    finally:
        bootstrap.use_service(None)


def test_status_never_shows_an_upload_job_waiting_past_its_expiry(tmp_path):
    """Issue 14, item 7: reconcile (Cloud Scheduler, every 5 min; not run at all by the local stacks)
    was the only thing expiring uploads, so status said awaiting_upload long after the upload URLs
    had expired. Status now expires such a job itself, exactly as reconcile does."""
    import time

    env = make_env(tmp_path, upload_ttl_s=0.5)
    try:
        jid = start(env, IMAGE, [{"name": "a.png", "contentType": "image/png"},
                                 {"name": "b.png", "contentType": "image/png"}])
        upload(env, jid, "a.png")
        assert status(env, jid)["status"] == "awaiting_upload"
        time.sleep(0.6)
        st = status(env, jid)
        assert st["status"] == "failed" and st["error"] == {"code": "upload_expired",
                                                            "message": "uploads never arrived: b.png"}
        assert [h["status"] for h in st["history"]] == ["awaiting_upload", "failed"] and "uploads" not in st
        # a late upload changes nothing; reconcile finds nothing left to expire
        assert upload(env, jid, "b.png") == "upload"
        assert status(env, jid)["status"] == "failed" and env.publisher.messages == []
        assert env.service.reconcile()["failed"] == 0
    finally:
        bootstrap.use_service(None)


# -- one job's problem never blocks the repair of the others (adversarial review, break 3) -------------
@pytest.fixture
def stale_env(tmp_path):
    """Every dispatched job is stale at once (RECONCILE_STALE_AFTER_S=0)."""
    yield make_env(tmp_path, reconcile_stale_after_s=0.0)
    bootstrap.use_service(None)


def stale_pair(env, first_state):
    """Two dispatched jobs: the first's execution ends in `first_state`, the second's failed."""
    jobs = [start(env), start(env)]
    for jid, state in zip(jobs, (first_state, "failed")):
        env.service.dispatch(jid)
        env.launcher.states[status(env, jid)["executionName"]] = ExecutionStatus(state)
    return jobs


def test_reconcile_survives_a_video_whose_warnings_nest_too_deeply(stale_env):
    """1,001 '[' fit in GCS custom metadata; json.loads raises RecursionError on them."""
    poisoned, other = stale_pair(stale_env, "succeeded")
    stale_env.storage.upload_bytes("out", f"exports/{poisoned}/export.mp4", b"v" * 10, "video/mp4",
                                   metadata={"job-id": poisoned, "warnings": "[" * 1001})
    r = stale_env.c["reconcile_exports"].post("/")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.json == {"republished": 0, "failed": 1, "succeeded": 1, "checked": 2, "skipped": 0,
                      "deferred": 0}
    done = status(stale_env, poisoned)
    assert done["status"] == "succeeded" and done["output"]["warnings"] == []  # malformed warnings: none
    assert status(stale_env, other)["error"]["code"] == "execution_failed"


class UnreadableLauncher:
    """The recording launcher, except that the status of the `broken` execution(s) cannot be read."""

    def __init__(self, inner, broken: str | set[str], error: Exception):
        self.inner, self.error = inner, error
        self.broken = {broken} if isinstance(broken, str) else set(broken)

    def status(self, name):
        if name in self.broken:
            raise self.error
        return self.inner.status(name)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_reconcile_skips_a_job_it_cannot_repair_and_repairs_the_rest(stale_env, capsys):
    broken, other = stale_pair(stale_env, "failed")
    name = status(stale_env, broken)["executionName"]
    stale_env.service.launcher = UnreadableLauncher(stale_env.launcher, name,
                                                    ValueError("execution record has no conditions"))
    r = stale_env.c["reconcile_exports"].post("/")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.json == {"republished": 0, "failed": 1, "succeeded": 0, "checked": 2, "skipped": 1,
                      "deferred": 0}
    assert status(stale_env, broken)["status"] == "dispatched"  # left for the next run
    assert status(stale_env, other)["error"]["code"] == "execution_failed"
    out = capsys.readouterr().out
    assert "reconcile skipped an export it could not repair" in out and broken in out and "ValueError" in out
    stale_env.service.launcher = stale_env.launcher


# -- adversarial review 2, break 5 and doubt 2: no job, nor 100 of them, blocks the others ---------------
def test_a_transient_error_of_one_job_defers_only_that_job(stale_env, capsys):
    """google_run.status turns every lookup error but NotFound (PermissionDenied, InvalidArgument...)
    into TransientError: one such execution used to end every run with 503 before the jobs after it."""
    from shared.errors import TransientError

    broken, other = stale_pair(stale_env, "failed")
    name = status(stale_env, broken)["executionName"]
    stale_env.service.launcher = UnreadableLauncher(
        stale_env.launcher, name, TransientError("Cloud Run get_execution failed: PermissionDenied"))
    r = stale_env.c["reconcile_exports"].post("/")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.json == {"republished": 0, "failed": 1, "succeeded": 0, "checked": 2, "skipped": 0, "deferred": 1}
    assert status(stale_env, other)["error"]["code"] == "execution_failed"  # repaired in the same run
    assert status(stale_env, broken)["status"] == "dispatched"
    out = capsys.readouterr().out
    assert "reconcile deferred an export" in out and broken in out and "PermissionDenied" in out
    stale_env.service.launcher = stale_env.launcher
    r = stale_env.c["reconcile_exports"].post("/")  # the next run repairs it
    assert r.status_code == 200 and (r.json["failed"], r.json["deferred"]) == (1, 0)
    assert status(stale_env, broken)["error"]["code"] == "execution_failed"


class ListingDown:
    """The repository, except that listing stale jobs fails (the database went away)."""

    def __init__(self, inner):
        self.inner = inner

    def list_stale(self, *args, **kwargs):
        from shared.errors import TransientError

        raise TransientError("database unavailable: OperationalError")

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_reconcile_answers_503_when_it_cannot_list_the_jobs(stale_env):
    jobs = stale_pair(stale_env, "failed")
    repo = stale_env.service.repo
    stale_env.service.repo = ListingDown(repo)
    try:
        r = stale_env.c["reconcile_exports"].post("/")
    finally:
        stale_env.service.repo = repo
    assert r.status_code == 503 and r.json["error"]["code"] == "unavailable"
    r = stale_env.c["reconcile_exports"].post("/")  # the scheduler's retry repairs both
    assert r.status_code == 200 and r.json["failed"] == 2
    assert [status(stale_env, j)["status"] for j in jobs] == ["failed", "failed"]


def test_a_hundred_jobs_reconcile_cannot_repair_do_not_hide_the_next_one(stale_env):
    """list_stale returns at most 100 jobs, least recently seen first; a skipped job is moved to the back
    (touched), so the 101st stale job is repaired by the second run. The broken ones are running and
    have reported (last_report_at set), where touching updated_at alone used to change nothing."""
    svc = stale_env.service
    broken = []
    for _ in range(100):
        jid = svc.start({"spec": COLOR})[1]["jobId"]
        svc.dispatch(jid)
        assert svc.complete({"jobId": jid, "status": "running", "progress": 0.1})["applied"]
        broken.append(jid)
    last = svc.start({"spec": COLOR})[1]["jobId"]
    svc.dispatch(last)
    stale_env.launcher.states[status(stale_env, last)["executionName"]] = ExecutionStatus("failed", "exit 1")
    svc.launcher = UnreadableLauncher(stale_env.launcher, {svc.repo.get(j).execution_name for j in broken},
                                      ValueError("execution record has no conditions"))
    try:
        runs = [stale_env.c["reconcile_exports"].post("/").json for _ in range(2)]
    finally:
        svc.launcher = stale_env.launcher
    assert runs[1]["failed"] == 1, runs  # the second run reached the 101st
    assert runs[0] == {"republished": 0, "failed": 0, "succeeded": 0, "checked": 100, "skipped": 100, "deferred": 0}
    assert status(stale_env, last)["error"] == {"code": "execution_failed",
                                                "message": "the render execution failed: exit 1"}
    assert {status(stale_env, j)["status"] for j in broken} == {"running"}


# -- every stored error message is bounded (adversarial review 2, break 6) ---------------------------------
def test_the_upload_expired_message_counts_what_does_not_fit(tmp_path):
    """100 uploads of 200-character names expired with a 20,021-character message (a 20 KB status body)."""
    from shared.errors import MESSAGE_MAX_CHARS

    env = make_env(tmp_path, max_assets=100)
    try:
        names = [f"{i:03d}" + "n" * 193 + ".png" for i in range(100)]  # 200 characters, the most allowed
        spec = {"scenes": [{"id": f"s{i}", "visual": {"type": "image", "src": n}} for i, n in enumerate(names)]}
        jid = start(env, spec, [{"name": n, "contentType": "image/png"} for n in names])
        upload(env, jid, names[0])
        assert env.service.reconcile(now=utcnow() + timedelta(hours=2))["failed"] == 1
        error = status(env, jid)["error"]
        assert error["code"] == "upload_expired" and len(error["message"]) <= MESSAGE_MAX_CHARS
        shown = error["message"].removeprefix("uploads never arrived: ").split(" and ")[0].split(", ")
        assert shown == names[1:1 + len(shown)] and len(shown) >= 5  # whole names, in order
        assert error["message"].endswith(f" and {99 - len(shown)} more")
    finally:
        bootstrap.use_service(None)


def test_an_execution_reason_of_any_length_is_stored_bounded(stale_env):
    from shared.errors import MESSAGE_MAX_CHARS

    jid = start(stale_env)
    stale_env.service.dispatch(jid)
    stale_env.launcher.states[status(stale_env, jid)["executionName"]] = ExecutionStatus("failed", "x" * 100_000)
    r = stale_env.c["reconcile_exports"].post("/")
    assert r.status_code == 200 and r.json["failed"] == 1
    body = stale_env.c["export_status"].get(f"/?jobId={jid}")
    error = body.json["error"]
    assert error["code"] == "execution_failed" and len(error["message"]) == MESSAGE_MAX_CHARS
    assert error["message"].startswith("the render execution failed: xxx") and error["message"].endswith("...")
    assert len(body.get_data()) < 5_000
