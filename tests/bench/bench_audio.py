"""The audio task's passes on the bench-parallel storyboard, audio alone (`make bench-audio`).

    .venv/bin/python tests/bench/bench_audio.py [--minutes 10] [--out .local/bench-parallel]

The storyboard is bench_parallel.py's (12 scenes a minute, one narration each, looped ducked music;
media cached in --out/media, shared with `make bench-parallel`). It runs render_job.part_render's
render_audio step by step, one pass at a time, and prints wall and CPU (this process + its reaped
children, i.e. FFmpeg) of each:
    mix        the mix alone into a null output (audio.audio_mix, no loudnorm): the mix's own cost
    analysis   loudness.mix_loudness (the mix piped into ebur128)
    render     part_render.encode_audio (the mix + its gain piped into the AAC encoder)
    measure    loudness.output_loudness (ebur128 of the .m4a; a second pass when it missed the target)
then the measured loudness. A measurement: no pass/fail.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for p in (str(ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

from bench_parallel import IN, JOB, Clock, stage, story  # noqa: E402
from bench_render import log  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=int, default=10, help="output length in minutes (12 scenes each)")
    ap.add_argument("--out", default=str(ROOT / ".local" / "bench-parallel"), help="media cache and work folder")
    args = ap.parse_args(argv)

    from render_job.graph.audio import audio_mix, clip_audio_inputs, loudnorm_is_linear
    from render_job.graph.command import GRAPH_FILE, graph_via_file
    from render_job.loudness import mix_loudness, output_loudness
    from render_job.part_render import AUDIO_M4A, encode_audio
    from render_job.plan import build_plan
    from render_job.preflight import fetch_and_probe
    from render_job.runner import find_ffmpeg, run_ffmpeg
    from shared.adapters.local_storage import LocalStorage
    from shared.config import Settings, get_settings
    from shared.spec import parse_spec

    ffmpeg = find_ffmpeg(get_settings().ffmpeg_binary)
    out = Path(args.out).resolve()
    run = out / f"audio-{args.minutes}min"
    shutil.rmtree(run, ignore_errors=True)
    (run / "work").mkdir(parents=True)
    spec_dict, files = story(ffmpeg, out / "media", args.minutes)
    store = run / "store"
    stage(store, spec_dict, files)
    settings = Settings(input_bucket=IN, output_bucket="bench-out", render_max_retries=0,
                        ffmpeg_binary=os.environ.get("FFMPEG_BINARY") or None)
    work = str(run / "work")
    spec = parse_spec(spec_dict)
    local, probes = fetch_and_probe(spec, JOB, LocalStorage(store), IN, work, settings)
    plan = build_plan(spec, probes)
    log(f"{args.minutes} min: plan {plan.total_s:.2f} s, {len(plan.scenes)} scenes")

    def mix_alone() -> None:
        clip_args, clip_inputs = clip_audio_inputs(plan, local)
        mix_args, graph, mix, _ = audio_mix(plan, local, len(clip_inputs), clip_inputs)
        graph.append(f"{mix}anull[aout]")
        argv = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", *clip_args, *mix_args,
                "-filter_complex", ";".join(graph), "-map", "[aout]", "-f", "null", "-progress", "pipe:1", "-"]
        argv, graph_files = graph_via_file(argv, name=f"mix_{GRAPH_FILE}")
        for name, text in graph_files.items():
            Path(work, name).write_text(text, encoding="utf-8")
        run_ffmpeg(argv, cwd=work, total_s=plan.total_s, what="ffmpeg mix")

    rows = []
    with Clock() as c:
        mix_alone()
    rows.append(("mix", c.cost))
    with Clock() as c:
        analysis = mix_loudness(ffmpeg, work, plan, local, JOB)
    rows.append(("analysis", c.cost))
    with Clock() as c:
        encode_audio(ffmpeg, plan, local, work, analysis, JOB)
    rows.append(("render", c.cost))
    with Clock() as c:
        loudness, passes = output_loudness(ffmpeg, work, AUDIO_M4A, plan, video=False)
    rows.append(("measure", c.cost))
    for name, cost in rows:
        log(f"{name:9s} wall {cost.wall_s:6.2f} s  CPU {cost.cpu_s:6.2f} s")
    total = rows[1][1] + rows[2][1] + rows[3][1]
    log(f"audio task (analysis + render + measure): wall {total.wall_s:.2f} s, CPU {total.cpu_s:.2f} s")
    linear = bool(analysis) and not analysis.get("silent") and loudnorm_is_linear(plan, analysis)
    log(f"loudness {loudness}, passes {passes}, the render's gain {'linear (volume)' if linear else 'dynamic (loudnorm)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
