"""A relaunched execution's tasks are heard (issue 19, adv19 finding 1), end to end on PostgreSQL: the
embedded stack, the local launcher running `python -m render_job` task subprocesses, forced down
the parallel path (test_parallel_faults.PARALLEL_ENV). The first stitch execution reports, then dies
(exit 137, as an OOM kill) on every one of its attempts, so it ends failed with the stitch's task at
attempt 2; reconcile_exports relaunches the stitch, whose task starts at attempt 0 again in its new
execution: its reports are applied (attempts count per execution: the task names its
CLOUD_RUN_EXECUTION) and the export succeeds. Before the fix, each relaunched stitch got 409 at its
first report and stopped, and the job failed "the stitch execution ended without a video".
The fault comes from a RENDER_PYTHON stand-in (as parallel_flows.HOOKS): no test-only production path.
"""
from __future__ import annotations

import stat
import sys
import uuid
from pathlib import Path

import pytest
import requests

from infra.local import client
from infra.local.stack import EmbeddedStack, fresh_postgres_database, migrate
from parallel_flows import asset_files, start
from sceneflow_flows import wait_for_condition
from test_parallel_faults import PARALLEL_ENV, spec

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
WRAP = r'''#!{python}
import json, os, sys, urllib.request
env = os.environ
marker = {marker!r}
if env.get("RENDER_MODE") == "stitch":
    ex = env.get("CLOUD_RUN_EXECUTION", "")
    if not os.path.exists(marker):
        open(marker, "w").write(ex)
    if open(marker).read() == ex:  # every attempt of the first stitch execution: report, then die (OOM)
        body = json.dumps({{"jobId": env["EXPORT_JOB_ID"], "status": "running", "stage": "stitching", "progress": 0.1,
                           "attempt": int(env.get("CLOUD_RUN_TASK_ATTEMPT", "0")),
                           "task": {{"role": "stitch", "index": 0}}}}).encode()  # as a task before the fix
        sys.path.insert(0, {root!r})
        from shared.config import report_target
        url, token = report_target(env)
        req = urllib.request.Request(url, body, {{"Content-Type": "application/json",
                                     "Authorization": "Bearer " + token}})
        urllib.request.urlopen(req, timeout=30).read()
        sys.exit(137)
os.execv({python!r}, [{python!r}, *sys.argv[1:]])
'''


def test_a_stitch_crashing_on_every_attempt_is_relaunched_and_its_new_attempts_are_heard(run_dir, pg_url, tmp_path):
    marker = tmp_path / "first-stitch"
    wrapper = tmp_path / "render-python"
    wrapper.write_text(WRAP.format(python=sys.executable, marker=str(marker), root=str(ROOT)))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    db = fresh_postgres_database(pg_url, prefix="sceneflow_relaunch")
    migrate(db)
    env = {**PARALLEL_ENV, "DATABASE_URL": db, "RENDER_PYTHON": str(wrapper)}
    with EmbeddedStack(run_dir=run_dir / f"relaunch-{uuid.uuid4().hex[:6]}", extra_env=env) as s:
        sb = spec()
        job_id = start(s.base, sb, asset_files(sb))
        wait_for_condition(lambda: marker.exists(), 180, "the first stitch")
        first = marker.read_text()

        def exits():
            return [(e["execution"], e["attempt"], e["exitCode"])
                    for e in s.log_entries("render task exited", job_id=job_id) if "stitch" in e["execution"]]
        wait_for_condition(lambda: sum(1 for ex, _, code in exits() if ex == first and code == 137) == 3, 120,
                           "the first stitch execution's 3 attempts to die")

        def repaired():  # reconcile until the job ends (a running relaunched stitch is left alone)
            assert requests.post(f"{s.base}/reconcile_exports", timeout=60).status_code == 200
            st = client.get_status(s.base, job_id)
            return st if st["status"] in ("succeeded", "failed", "canceled") else None
        final = wait_for_condition(repaired, 180, "the relaunched stitch to end the export", interval_s=1.0)
        assert final["status"] == "succeeded", final.get("error")
        # the export succeeds at the video's finalize, before the relaunched task's exit is logged
        relaunched = wait_for_condition(lambda: [(a, code) for ex, a, code in exits() if ex != first], 60,
                                        "the relaunched stitch's exit")
        assert relaunched == [(0, 0)]  # one relaunch, its attempt 0 heard and done
        assert sum(1 for ex, _, _ in exits() if ex == first) == 3
        assert not [e for e in s.log_entries(None, job_id=job_id) if "attempt 0 of the stitch" in str(e)]
        assert final["parts"] == {"count": 3, "rendered": 3, "audio": True}
