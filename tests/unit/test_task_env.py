"""What `python -m render_job` is told (render_job.task_env, issue 19): the modes, and main() exiting 2
without a report when an execution variable cannot be used."""
from __future__ import annotations

import json

import pytest

from render_job import job
from render_job.reporter import Reporter
from render_job.task_env import Misconfigured, task_env

JOB = "5f0c7a52-1d2e-4c3b-9a8f-0123456789ab"


def env(**values):
    return {"EXPORT_JOB_ID": JOB, **{k: str(v) for k, v in values.items()}}


def test_the_modes_and_roles():
    whole = task_env(env(CLOUD_RUN_TASK_INDEX=0, CLOUD_RUN_TASK_COUNT=1))
    assert (whole.mode, whole.role, whole.parts, whole.task) == ("export", "export", None, None)
    # a whole export reads Cloud Run's variables as before issue 19 (a bad one counts as its default)
    assert task_env(env(CLOUD_RUN_TASK_INDEX="x", CLOUD_RUN_TASK_ATTEMPT="")).task_index == 0
    told = dict(RENDER_MODE="part", EXPORT_PART_COUNT=3, CLOUD_RUN_TASK_COUNT=4, CLOUD_RUN_TASK_ATTEMPT=2)
    part = task_env(env(**told, CLOUD_RUN_TASK_INDEX=3))  # task 0 renders the audio, task i + 1 part i
    assert (part.mode, part.role, part.index, part.parts, part.attempt) == ("part", "part", 2, 3, 2)
    assert part.task == {"role": "part", "index": 2}
    audio = task_env(env(**told, CLOUD_RUN_TASK_INDEX=0))
    assert audio.task == {"role": "audio", "index": 3}
    stitch = task_env(env(RENDER_MODE="stitch", EXPORT_PART_COUNT=3))
    assert (stitch.mode, stitch.parts, stitch.task) == ("stitch", 3, {"role": "stitch", "index": 0})


BAD = [
    ({"EXPORT_JOB_ID": "a/b"}, "EXPORT_JOB_ID is missing or malformed"),
    (env(RENDER_MODE="parts"), "RENDER_MODE='parts' is not a render mode"),
    (env(RENDER_MODE="part", CLOUD_RUN_TASK_COUNT=4), "EXPORT_PART_COUNT='' is not a whole number"),
    (env(RENDER_MODE="part", EXPORT_PART_COUNT="3.0", CLOUD_RUN_TASK_COUNT=4), "EXPORT_PART_COUNT='3.0'"),
    (env(RENDER_MODE="part", EXPORT_PART_COUNT=0, CLOUD_RUN_TASK_COUNT=1), "EXPORT_PART_COUNT=0 must be at least 1"),
    (env(RENDER_MODE="part", EXPORT_PART_COUNT=3, CLOUD_RUN_TASK_COUNT=3), "CLOUD_RUN_TASK_COUNT=3 but a render of"),
    (env(RENDER_MODE="part", EXPORT_PART_COUNT=3), "CLOUD_RUN_TASK_COUNT=1 but"),  # run without the override
    (env(RENDER_MODE="part", EXPORT_PART_COUNT=3, CLOUD_RUN_TASK_COUNT=4, CLOUD_RUN_TASK_INDEX=4),
     "CLOUD_RUN_TASK_INDEX=4: task index 4 is outside 0..3"),
    (env(RENDER_MODE="part", EXPORT_PART_COUNT=3, CLOUD_RUN_TASK_COUNT=4, CLOUD_RUN_TASK_INDEX="one"),
     "CLOUD_RUN_TASK_INDEX='one' is not a whole number"),
    (env(RENDER_MODE="stitch", EXPORT_PART_COUNT=-2), "EXPORT_PART_COUNT=-2 must be at least 1"),
    (env(RENDER_MODE="stitch", EXPORT_PART_COUNT=3, CLOUD_RUN_TASK_COUNT=2), "the stitch runs as one task"),
]


@pytest.mark.parametrize("environ,problem", BAD, ids=[p for _, p in BAD])
def test_main_exits_2_without_a_report_when_told_something_unusable(environ, problem, monkeypatch, capsys):
    for name in ("EXPORT_JOB_ID", "RENDER_MODE", "EXPORT_PART_COUNT", "CLOUD_RUN_TASK_INDEX", "CLOUD_RUN_TASK_COUNT",
                 "CLOUD_RUN_TASK_ATTEMPT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    posted = []
    monkeypatch.setattr(Reporter, "_post", lambda self, body: posted.append(body) or True)
    with pytest.raises(Misconfigured, match=problem.replace(".", r"\.").replace("(", r"\(")):
        task_env(environ)
    assert job.main() == 2
    assert posted == []
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [e["severity"] for e in logged] == ["ERROR"] and problem in logged[0]["message"]


def test_reports_name_their_execution_and_the_launchers_part_floor_is_read():
    """A relaunched execution's attempts start at 0 again: reports name the execution (its short
    name) so the API counts attempts per execution. EXPORT_MIN_PART_S replaces RENDER_MIN_PART_S."""
    told = dict(RENDER_MODE="part", EXPORT_PART_COUNT=3, CLOUD_RUN_TASK_COUNT=4, CLOUD_RUN_TASK_INDEX=1,
                CLOUD_RUN_EXECUTION="sceneflow-render-x7k2p", EXPORT_MIN_PART_S="12.5")
    part = task_env(env(**told))
    assert part.task == {"role": "part", "index": 0, "execution": "sceneflow-render-x7k2p"}
    assert part.min_part_s == 12.5
    stitch = task_env(env(RENDER_MODE="stitch", EXPORT_PART_COUNT=3, CLOUD_RUN_EXECUTION="a/b/stitch-1",
                          EXPORT_MIN_PART_S="4"))
    assert (stitch.task, stitch.min_part_s) == ({"role": "stitch", "index": 0, "execution": "stitch-1"}, 4.0)
    assert task_env(env(RENDER_MODE="stitch", EXPORT_PART_COUNT=3)).min_part_s is None
    for bad in ("0", "-1", "nan", "x", "inf"):
        with pytest.raises(Misconfigured, match="EXPORT_MIN_PART_S"):
            task_env(env(RENDER_MODE="stitch", EXPORT_PART_COUNT=3, EXPORT_MIN_PART_S=bad))


def test_the_launchers_part_floor_replaces_the_tasks_own(monkeypatch):
    seen = []
    monkeypatch.setattr(job, "run_stitch", lambda *a, **kw: seen.append(a[3].render_min_part_s))
    from shared.config import Settings

    stitch = task_env(env(RENDER_MODE="stitch", EXPORT_PART_COUNT=3, EXPORT_MIN_PART_S="4"))
    job._run_mode(stitch, None, None, Settings(render_min_part_s=10.0), "/tmp")
    job._run_mode(task_env(env(RENDER_MODE="stitch", EXPORT_PART_COUNT=3)), None, None,
                  Settings(render_min_part_s=10.0), "/tmp")
    assert seen == [4.0, 10.0]
