"""Parallel render against today's single task, projected onto Cloud Run (`make bench-parallel`, issue 19).

    .venv/bin/python tests/bench/bench_parallel.py [--minutes 10] [--ks 4,8,16] [--startup-s 10] [--min-part-s 10]
                     [--overhead-minutes 1] [--psnr-every 0] [--out .local/bench-parallel] [--wait-idle 15]

The storyboard (generated at bench time, media cached: tests/bench/long_media.py's stills and
narrations): 12 scenes per minute, 1920x1080 JPEG stills with Ken Burns motion in turn, a narration
and a burned caption per scene, the sample music looped and ducked, 1080p30 `standard`; every other
scene ends in a 0.5 s crossfade, the rest in cuts, scenes of 5.25 s so that the output lasts exactly
--minutes minutes.

(s) today's single task: tests/bench/render_child.py (render_job.job.run_export on the job staged in a
    LocalStorage folder, as the render job runs it) as a process of its own (measure.run_measured:
    wall, CPU of the whole tree incl. every FFmpeg).
(p) the parallel pieces, ONE AT A TIME, each with all of this machine's cores (a Cloud Run task has
    its own vCPUs), in this process, CPU = rusage of this process + its reaped children (FFmpeg):
    - a part task = python start (measured once: an interpreter importing the render modules)
      + its setup as render_job.part_task does it, in a folder of its own: the timing assets
      (narrations, clips: fetch_and_probe + build_plan, measured once, every task repeats it), then
      its own scenes' pictures (fetch_and_probe + build_plan + prepare_workdir, measured per part)
      + render_part;
    - the audio task = python start + its setup (timing assets and the music, fetch_and_probe +
      build_plan) + render_audio; the stitch (check, concat copy + mux, result checks).
    Parts: the plan of the largest K is rendered; a smaller K whose every part is a run of adjacent
    parts of that plan (the cuts nest) takes the sums of their render figures (one python start
    and one setup per task); a K whose cuts do not nest is rendered itself. The output says which.
Projection for K tasks:
    pipeline overhead (MEASURED by tests/bench/pipeline_overhead.py: an --overhead-minutes storyboard
      of the same kind through the real local pipeline, forced into K=8 parts: export wall minus the
      time its executions ran on the critical path = intake, dispatch, pieces -> stitch, completion)
    + start-up of the parts' execution (--startup-s, ASSUMED: Google documents no figure)
    + max(slowest part task, audio task) (task 0 renders the audio beside the parts; its python
      start and setup counted as a part task's)
    + start-up of the stitch's execution (the same assumption) + the stitch.
    Also printed: the same without the two start-up terms (what the assumption costs), with (s) also
    given its one execution's start-up (what an author waits for either way), and with the audio
    after the parts (not overlapped).
Checks of each stitched output against (s): frames, video duration, decoded audio length, loudness
(the job's and the audio step's measure; ebur128 on both MP4s), PSNR (Y, U, V of yuv420p) of every
--psnr-every-th frame (0: all frames up to 3 minutes, else every 10th) and of every frame next to a
join: min, median, worst at a join (99: the frames are equal); whether the video packets are (s)'s,
byte for byte (they are by design: both encode the same scene chunks, DESIGN.md §9 "chunks").
Before them: (s)'s CPU/wall against the parts' and the K=8 speed-up with (s) at the parts' rate
(on a busy host (s)'s wall inflates the speed-up). Last lines: `speedup k=8: X` (over the lesser
of (s)'s wall and (s) at the parts' CPU rate, both start-ups on the parallel side only), `cpu ratio: X`
(K=8's tasks + audio + stitch over (s)),
`stitch share: X` (the stitch's wall over (s)'s), `min psnr db: X`. Writes bench-parallel.json into
--out and docs/bench-parallel.png (per-part wall, speed-up by K; needs matplotlib).
A measurement: it never fails on a figure (exit 1 only when a render fails).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for p in (str(ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import long_media  # noqa: E402
from bench_render import log, machine_info, wait_for_quiet  # noqa: E402
from measure import Clock, Cost, run_measured  # noqa: E402
from outputs import loudness as ebur128  # noqa: E402
from outputs import psnr_figures, video_packets  # noqa: E402
from parallel_plot import PNG, plot  # noqa: E402
from pipeline_overhead import measure as measure_overhead  # noqa: E402

IN, OUT = "bench-in", "bench-out"  # render_child.py's buckets
JOB = "job-parallel"
SCENES_PER_MIN = 12
SCENE_S = 5.25  # 12 scenes, 6 crossfades of 0.5 s: 63 - 3 = 60 s per minute
FADE_S = 0.5
NARRATION_S = 5.0  # long_media's narration length class (55-90 % of it)
STARTUP_S = 10.0  # ASSUMED start-up of a Cloud Run job execution (no documented figure)


def story(ffmpeg: str, media: Path, minutes: int) -> tuple[dict, list[Path]]:
    """(spec, files) of the storyboard of the module docstring."""
    spec, files = long_media.long_story(ffmpeg, media, SCENES_PER_MIN * minutes, NARRATION_S, motion=True,
                                        title=f"Parallel story {minutes} min")
    n = len(spec["scenes"])
    for i, sc in enumerate(spec["scenes"]):
        sc["duration"] = SCENE_S
        if i < n - 1:
            sc["transition"] = {"type": "fade", "duration": FADE_S} if i % 2 == 0 else {"type": "cut"}
    return spec, files


def stage(root: Path, spec: dict, files: list[Path]) -> None:
    from shared.adapters.local_storage import LocalStorage

    storage = LocalStorage(root)
    storage.upload_bytes(IN, f"jobs/{JOB}/spec.json", json.dumps(spec).encode(), "application/json")
    for f in files:
        storage.upload_file(IN, f"jobs/{JOB}/assets/{f.name}", str(f), "application/octet-stream")


def single_render(root: Path, out: Path) -> tuple[Cost, dict, Path]:
    result = out / "single.json"
    m = run_measured("single", [sys.executable, str(HERE / "render_child.py"), str(root), JOB, str(result)],
                     log_path=str(out / "single.log"))
    data = json.loads(result.read_text())
    if data["status"] != "succeeded":
        raise RuntimeError(f"single render {data['status']}: {data['error']}")
    mp4 = root / OUT / "exports" / JOB / data["output"]["filename"]
    return Cost(m.wall_s, m.cpu_s), data, mp4


def python_start() -> Cost:
    m = run_measured("python start", [sys.executable, "-c", "import render_job.job, render_job.part_render, "
                                      "render_job.stitch"], env={**os.environ, "PYTHONPATH": str(ROOT)})
    return Cost(m.wall_s, m.cpu_s)


def cuts_of(parts) -> set[int]:
    return {p.first_scene for p in parts[1:]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=int, default=10, help="output length in minutes (12 scenes each)")
    ap.add_argument("--ks", default="4,8,16", help="task counts to project, comma-separated (8 is the headline)")
    ap.add_argument("--startup-s", type=float, default=STARTUP_S,
                    help="assumed start-up of one Cloud Run job execution, seconds (counted for the parts' "
                         "execution and again for the stitch's)")
    ap.add_argument("--min-part-s", type=float, default=None, help="shortest part (default part_plan.MIN_PART_S)")
    ap.add_argument("--overhead-minutes", type=int, default=1, help="overhead run's minutes (0: term 0)")
    ap.add_argument("--psnr-every", type=int, default=0, help="PSNR of every n-th frame (0: auto) and the joins")
    ap.add_argument("--out", default=str(ROOT / ".local" / "bench-parallel"), help="media cache, work, results")
    ap.add_argument("--wait-idle", type=float, default=15.0, help="before (s) and (p), wait (up to 120 s) for "
                                                                  "the CPUs to be less busy than this %%")
    args = ap.parse_args(argv)
    ks = sorted({int(k) for k in args.ks.split(",") if k.strip()})

    from render_job.part_plan import MIN_PART_S, plan_parts
    from render_job.part_render import prepare_workdir, render_audio, render_part
    from render_job.plan import build_plan
    from render_job.preflight import fetch_and_probe
    from render_job.prepare import audio_srcs, timing_srcs, visual_srcs
    from render_job.runner import find_ffmpeg
    from render_job.stitch import result_lengths, stitch
    from shared.adapters.local_storage import LocalStorage
    from shared.config import Settings, get_settings
    from shared.spec import parse_spec

    min_part_s = MIN_PART_S if args.min_part_s is None else args.min_part_s
    ffmpeg = find_ffmpeg(get_settings().ffmpeg_binary)
    machine = machine_info(ffmpeg)
    log(f"machine: {machine['cpu']}, {machine['cores']} cores; FFmpeg {machine['ffmpeg_version']}")
    out = Path(args.out).resolve()
    run = out / f"{args.minutes}min"
    shutil.rmtree(run, ignore_errors=True)
    (run / "work").mkdir(parents=True)
    log(f"{args.minutes} min: generating/reusing media ({SCENES_PER_MIN * args.minutes} scenes) ...")
    spec_dict, files = story(ffmpeg, out / "media", args.minutes)
    store = run / "store"
    stage(store, spec_dict, files)
    settings = Settings(input_bucket=IN, output_bucket=OUT, render_max_retries=0,
                        ffmpeg_binary=os.environ.get("FFMPEG_BINARY") or None, render_timeout_base_s=900.0)

    # (s) today's single task
    wait_for_quiet(None, 120, args.wait_idle or None)
    log("(s) single-task render ...")
    single, single_data, single_mp4 = single_render(store, run)
    log(f"(s) wall {single.wall_s:.1f} s, CPU {single.cpu_s:.1f} s")

    # (p) the pieces, one at a time
    wait_for_quiet(None, 120, args.wait_idle or None)
    work = str(run / "work")
    start = python_start()
    with Clock() as c:
        spec = parse_spec(spec_dict)
        local, probes = fetch_and_probe(spec, JOB, LocalStorage(store), IN, work, settings)
        plan = build_plan(spec, probes)
        overlay, ass = prepare_workdir(ffmpeg, plan, work)
    setup = c.cost
    log(f"(p) python start {start.wall_s:.2f} s / {start.cpu_s:.2f} CPU s; setup {setup.wall_s:.2f} s / "
        f"{setup.cpu_s:.2f} CPU s; plan {plan.total_s:.2f} s, {len(plan.scenes)} scenes")
    plans = {k: plan_parts(plan, k, min_part_s=min_part_s) for k in ks}
    finest = max(ks)

    def task_setup(name: str, srcs: list[str], base: tuple | None = None, scenes: tuple[int, int] | None = None):
        """A task's setup as render_job.part_task does it, in a folder of its own: fetch_and_probe of
        `srcs` + build_plan (+ prepare_workdir for a part). Returns (cost, (local, probes))."""
        folder = str(run / "setup" / name)
        os.makedirs(folder, exist_ok=True)
        with Clock() as c:
            got_local, got_probes = fetch_and_probe(spec, JOB, LocalStorage(store), IN, folder, settings, srcs=srcs)
            if base:
                got_local, got_probes = {**base[0], **got_local}, {**base[1], **got_probes}
            task_plan = build_plan(spec, got_probes)
            if scenes is not None:
                prepare_workdir(ffmpeg, task_plan, folder)
        return c.cost, (got_local, got_probes)

    timing_setup, timing = task_setup("timing", timing_srcs(spec))
    audio_setup, _ = task_setup("audio", audio_srcs(spec))
    part_setup: dict[tuple[int, int], Cost] = {}
    for k in ks:
        for p in plans[k]:
            key = (p.first_scene, p.last_scene)
            if key not in part_setup:
                part_setup[key] = task_setup(f"part-{key[0]}-{key[1]}",
                                             visual_srcs(spec, p.first_scene, p.last_scene + 1), timing, key)[0]
    log(f"(p) task setup as the tasks do it: timing assets {timing_setup.wall_s:.2f} s / {timing_setup.cpu_s:.2f} "
        f"CPU s (every task); a part's pictures + plan + caption files {min(c.wall_s for c in part_setup.values()):.2f}"
        f"-{max(c.wall_s for c in part_setup.values()):.2f} s; audio task's {audio_setup.wall_s:.2f} s")
    rendered: dict[tuple[int, int], tuple[Cost, str]] = {}  # (first, last scene) -> (render cost, file)

    def render_all(k: int) -> list[str]:
        names = []
        for p in plans[k]:
            key = (p.first_scene, p.last_scene)
            if key not in rendered:
                with Clock() as c:
                    name = render_part(ffmpeg, plan, local, p, work, overlay=overlay, ass_path=ass,
                                       max_scenes=settings.render_segment_scenes, threads=settings.ffmpeg_threads)
                mine = f"k{k}-{name}"
                os.replace(os.path.join(work, name), os.path.join(work, mine))
                rendered[key] = (c.cost, mine)
                log(f"  K={k} {p.label}: {p.frames} frames, wall {c.cost.wall_s:.1f} s, CPU {c.cost.cpu_s:.1f} s")
            names.append(rendered[key][1])
        return names

    log(f"(p) parts of K={finest} ({len(plans[finest])} parts) ...")
    stitch_sets = {finest: render_all(finest)}
    method: dict[int, str] = {finest: "rendered"}
    base_cuts = cuts_of(plans[finest])
    for k in ks:
        if k == finest:
            continue
        if cuts_of(plans[k]) <= base_cuts:
            method[k] = f"sums of K={finest}'s adjacent parts (cuts nest)"
        else:
            log(f"(p) K={k}: its cuts do not nest in K={finest}'s: rendering its parts ...")
            stitch_sets[k] = render_all(k)
            method[k] = "rendered (cuts do not nest)"
    finest_parts = plans[finest]

    def part_render_cost(p) -> Cost:
        if (p.first_scene, p.last_scene) in rendered:
            return rendered[(p.first_scene, p.last_scene)][0]
        inside = [q for q in finest_parts if p.first_scene <= q.first_scene and q.last_scene <= p.last_scene]
        total = Cost()
        for q in inside:
            total = total + rendered[(q.first_scene, q.last_scene)][0]
        return total

    log("(p) audio once ...")
    with Clock() as c:
        audio, audio_loudness, passes = render_audio(ffmpeg, plan, local, work)
    audio_cost = start + audio_setup + c.cost  # task 0: its own start and setup (render_job.part_task)
    log(f"(p) audio wall {c.cost.wall_s:.1f} s, CPU {c.cost.cpu_s:.1f} s ({passes} loudness pass(es))")

    stitched: dict[int, dict] = {}
    for k, names in stitch_sets.items():
        log(f"(p) stitch of K={k} ({len(names)} parts) ...")
        with Clock() as c:
            checked = stitch(ffmpeg, plan, plans[k], names, audio, work, f"stitched-k{k}.mp4")
        stitched[k] = {"cost": c.cost, "result": checked, "mp4": run / "work" / f"stitched-k{k}.mp4"}
        log(f"(p) stitch K={k}: wall {c.cost.wall_s:.2f} s, CPU {c.cost.cpu_s:.2f} s")
    stitch_cost = stitched[finest]["cost"]
    overhead = None
    if args.overhead_minutes:
        wait_for_quiet(None, 120, args.wait_idle or None)
        log(f"pipeline overhead: {args.overhead_minutes} min through the local pipeline (K=8 told) ...")
        o_spec, o_files = story(ffmpeg, out / "media", args.overhead_minutes)
        overhead = measure_overhead(o_spec, o_files, run / "overhead", parts=8, min_part_s=3.0, log=log)
        log(overhead.lines()[0])

    # projection
    overhead_s = overhead.overhead_s if overhead else 0.0
    rows = []
    for k in ks:
        tasks = [start + timing_setup + part_setup[(p.first_scene, p.last_scene)] + part_render_cost(p)
                 for p in plans[k]]
        slowest = max(t.wall_s for t in tasks)
        s_cost = stitched.get(k, stitched[finest])["cost"]
        body = max(slowest, audio_cost.wall_s)
        projected = overhead_s + args.startup_s + body + args.startup_s + s_cost.wall_s
        serial = overhead_s + args.startup_s + slowest + audio_cost.wall_s + args.startup_s + s_cost.wall_s
        cpu = sum(t.cpu_s for t in tasks) + audio_cost.cpu_s + s_cost.cpu_s
        rows.append({"k": k, "parts": len(plans[k]), "method": method[k], "slowestS": slowest,
                     "partWallS": [t.wall_s for t in tasks], "partCpuS": [t.cpu_s for t in tasks],
                     "partFrames": [p.frames for p in plans[k]],
                     "partScenes": [[p.first_scene, p.last_scene] for p in plans[k]],
                     "projectedS": projected, "projectedSerialAudioS": serial,
                     "speedup": single.wall_s / projected, "speedupSerialAudio": single.wall_s / serial,
                     "projectedNoStartupS": projected - 2 * args.startup_s,
                     "speedupNoStartup": single.wall_s / (projected - 2 * args.startup_s),
                     "speedupBothStartups": (single.wall_s + args.startup_s) / projected,
                     "cpuS": cpu, "cpuRatio": cpu / single.cpu_s})

    # checks
    ref = result_lengths(str(single_mp4))
    ref_lufs = (single_data["output"].get("loudness") or {}).get("integratedLufs")
    ff_single = ebur128(ffmpeg, str(single_mp4))
    every = args.psnr_every or (1 if plan.total_s <= 180 else 10)
    checks = {}
    for k, s in stitched.items():
        log(f"checks of K={k}'s stitched output (PSNR of every {every}. frame and the joins) ...")
        res = s["result"]
        ff = ebur128(ffmpeg, str(s["mp4"]))
        joins = [p.first_frame for p in plans[k][1:]]
        checks[k] = {"frames": res.frames, "framesSingle": ref.frames, "videoS": res.video_s,
                     "videoSSingle": ref.video_s, "planS": plan.total_s, "audioS": res.audio_s,
                     "audioSSingle": ref.audio_s, "lufsAudioStep": (audio_loudness or {}).get("integratedLufs"),
                     "lufsJob": ref_lufs, "lufsEbur128": ff[0], "lufsEbur128Single": ff_single[0],
                     "psnr": psnr_figures(single_mp4, s["mp4"], joins, every),
                     "videoIdentical": video_packets(single_mp4) == video_packets(s["mp4"])}

    # report
    print()
    print(f"Parallel render, {plan.total_s:.2f} s storyboard ({len(plan.scenes)} scenes, 1080p30 standard), "
          f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {machine['cores']} cores:")
    rate = sum(c.cpu_s for c, _ in rendered.values()) / sum(c.wall_s for c, _ in rendered.values())
    print(f"(s) single task: wall {single.wall_s:.1f} s, CPU {single.cpu_s:.1f} s (incl. children), CPU/wall "
          f"{single.cpu_s / single.wall_s:.2f} against the parts' {rate:.2f} (they differ when the load changed between them: "
          f"(s)'s wall then moves every speed-up; (s) at the parts' rate: {single.cpu_s / rate:.1f} s)")
    print(f"python start {start.wall_s:.2f} s / CPU {start.cpu_s:.2f} s; a part task's setup: timing assets "
          f"{timing_setup.wall_s:.2f} s / CPU {timing_setup.cpu_s:.2f} s + its pictures, plan, caption files "
          f"{min(c.wall_s for c in part_setup.values()):.2f}-{max(c.wall_s for c in part_setup.values()):.2f} s; "
          f"the audio task's setup {audio_setup.wall_s:.2f} s (every asset at once: {setup.wall_s:.2f} s)")
    print(f"audio task (python start + setup + render_audio once): wall {audio_cost.wall_s:.1f} s, "
          f"CPU {audio_cost.cpu_s:.1f} s")
    print("\n".join(overhead.lines() if overhead else ["pipeline overhead: not measured (--overhead-minutes 0): 0"]))
    for k, s in stitched.items():
        print(f"stitch K={k}: wall {s['cost'].wall_s:.2f} s, CPU {s['cost'].cpu_s:.2f} s")
    for r in rows:
        print(f"K={r['k']}: {r['parts']} parts, {r['method']}")
        for i, (sc, fr, w, cp) in enumerate(zip(r["partScenes"], r["partFrames"], r["partWallS"], r["partCpuS"])):
            print(f"  task {i:2d} scenes[{sc[0]}]..[{sc[1]}] {fr} frames: wall {w:.1f} s, CPU {cp:.1f} s")
        print(f"  projected {r['projectedS']:.1f} s = overhead {overhead_s:.2f} ("
              f"{'measured' if overhead else 'not measured'}) + start-up {args.startup_s:g} (ASSUMED) + max(slowest "
              f"part {r['slowestS']:.1f}, audio {audio_cost.wall_s:.1f}) + stitch start-up {args.startup_s:g} "
              f"(ASSUMED) + stitch {stitched.get(r['k'], stitched[finest])['cost'].wall_s:.1f}; speed-up "
              f"{r['speedup']:.2f}")
        print(f"  without the two start-up terms: {r['projectedNoStartupS']:.1f} s, speed-up "
              f"{r['speedupNoStartup']:.2f}; (s) with its own execution's start-up too: speed-up "
              f"{r['speedupBothStartups']:.2f}; audio after the parts: {r['projectedSerialAudioS']:.1f} s, "
              f"{r['speedupSerialAudio']:.2f}; CPU {r['cpuS']:.1f} s = {r['cpuRatio']:.2f} x (s)")
    for k, ch in checks.items():
        ps = ch["psnr"]
        print(f"checks K={k}: frames {ch['frames']} / single {ch['framesSingle']}; video {ch['videoS']:.3f} s / "
              f"{ch['videoSSingle']:.3f} s (plan {ch['planS']:.3f}); audio {ch['audioS']:.4f} s / "
              f"{ch['audioSSingle']:.4f} s; LUFS audio step {ch['lufsAudioStep']} / job {ch['lufsJob']}, ebur128 "
              f"{ch['lufsEbur128']} / {ch['lufsEbur128Single']}; PSNR over {ps['frames']} frames (every "
              f"{ps['every']}. + joins): min {ps['min']:.2f} (frame {ps['minAt']}), median {ps['median']:.2f}, "
              f"worst at a join {ps['minAtJoins'] if ps['minAtJoins'] is None else round(ps['minAtJoins'], 2)} (99: equal); "
              f"video packets identical to (s)'s: {'yes' if ch['videoIdentical'] else 'no'}")
    by_k = {r["k"]: r for r in rows}
    head = by_k.get(8) or rows[len(rows) // 2]
    single_fair = min(single.wall_s, single.cpu_s / rate)  # a busy host inflates (s)'s wall alone
    print(f"speed-up k={head['k']} with (s) at the parts' CPU rate: {single.cpu_s / rate / head['projectedS']:.2f}; "
          f"with (s) = {single_fair:.1f} s and its own start-up too: "
          f"{(single_fair + args.startup_s) / head['projectedS']:.2f}")
    min_psnr = min(ch["psnr"]["min"] for ch in checks.values())
    (out / "bench-parallel.json").write_text(json.dumps(
        {"minutes": args.minutes, "machine": machine, "startupS": args.startup_s, "overheadS": overhead_s,
         "overhead": overhead and overhead.__dict__,
         "minPartS": min_part_s, "single": single.__dict__, "singleOutput": single_data["output"],
         "pythonStart": start.__dict__, "setup": setup.__dict__, "timingSetup": timing_setup.__dict__,
         "partSetup": {f"{a}-{b}": c.__dict__ for (a, b), c in part_setup.items()},
         "audioSetup": audio_setup.__dict__, "audio": audio_cost.__dict__,
         "stitch": {k: s["cost"].__dict__ for k, s in stitched.items()}, "rows": rows,
         "checks": {k: {**c} for k, c in checks.items()}}, indent=1, default=str))
    if plot(rows, finest, single.wall_s, args.minutes, audio_cost.wall_s):
        print(f"figure: {PNG.relative_to(ROOT)}")
    print(f"results: {out / 'bench-parallel.json'}")
    print(f"speedup k={head['k']}: {single_fair / head['projectedS']:.1f}")
    print(f"cpu ratio: {head['cpuRatio']:.2f}")
    print(f"stitch share: {stitch_cost.wall_s / single.wall_s:.2f}")
    print(f"min psnr db: {min_psnr:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
