"""The local launcher's executions of K tasks and its stitch (issue 19, item 6), with a stand-in
RENDER_PYTHON (as tests/system/test_stack_stop.py does): each task records the environment it was
given and how many tasks were running when it started, then waits until the test releases it with
an exit code. The test releases a task only while `parallelism` tasks are held, so a launcher that
started more at once would be seen doing so, never missed by timing."""
from __future__ import annotations

import json
import stat
import sys
import time
from pathlib import Path

import pytest

from shared.adapters.local_launcher import SubprocessLauncher

TASK = '''#!{python}
import fcntl, glob, json, os, sys, time
d, i, attempt = {folder!r}, os.environ["CLOUD_RUN_TASK_INDEX"], os.environ["CLOUD_RUN_TASK_ATTEMPT"]
names = ("EXPORT_JOB_ID", "RENDER_MODE", "EXPORT_PART_COUNT", "CLOUD_RUN_JOB", "CLOUD_RUN_EXECUTION",
         "CLOUD_RUN_TASK_INDEX", "CLOUD_RUN_TASK_COUNT", "CLOUD_RUN_TASK_ATTEMPT")
with open(os.path.join(d, "lock"), "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    with open(os.path.join(d, f"env-{{i}}-{{attempt}}.json"), "w") as f:
        json.dump({{n: os.environ.get(n) for n in names}}, f)
    open(os.path.join(d, f"started-{{i}}-{{attempt}}"), "w").close()
    running = len(glob.glob(os.path.join(d, "started-*"))) - len(glob.glob(os.path.join(d, "finished-*")))
    with open(os.path.join(d, f"seen-{{i}}-{{attempt}}"), "w") as f:
        f.write(str(running))
release = os.path.join(d, f"release-{{i}}-{{attempt}}")
while not os.path.exists(release):
    time.sleep(0.02)
code = int(open(release).read())
with open(os.path.join(d, "lock"), "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    open(os.path.join(d, f"finished-{{i}}-{{attempt}}"), "w").close()
sys.exit(code)
'''
JOB_ID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
BOUND_S = 60  # a bound on each wait, never an assertion about speed


@pytest.fixture
def folder(tmp_path) -> Path:
    return tmp_path


def make_launcher(folder: Path, parallelism: int, max_retries: int = 0) -> SubprocessLauncher:
    task = folder / "render-python"
    task.write_text(TASK.format(python=sys.executable, folder=str(folder)))
    task.chmod(task.stat().st_mode | stat.S_IXUSR)
    return SubprocessLauncher("sceneflow-render", max_retries=max_retries, python=str(task),
                              log_dir=str(folder / "logs"), stitch_job="sceneflow-stitch",
                              parallelism=parallelism, max_parts=16)


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + BOUND_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def held(folder: Path) -> list[str]:
    """'index-attempt' of the tasks started and not released."""
    started = {p.name.removeprefix("started-") for p in folder.glob("started-*")}
    released = {p.name.removeprefix("release-") for p in folder.glob("release-*")}
    return sorted(started - released)


def release(folder: Path, task: str, code: int = 0) -> None:
    (folder / f"release-{task}").write_text(str(code))


def test_k_tasks_run_with_cloud_run_env_at_most_parallelism_at_once(folder):
    launcher = make_launcher(folder, parallelism=2, max_retries=1)
    name = launcher.launch(JOB_ID, parts=4)  # 4 parts + the audio: 5 tasks
    retried = False
    finished = 0
    while finished < 6:  # 5 tasks, one of them twice: release one only while two are held (or the last)
        wait_until(lambda: len(held(folder)) >= min(2, 6 - finished), "two tasks held")
        assert len(held(folder)) == min(2, 6 - finished), held(folder)  # never a third at once
        task = held(folder)[0]
        assert (folder / "logs" / f"{name}-t{task.split('-')[0]}.pgid").exists()  # tasks.py can stop it
        if task == "3-0" and not retried:
            release(folder, task, 1)  # task 3 fails once: retried on its own, as Cloud Run does
            retried = True
        else:
            release(folder, task)
        finished += 1
        wait_until(lambda: (folder / f"finished-{task}").exists(), f"task {task} to end")
    launcher.wait(name, timeout=BOUND_S)

    assert launcher.status(name).state == "succeeded"
    seen = {p.name.removeprefix("seen-"): int(p.read_text()) for p in folder.glob("seen-*")}
    assert sorted(seen) == ["0-0", "1-0", "2-0", "3-0", "3-1", "4-0"]
    assert max(seen.values()) == 2  # two at once, never three
    envs = {t: json.loads((folder / f"env-{t}.json").read_text()) for t in seen}
    for t, env in envs.items():
        index, attempt = t.split("-")
        assert env == {"EXPORT_JOB_ID": JOB_ID, "RENDER_MODE": "part", "EXPORT_PART_COUNT": "4",
                       "CLOUD_RUN_JOB": "sceneflow-render", "CLOUD_RUN_EXECUTION": name,
                       "CLOUD_RUN_TASK_INDEX": index, "CLOUD_RUN_TASK_COUNT": "5", "CLOUD_RUN_TASK_ATTEMPT": attempt}
    assert launcher.task_exit_codes[(name, 3)] == [1, 0]
    assert [launcher.task_exit_codes[(name, i)] for i in (0, 1, 2, 4)] == [[0]] * 4
    assert list((folder / "logs").glob("*.pgid")) == []


