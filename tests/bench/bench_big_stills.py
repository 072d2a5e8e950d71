"""Stills larger than the frame: FFmpeg's peak memory against the budget's F, and the CPU of the job.

    .venv/bin/python tests/bench/bench_big_stills.py WORKDIR [static|fades|motion|seg48] [--distinct] [SIZE...]

Generates each still (SIZE as WxH, default 3840x8192 3840x2160: an RGB PNG of testsrc2 with grain,
so that it compresses like a photo; WxH.jpg for a JPEG q95 4:2:0) and runs a 1080p24 draft export
of it through run_export (LocalStorage, real FFmpeg behind a wrapper timing each run with GNU time):
24 scenes of 0.5 s (`static`), 1 s with 0.25 s fades (`fades`), also zoom-in / zoom-out / pan-left in
turn (`motion`, the benchmark's storyboard), or 48 of those (`seg48`). --distinct: every scene its
own src (same bytes), so every still is normalised and decoded once per scene, as in a real story.
One JSON line per still: F (the budget's ffmpegBytes, MiB), peak (the encoding run plus the largest
segment run, MiB), FFmpeg CPU, the job's CPU (this process and every child), the job's wall.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from render_job.job import run_export  # noqa: E402
from render_job.runner import find_ffmpeg  # noqa: E402
from shared.adapters.local_storage import LocalStorage  # noqa: E402
from shared.config import Settings  # noqa: E402
from tests.fakes import FakeReporter  # noqa: E402
from tests.media_factory import ff  # noqa: E402

MOTIONS = ("zoom-in", "zoom-out", "pan-left")


def still(work: Path, size: str) -> Path:
    wh, _, ext = size.partition(".")
    path = work / f"{wh}.{ext or 'png'}"
    if not path.exists():
        png = work / f"{wh}.png"
        if not png.exists():
            ff("-f", "lavfi", "-i", f"testsrc2=s={wh},format=rgb24,noise=alls=14:allf=u,gblur=sigma=0.6",
               "-frames:v", "1", str(png))
        if ext == "jpg":
            from PIL import Image
            with Image.open(png) as im:
                im.save(path, "JPEG", quality=95)
    return path


def spec(srcs: list[str], scenario: str) -> dict:
    scenes = []
    for i, src in enumerate(srcs):
        sc = {"id": f"s{i}", "duration": 0.5 if scenario == "static" else 1.0, "visual": {"type": "image", "src": src}}
        if scenario != "static":
            sc["transition"] = {"type": "fade", "duration": 0.25}
        if scenario in ("motion", "seg48"):
            sc["visual"]["motion"] = MOTIONS[i % 3]
        scenes.append(sc)
    return {"version": 1, "title": "big stills", "scenes": scenes, "captions": {"burnIn": False, "sidecar": []},
            "output": {"resolution": "1080p", "aspectRatio": "16:9", "fps": 24, "quality": "draft"}}


def run(work: Path, img: Path, scenario: str, distinct: bool) -> dict:
    work.mkdir(parents=True)
    log, wrapper = work / "runs.log", work / "ffmpeg.sh"
    wrapper.write_text(f'#!/bin/sh\nr=$(mktemp)\n/usr/bin/time -f "%M %U %S" -o "$r" "{find_ffmpeg()}" "$@"\nrc=$?\n'
                       f'printf "%s\\t%s\\n" "$*" "$(tail -n1 $r)" >> "{log}"\nrm -f "$r"\nexit $rc\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    n = 48 if scenario == "seg48" else 24
    srcs = [f"s{i:02d}{img.suffix}" if distinct else f"still{img.suffix}" for i in range(n)]
    storage = LocalStorage(work / "store")
    storage.upload_bytes("in", "jobs/j/spec.json", json.dumps(spec(srcs, scenario)).encode(), "application/json")
    for src in dict.fromkeys(srcs):
        storage.upload_bytes("in", f"jobs/j/assets/{src}", img.read_bytes(), "application/octet-stream")
    (work / "work").mkdir()
    out, t0, c0 = io.StringIO(), time.perf_counter(), os.times()
    with contextlib.redirect_stdout(out):
        result = run_export("j", storage, FakeReporter(), Settings(input_bucket="in", output_bucket="out",
                            render_max_retries=0, render_timeout_per_output_s=20), str(work / "work"),
                            attempt=0, ffmpeg=str(wrapper))
    wall, c1 = time.perf_counter() - t0, os.times()
    logs = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    budget = [e for e in logs if e.get("message") == "memory budget"]
    runs = []
    for line in log.read_text().splitlines() if log.exists() else []:
        args, times = line.split("\t")
        rss, user, system = times.split()
        runs.append({"args": args, "rss": int(rss) * 1024, "cpu": float(user) + float(system)})
    render = [r for r in runs if "output.mp4" in r["args"] and "-fs" in r["args"]]
    segments = [r for r in runs if r["args"].endswith("pipe:1") and "rawvideo" in r["args"]]
    peak = sum(r["rss"] for r in render[:1]) + max([r["rss"] for r in segments] or [0])
    return {"still": img.name, "scenario": scenario, "distinct": distinct, "status": result.status,
            "normalised": sum(1 for e in logs if e.get("message") == "image normalised"),
            "segments": len(segments), "F_MiB": round(budget[0]["ffmpegBytes"] / 2**20) if budget else None,
            "peak_MiB": round(peak / 2**20), "ffmpeg_cpu_s": round(sum(r["cpu"] for r in render + segments), 2),
            "job_cpu_s": round(sum(c1[k] - c0[k] for k in range(4)), 2), "job_wall_s": round(wall, 1)}


def main(argv: list[str]) -> None:
    args = [a for a in argv if a != "--distinct"]
    work, scenario = Path(args[0]), (args[1] if len(args) > 1 else "static")
    sizes = args[2:] or ["3840x8192", "3840x2160"]
    work.mkdir(parents=True, exist_ok=True)
    for size in sizes:
        img = still(work, size)
        print(json.dumps(run(work / f"run-{scenario}-{img.stem}-{time.time_ns()}", img, scenario,
                             "--distinct" in argv)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
