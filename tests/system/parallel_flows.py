"""Helpers of the parallel-export system tests (issue 19; imported as a module, not a conftest).

HOOKS is a RENDER_PYTHON stand-in that lets a test act on one export's tasks without any test-only
path in production code. For a task whose export has a hooks file `{hooks}/{EXPORT_JOB_ID}.json`:
- {"kill": {"role": "part", "index": i}}: attempt 0 of part task i runs the real task in its own
  session and SIGKILLs that whole group (python -m render_job and its FFmpeg) while the part's
  encoding FFmpeg (the one with -progress) runs; writes `{job}-killed.json`;
- {"keepPieces": true}: every stitch attempt first copies each object under parts/{job}/ (the
  pieces, with their generation and metadata) into `{job}-pieces-{n}/` and lists them in
  `{job}-pieces-{n}.json` (n: 0, 1, ... per stitch attempt): what the stitch found, before the
  clean-up deletes the pieces;
- {"stitchNoop": true}: the first stitch execution does nothing and exits 0 (a launch that
  "succeeded" but whose execution never ran); writes `{job}-stitch-noop` with its name.
Every other task execs the real interpreter: the same process as without the stand-in.
"""
from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import av

from infra.local import client
from sceneflow_flows import ASSETS, FFMPEG_FINDER, wait_for_condition

TERMINAL = {"succeeded", "failed", "canceled"}

HOOKS = r'''#!{python}
import json, os, signal, subprocess, sys, time, urllib.parse, urllib.request

REAL, HOOKS = {python!r}, {hooks!r}
env = os.environ
job = env.get("EXPORT_JOB_ID", "")
try:
    with open(os.path.join(HOOKS, job + ".json")) as f:
        hooks = json.load(f)
except (OSError, ValueError):
    hooks = {{}}
mode, task, attempt = env.get("RENDER_MODE"), int(env.get("CLOUD_RUN_TASK_INDEX", "0")), env.get("CLOUD_RUN_TASK_ATTEMPT")
index = task - 1  # a part task's part (shared.executions.task_role: task 0 renders the audio)


def out(name):
    return os.path.join(HOOKS, f"{{job}}-{{name}}")


def storage(path, **params):
    url = env["STORAGE_EMULATOR_HOST"].rstrip("/") + path + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


if mode == "stitch" and hooks.get("stitchNoop") and not os.path.exists(out("stitch-noop")):
    with open(out("stitch-noop"), "w") as f:
        f.write(env.get("CLOUD_RUN_EXECUTION", ""))
    sys.exit(0)

if mode == "stitch" and hooks.get("keepPieces"):
    bucket = env["EXPORT_OUTPUT_BUCKET"]
    n = 0
    while os.path.exists(out(f"pieces-{{n}}.json")):
        n += 1
    folder = out(f"pieces-{{n}}")
    os.makedirs(folder)
    items = json.loads(storage(f"/storage/v1/b/{{bucket}}/o", prefix=f"parts/{{job}}/")).get("items", [])
    for o in items:
        data = storage(f"/download/storage/v1/b/{{bucket}}/o/{{urllib.parse.quote(o['name'], safe='')}}", alt="media")
        with open(os.path.join(folder, os.path.basename(o["name"])), "wb") as f:
            f.write(data)
    with open(out(f"pieces-{{n}}.json"), "w") as f:
        json.dump([{{"name": o["name"], "generation": o.get("generation"), "metadata": o.get("metadata")}}
                   for o in items], f)

kill = hooks.get("kill") or {{}}
if not (mode == "part" and attempt == "0" and kill.get("role", "part") == "part" and kill.get("index") == index):
    os.execv(REAL, [REAL, *sys.argv[1:]])


''' + FFMPEG_FINDER + r'''

child = subprocess.Popen([REAL, *sys.argv[1:]], start_new_session=True)
deadline = time.monotonic() + 120
while child.poll() is None and time.monotonic() < deadline:
    ff = encoding_ffmpeg(child.pid)
    if ff:
        time.sleep(0.1)
        alive = os.path.exists(f"/proc/{{ff}}") and child.poll() is None
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        with open(out("killed.json"), "w") as f:
            json.dump({{"killed": True, "ffmpegAliveAtKill": alive, "index": index}}, f)
        sys.exit(128 + signal.SIGKILL)
    time.sleep(0.02)
with open(out("killed.json"), "w") as f:
    json.dump({{"killed": False, "exitCode": child.returncode}}, f)
sys.exit(child.returncode or 0)
'''


def install_hooks(folder: Path) -> tuple[Path, Path]:
    """Write the HOOKS stand-in into `folder`: (its path, to give as RENDER_PYTHON; the hooks folder)."""
    hooks = folder / "hooks"
    hooks.mkdir(parents=True, exist_ok=True)
    wrapper = folder / "render-python"
    wrapper.write_text(HOOKS.format(python=sys.executable, hooks=str(hooks)))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return wrapper, hooks


def set_hooks(hooks: Path, job_id: str, **what) -> None:
    """Hooks for `job_id`'s tasks (module docstring); before its uploads complete, so before dispatch."""
    (hooks / f"{job_id}.json").write_text(json.dumps(what))


def asset_files(spec: dict, folder: Path = ASSETS) -> list[Path]:
    """The files a spec names (visual, narration, music srcs), first use first."""
    names: list[str] = []
    for sc in spec["scenes"]:
        for src in ((sc.get("visual") or {}).get("src"), (sc.get("narration") or {}).get("src")):
            if src and src not in names:
                names.append(src)
    if (spec.get("music") or {}).get("src"):
        names.append(spec["music"]["src"])
    return [folder / n for n in names]


def start(base: str, spec: dict, files: list[Path], hooks: Path | None = None, **what) -> str:
    """export_start, the hooks for the job (if any), then the uploads (which queue it)."""
    started = client.start_export(base, spec, files)
    if hooks is not None:
        set_hooks(hooks, started["jobId"], **what)
    client.upload_all(started["uploads"], files)
    return started["jobId"]


def wait_terminal(base: str, job_id: str, timeout_s: float = 150, seen: list | None = None) -> dict:
    """The job's status once succeeded, failed or canceled (every status read appended to `seen`)."""
    def check():
        st = client.get_status(base, job_id)
        if seen is not None:
            seen.append(st)
        return st if st["status"] in TERMINAL else None

    return wait_for_condition(check, timeout_s, f"export {job_id} to end", interval_s=0.25)


def objects(stack, prefix: str) -> list[dict]:
    """Object resources under `prefix` in the stack's output bucket."""
    import requests

    r = requests.get(f"{stack.storage.url}/storage/v1/b/{stack.output_bucket}/o", params={"prefix": prefix},
                     timeout=10)
    r.raise_for_status()
    return r.json().get("items", [])


def frame_count(path: Path) -> int:
    """Video frames of an MP4 (demuxed packets: one per frame)."""
    with av.open(str(path)) as c:
        return sum(1 for p in c.demux(c.streams.video[0]) if p.size)


def video_packets(path: Path) -> list[bytes]:
    """The bytes of every video packet of a file, in order."""
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]


def audio_packets(path: Path) -> list[bytes]:
    """The bytes of every audio packet of a file, in order."""
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]
