"""What encoding a long export in scene chunks costs (`make bench-chunks`, issue 19; DESIGN.md §9 "chunks").

    .venv/bin/python tests/bench/bench_chunks.py [--minutes 2] [--rounds 2] [--out .local/bench-chunks]

The single task (tests/bench/render_child.py: render_job.job.run_export, a process of its own) renders
the bench-parallel storyboard (tests/bench/bench_parallel.py: 12 scenes a minute, stills with Ken
Burns motion, narration, captions, music, half crossfades and half cuts) two ways, alternating A, B,
A, B so that the VM's drift falls on both: A, one encoding run for the whole timeline (the path of
exports under RENDER_PARALLEL_AFTER_S); B, scene chunks (render_job.part_render.render_whole: one
x264 run per scene, the audio beside it, the stitch; the path of exports at or over it). Printed per
run: wall, CPU (the whole process tree), the video stream's bytes and key frames; then the medians
and the ratios B / A. A measurement: exit 1 only when a render fails.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for p in (str(ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import bench_parallel  # noqa: E402
from bench_render import log, machine_info, wait_for_quiet  # noqa: E402
from measure import run_measured  # noqa: E402

WAYS = {"one run": {"RENDER_PARALLEL_AFTER_S": "1000000"},
        "chunks": {"RENDER_PARALLEL_AFTER_S": "0", "RENDER_MAX_PARTS": "1"}}


def video_stream(path: Path) -> tuple[int, int, int]:
    """(bytes, key frames, frames) of the first video stream of `path`."""
    import av

    size = keys = frames = 0
    with av.open(str(path)) as c:
        for p in c.demux(c.streams.video[0]):
            if p.size:
                size, keys, frames = size + p.size, keys + int(p.is_keyframe), frames + 1
    return size, keys, frames


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=int, default=2, help="output length in minutes (12 scenes each)")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each way, alternating")
    ap.add_argument("--out", default=str(ROOT / ".local" / "bench-chunks"), help="media cache, work, results")
    ap.add_argument("--wait-idle", type=float, default=15.0, help="before each run, wait (up to 120 s) for "
                                                                  "the CPUs to be less busy than this %%")
    args = ap.parse_args(argv)
    from render_job.runner import find_ffmpeg
    from shared.config import get_settings

    ffmpeg = find_ffmpeg(get_settings().ffmpeg_binary)
    machine = machine_info(ffmpeg)
    log(f"machine: {machine['cpu']}, {machine['cores']} cores; FFmpeg {machine['ffmpeg_version']}")
    out = Path(args.out).resolve()
    store = out / "store"
    shutil.rmtree(store, ignore_errors=True)
    spec, files = bench_parallel.story(ffmpeg, ROOT / ".local" / "bench-parallel" / "media", args.minutes)
    runs: list[dict] = []
    for r in range(args.rounds):
        for way, env in WAYS.items():
            job = f"job-chunks-{r}-{way.replace(' ', '-')}"
            bench_parallel.JOB = job  # stage() writes under jobs/{JOB}/
            bench_parallel.stage(store, spec, files)
            wait_for_quiet(None, 120, args.wait_idle or None)
            result = out / f"{job}.json"
            m = run_measured(way, [sys.executable, str(HERE / "render_child.py"), str(store), job, str(result)],
                             env={**os.environ, **env}, log_path=str(out / f"{job}.log"))
            data = json.loads(result.read_text())
            if data["status"] != "succeeded":
                print(f"{way}: {data['status']}: {data['error']}")
                return 1
            size, keys, frames = video_stream(store / bench_parallel.OUT / "exports" / job / data["output"]["filename"])
            runs.append({"way": way, "wallS": m.wall_s, "cpuS": m.cpu_s, "videoBytes": size, "keyFrames": keys,
                         "frames": frames})
            log(f"{way}: wall {m.wall_s:.1f} s, CPU {m.cpu_s:.1f} s, video {size / 1e6:.2f} MB, {keys} key frames "
                f"of {frames}")
    med = {way: {k: statistics.median(x[k] for x in runs if x["way"] == way) for k in ("wallS", "cpuS", "videoBytes",
                                                                                       "keyFrames")}
           for way in WAYS}
    (out / "bench-chunks.json").write_text(json.dumps({"minutes": args.minutes, "machine": machine, "runs": runs,
                                                       "medians": med}, indent=1, default=str))
    a, b = med["one run"], med["chunks"]
    print(f"\n{args.minutes} min storyboard, {args.rounds} runs each, alternating; medians:")
    for way, m in med.items():
        print(f"  {way:8s} wall {m['wallS']:.1f} s, CPU {m['cpuS']:.1f} s, video {m['videoBytes'] / 1e6:.2f} MB, "
              f"{m['keyFrames']:.0f} key frames")
    same = runs[0]["videoBytes"] == runs[1]["videoBytes"] and runs[0]["keyFrames"] == runs[1]["keyFrames"]
    if same:
        print("  WARNING: both ways gave the same video: the settings did not reach the render")
    spread = {way: (min(x["wallS"] for x in runs if x["way"] == way), max(x["wallS"] for x in runs if x["way"] == way))
              for way in WAYS}
    print("  wall spread: " + "; ".join(f"{w} {lo:.1f}-{hi:.1f} s" for w, (lo, hi) in spread.items()))
    print(f"chunks / one run: wall {b['wallS'] / a['wallS']:.3f}, CPU {b['cpuS'] / a['cpuS']:.3f}, "
          f"video bytes {b['videoBytes'] / a['videoBytes']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