def test_one_task_is_todays_environment(folder):
    launcher = make_launcher(folder, parallelism=2)
    name = launcher.launch(JOB_ID)
    wait_until(lambda: held(folder) == ["0-0"], "the task")
    assert (folder / "logs" / f"{name}.pgid").exists()  # the one-task file name of before
    release(folder, "0-0")
    launcher.wait(name, timeout=BOUND_S)
    assert launcher.status(name).state == "succeeded"
    env = json.loads((folder / "env-0-0.json").read_text())
    assert env == {"EXPORT_JOB_ID": JOB_ID, "RENDER_MODE": None, "EXPORT_PART_COUNT": None,
                   "CLOUD_RUN_JOB": "sceneflow-render", "CLOUD_RUN_EXECUTION": name,
                   "CLOUD_RUN_TASK_INDEX": "0", "CLOUD_RUN_TASK_COUNT": "1", "CLOUD_RUN_TASK_ATTEMPT": "0"}


def test_the_stitch_is_one_more_task_of_its_own_job(folder):
    launcher = make_launcher(folder, parallelism=2)
    name = launcher.launch_stitch(JOB_ID, part_count=5)
    assert name.startswith("sceneflow-stitch-")
    wait_until(lambda: held(folder) == ["0-0"], "the stitch task")
    release(folder, "0-0")
    launcher.wait(name, timeout=BOUND_S)
    assert launcher.status(name).state == "succeeded"
    env = json.loads((folder / "env-0-0.json").read_text())
    assert env == {"EXPORT_JOB_ID": JOB_ID, "RENDER_MODE": "stitch", "EXPORT_PART_COUNT": "5",
                   "CLOUD_RUN_JOB": "sceneflow-stitch", "CLOUD_RUN_EXECUTION": name,
                   "CLOUD_RUN_TASK_INDEX": "0", "CLOUD_RUN_TASK_COUNT": "1", "CLOUD_RUN_TASK_ATTEMPT": "0"}


def test_a_task_failing_every_attempt_fails_the_execution_naming_it(folder):
    launcher = make_launcher(folder, parallelism=3)
    name = launcher.launch(JOB_ID, parts=2)  # 3 tasks
    wait_until(lambda: len(held(folder)) == 3, "three tasks")
    release(folder, "0-0")
    release(folder, "1-0", 7)
    release(folder, "2-0")
    launcher.wait(name, timeout=BOUND_S)
    st = launcher.status(name)
    assert st.state == "failed"
    assert st.reason == "1 of 3 task(s) failed every attempt (tasks 1); last exit code 7"


def test_cancel_stops_every_running_task_and_starts_no_other(folder):
    launcher = make_launcher(folder, parallelism=2, max_retries=3)
    name = launcher.launch(JOB_ID, parts=3)  # 4 tasks
    wait_until(lambda: len(held(folder)) >= 2, "two tasks")
    running = held(folder)
    assert len(running) == 2, running
    launcher.cancel(name)
    launcher.wait(name, timeout=BOUND_S)

    assert launcher.status(name).state == "cancelled"
    assert held(folder) == running  # tasks 2 and 3 never started, nor any retry
    assert sorted(c for codes in launcher.task_exit_codes.values() for c in codes) == [-15, -15]  # SIGTERM
    assert list((folder / "logs").glob("*.pgid")) == []


def test_counts_out_of_range_are_refused(folder):
    launcher = make_launcher(folder, parallelism=2)
    for bad in (0, 17):
        with pytest.raises(ValueError):
            launcher.launch(JOB_ID, parts=bad)
    with pytest.raises(ValueError):
        launcher.launch_stitch(JOB_ID, part_count=1)
    with pytest.raises(ValueError, match="RENDER_STITCH_JOB_NAME"):
        SubprocessLauncher("sceneflow-render").launch_stitch(JOB_ID, part_count=2)
    assert launcher.executions == {} and not list(folder.glob("started-*"))
