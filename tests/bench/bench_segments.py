"""Memory of long storyboards: one FFmpeg graph against segmented renders (`make bench-segments`).

    .venv/bin/python tests/bench/bench_segments.py [--scenes 72] [--segment-scenes 24] [--out .local/bench-seg]

Renders a storyboard of --scenes 1 s 1920x1080 stills at 1080p30 draft (Ken Burns zoom-in, zoom-out
and pan-left in turn, 0.25 s fades between them: the motions that hold the most memory per scene,
see render_job.graph.timeline.segment_cuts) with our render job (tests/bench/render_child.py, as (a) of
`make bench`) twice: RENDER_SEGMENT_SCENES=0 (the whole timeline in one FFmpeg graph) and
RENDER_SEGMENT_SCENES=--segment-scenes (segments piped into one encoding run). Prints wall time, CPU
time (whole process tree), the largest FFmpeg process's peak RSS (exact, rusage), the process tree's
peak summed RSS (sampled every 0.2 s), the ratios single/segmented (memory) and segmented/single
(time), and whether the two outputs' video frames are identical (framemd5). A measurement: it
never fails on a figure. Results go into BENCHMARKS.md by hand.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for p in (str(ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

from bench_render import log, machine_info, stage_local_job, wait_for_quiet  # noqa: E402
from measure import run_measured  # noqa: E402
from storyboard import Storyboard  # noqa: E402

MOTIONS = ("zoom-in", "zoom-out", "pan-left")
SOURCES = ("testsrc2=s=1920x1080", "mandelbrot=s=1920x1080", "smptehdbars=s=1920x1080",
           "cellauto=s=1920x1080:rule=110")


def total_s(scenes: int) -> float:
    return scenes * 1.0 - (scenes - 1) * 0.25


def make_story(ffmpeg: str, media: Path, scenes: int) -> Storyboard:
    media.mkdir(parents=True, exist_ok=True)
    files = []
    for i, src in enumerate(SOURCES):
        path = media / f"s{i}.png"
        if not path.exists():
            subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", src,
                            "-frames:v", "1", "-y", str(path)], check=True)
        files.append(path)
    spec = {"version": 1, "title": "Long storyboard",
            "output": {"resolution": "1080p", "aspectRatio": "16:9", "fps": 30, "quality": "draft"},
            "scenes": [{"id": f"s{i}", "duration": 1.0,
                        "visual": {"type": "image", "src": files[i % len(files)].name, "motion": MOTIONS[i % 3]},
                        "transition": {"type": "fade", "duration": 0.25}} for i in range(scenes)]}
    return Storyboard(spec=spec, files=files, motion=True, motion_note="")


def render(out: Path, story: Storyboard, ffmpeg: str, segment_scenes: int):
    d = out / f"seg{segment_scenes}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    job_id = "bench-" + uuid.uuid4().hex[:8]
    stage_local_job(d / "storage", job_id, story)
    env = dict(os.environ, FFMPEG_BINARY=ffmpeg, PYTHONPATH=str(ROOT), RENDER_SEGMENT_SCENES=str(segment_scenes))
    label = "one graph" if segment_scenes == 0 else f"segments of {segment_scenes} scenes"
    m = run_measured(label, [sys.executable, str(HERE / "render_child.py"), str(d / "storage"), job_id,
                             str(d / "result.json"), str(d / "work")],
                     cwd=str(ROOT), env=env, output_s=total_s(len(story.spec['scenes'])), log_path=str(d / "job.log"))
    res = json.loads((d / "result.json").read_text()) if (d / "result.json").exists() else {}
    if res.get("status") != "succeeded":
        raise RuntimeError(f"{label}: render {res.get('status')}: {res.get('error')} (log {d / 'job.log'})")
    mp4 = d / "storage" / "bench-out" / "exports" / job_id / res["output"]["filename"]
    return m, res, mp4


def frame_md5s(ffmpeg: str, mp4: Path) -> list[str]:
    out = subprocess.run([ffmpeg, "-v", "error", "-i", str(mp4), "-map", "0:v", "-f", "framemd5", "-"],
                         capture_output=True, text=True, check=True).stdout
    return [line.rsplit(",", 1)[-1].strip() for line in out.splitlines() if not line.startswith("#")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=72)
    ap.add_argument("--segment-scenes", type=int, default=24)
    ap.add_argument("--out", default=str(ROOT / ".local" / "bench-seg"))
    ap.add_argument("--wait-idle", type=float, default=15.0)
    args = ap.parse_args(argv)

    from render_job.runner import find_ffmpeg
    from shared.config import get_settings

    ffmpeg = find_ffmpeg(get_settings().ffmpeg_binary)
    os.environ.setdefault("RENDER_TIMEOUT_BASE_S", "900")
    machine = machine_info(ffmpeg)
    log(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gb']} GiB; FFmpeg "
        f"{machine['ffmpeg_version']}")
    out = Path(args.out).resolve()
    story = make_story(ffmpeg, out / "media", args.scenes)
    log(f"storyboard: {args.scenes} x 1 s stills 1920x1080 ({', '.join(MOTIONS)} in turn), 0.25 s fades, "
        f"{total_s(args.scenes):g} s, 1080p30 draft")
    rows = {}
    for seg in (0, args.segment_scenes):
        wait_for_quiet(None, 300, args.wait_idle or None)
        log(f"rendering with RENDER_SEGMENT_SCENES={seg} ...")
        m, res, mp4 = render(out, story, ffmpeg, seg)
        ff_rss = res["children"]["maxrss_kb"] / 1024
        rows[seg] = (m, ff_rss, mp4)
        log(f"{m.name}: wall {m.wall_s:.2f} s, CPU {m.cpu_s:.1f} s, largest FFmpeg {ff_rss:.0f} MB, "
            f"tree {m.tree_rss_mb:.0f} MB")
    (m0, r0, mp40), (m1, r1, mp41) = rows[0], rows[args.segment_scenes]
    same = frame_md5s(ffmpeg, mp40) == frame_md5s(ffmpeg, mp41)
    print()
    print(f"| render ({args.scenes} scenes, {total_s(args.scenes):g} s, 1080p30 draft) | wall s | CPU s | largest FFmpeg "
          f"peak RSS MB | tree peak RSS MB |")
    print("|---|---:|---:|---:|---:|")
    for m, rss in ((m0, r0), (m1, r1)):
        print(f"| {m.name} | {m.wall_s:.2f} | {m.cpu_s:.1f} | {rss:.0f} | {m.tree_rss_mb:.0f} |")
    print()
    print(f"- largest FFmpeg RSS, one graph / segmented: {r0 / r1:.2f}x; tree: {m0.tree_rss_mb / m1.tree_rss_mb:.2f}x")
    print(f"- wall segmented / one graph: {m1.wall_s / m0.wall_s:.2f}; CPU: {m1.cpu_s / m0.cpu_s:.2f}")
    print(f"- video frames identical (framemd5): {'yes' if same else 'NO'}")
    print(f"- per scene in one graph: {(r0 - r1) / (args.scenes - args.segment_scenes):.1f} MB more than segmented "
          f"(difference of the largest processes over the scenes one graph holds beyond a segment's)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
