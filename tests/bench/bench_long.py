"""Long storyboards through the embedded stack: CPU, wall, memory, loudness, frames (`make bench-long`).

    .venv/bin/python tests/bench/bench_long.py [--lengths 1,10,30] [--out .local/bench-long] [--keep]
                                               [--no-motion] [--wait-idle 15] [--publish]

For each length (minutes of output: 1 = 12 scenes x 5 s, 10 = 120 x 5 s, 30 = 200 x 9 s, the spec's
MAX_SCENES and EXPORT_MAX_TOTAL_S) it renders a generated storyboard (tests/bench/long_media.py: a
distinct 1920x1080 JPEG still with Ken Burns motion and a distinct MP3 narration per scene, a
caption per scene, the sample music looped; 1080p30 `standard`, cuts) the way `make demo` does:
a fresh EmbeddedStack, export_start over HTTP, signed PUT uploads, finalize events, dispatch, the
local launcher running `python -m render_job`, complete. It measures:
- CPU s per output s: the render task's own CPU (`render task finished`: cpuS of its Python process
  + childCpuS of every FFmpeg/ffprobe it waited for) over the output's seconds;
- wall: export_start to `succeeded` (the server's timestamp), and the render task's process alone
  (`render task exited` wallS of the local launcher);
- memory, sampled every 0.5 s (TaskSampler): the summed RSS of the render task's process tree, and
  the bytes of every file under its working folder (RENDER_WORKDIR points at a folder of the bench),
  at the same instant: on Cloud Run those files sit in the in-memory disk and count against the
  same limit. Peak of the sum, and each part's own peak;
- loudness: output.loudness of the job, cross-checked by FFmpeg's ebur128 (peak=true) on the MP4;
- frames: the MP4's video packets counted by PyAV (one per frame in H.264) against the plan's
  (output.scenes: the end of the last scene x fps); the MP4's size.
It prints one row per length, the ratios of 10 and 30 min against 1 min, PASS/FAIL lines for the
issue's Done-when (true peak <= target + 0.5 dB, frames == plan, peak memory under
RENDER_MEMORY_BYTES with the margin), writes bench-long.json and bench-long-memory.png (memory over
time, one panel per length) into --out, and with --publish copies the PNG to docs/ for
BENCHMARKS.md. A measurement: it never fails on a figure (exit 1 only when an export fails).
The stack runs with EXPORT_MAX_ASSETS=401 (a still and a narration per scene at MAX_SCENES, plus
music) and the deployed report interval; RENDER_TIMEOUT_PER_OUTPUT_S and the rest come from the
environment (defaults of shared.config).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for p in (str(ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import long_media  # noqa: E402
from bench_render import log, machine_info, wait_for_quiet  # noqa: E402
from outputs import loudness  # noqa: E402

LENGTHS = {1: (12, 5.0), 10: (120, 5.0), 30: (200, 9.0)}  # minutes: (scenes, seconds per scene)
SAMPLE_S = 0.5
TP_TOLERANCE_DB = 0.5  # the issue's tolerance on the true-peak ceiling
DEFAULT_MEMORY_BYTES = 8589934592  # RENDER_MEMORY_BYTES of the deployed task (8Gi)
GIB = 2**30
PNG = "bench-long-memory.png"


class TaskSampler:
    """Every SAMPLE_S seconds, in a thread: the summed RSS (bytes) of the render task's process tree
    (the descendant of this process running `-m render_job`, and all of its descendants) and the
    bytes of the files under `workdir`, at the same instant. `series` holds (seconds since start,
    process bytes, file bytes); peaks of each part and of the sum are computed from it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.series: list[tuple[float, int, int]] = []
        self._task = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = time.monotonic()

    def __enter__(self) -> "TaskSampler":
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _find_task(self):
        import psutil

        if self._task is not None and self._task.is_running():
            return self._task
        for p in psutil.Process().children(recursive=True):
            try:
                cmd = p.cmdline()
            except psutil.Error:
                continue
            if "-m" in cmd and "render_job" in cmd:
                self._task = p
                return p
        return None

    def process_bytes(self) -> int:
        import psutil

        task = self._find_task()
        if task is None:
            return 0
        total = 0
        try:
            procs = [task] + task.children(recursive=True)
        except psutil.Error:
            return 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                continue
        return total

    def file_bytes(self) -> int:
        total = 0
        for dirpath, _, names in os.walk(self.workdir):
            for n in names:
                try:
                    total += os.lstat(os.path.join(dirpath, n)).st_size
                except OSError:  # removed meanwhile
                    continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.series.append((time.monotonic() - self.t0, self.process_bytes(), self.file_bytes()))
            self._stop.wait(SAMPLE_S)

    def peaks(self) -> dict:
        """{"sum", "processesAtPeak", "filesAtPeak", "processes", "files"}: bytes."""
        if not self.series:
            return {"sum": 0, "processesAtPeak": 0, "filesAtPeak": 0, "processes": 0, "files": 0}
        _, p, f = max(self.series, key=lambda s: s[1] + s[2])
        return {"sum": p + f, "processesAtPeak": p, "filesAtPeak": f,
                "processes": max(s[1] for s in self.series), "files": max(s[2] for s in self.series)}


def memory_limit() -> tuple[int, str]:
    """(bytes, where from): RENDER_MEMORY_BYTES of the environment, else of shared.config's Settings
    (when it has that setting), else the deployed 8 GiB."""
    if os.environ.get("RENDER_MEMORY_BYTES"):
        return int(os.environ["RENDER_MEMORY_BYTES"]), "RENDER_MEMORY_BYTES (environment)"
    from shared.config import get_settings

    value = getattr(get_settings(), "render_memory_bytes", None)
    if value:
        return int(value), "Settings.render_memory_bytes"
    return DEFAULT_MEMORY_BYTES, "default (8 GiB, the deployed --memory)"


def count_frames(mp4: Path) -> int:
    """Video packets of the MP4 (demuxed, not decoded: H.264 in MP4 has one packet per frame)."""
    import av

    with av.open(str(mp4)) as c:
        return sum(1 for pkt in c.demux(c.streams.video[0]) if pkt.size)


def run_length(minutes: int, ffmpeg: str, media: Path, out: Path, motion: bool, keep: bool) -> dict:
    """Render one length through a fresh embedded stack; its row (see the module docstring)."""
    from infra.local import client
    from infra.local.stack import EmbeddedStack
    from shared.config import Settings

    scenes, scene_s = LENGTHS[minutes]
    output_s = scenes * scene_s
    log(f"{minutes} min: generating/reusing media for {scenes} scenes x {scene_s:g} s ...")
    spec, files = long_media.long_story(ffmpeg, media, scenes, scene_s, motion=motion, title=f"Long story {minutes} min")
    d = out / f"{minutes}min"
    shutil.rmtree(d, ignore_errors=True)
    work = d / "work"
    work.mkdir(parents=True)
    env = {"EXPORT_MAX_ASSETS": "401", "RENDER_WORKDIR": str(work),
           "RENDER_REPORT_INTERVAL_S": str(Settings.model_fields["render_report_interval_s"].default)}
    with EmbeddedStack(run_dir=d / "run", render_max_retries=0, extra_env=env) as stack:
        time.sleep(1.0)  # let the gateway settle
        log(f"{minutes} min: export_start, {len(files)} uploads "
            f"({sum(f.stat().st_size for f in files) / 1e6:.0f} MB) ...")
        with TaskSampler(work) as sampler:
            epoch0 = time.time()
            job = client.start_export(stack.base, spec, files)
            job_id = job["jobId"]
            client.upload_all(job["uploads"], files)
            final = client.wait_for(stack.base, job_id, timeout_s=300 + 4 * output_s, interval_s=2.0)
            deadline = time.monotonic() + 60  # the task reports, uploads, cleans up and exits after `succeeded`
            while not stack.log_entries("render task exited", job_id=job_id) and time.monotonic() < deadline:
                time.sleep(0.2)
        if final.get("status") != "succeeded":
            raise RuntimeError(f"{minutes} min export {final.get('status')}: {final.get('error')} (logs {d / 'run'})")
        done_at = next((h["at"] for h in reversed(final["history"]) if h["status"] == "succeeded"), None)
        wall = client.parse_time(done_at or final["finishedAt"]).timestamp() - epoch0
        exited = (stack.log_entries("render task exited", job_id=job_id) or [{}])[-1]
        finished = (stack.render_log_entries("render task finished", job_id) or [{}])[-1]
        rendered = (stack.render_log_entries("export rendered", job_id) or [{}])[-1]
        output = final["output"]
        mp4 = client.download(output["url"], d / output["filename"])
    cpu = finished["cpuS"] + finished["childCpuS"] if "childCpuS" in finished else None
    timeline = output.get("scenes") or []
    plan_frames = round((timeline[-1]["startS"] + timeline[-1]["durationS"]) * long_media.FPS) if timeline else None
    log(f"{minutes} min: checking the MP4 ({mp4.stat().st_size / 1e6:.0f} MB): frames, ebur128 ...")
    lufs_ff, tp_ff = loudness(ffmpeg, str(mp4))
    measured = output.get("loudness") or {}
    row = {"minutes": minutes, "outputS": output_s, "scenes": scenes, "sceneS": scene_s, "motion": motion,
           "jobId": job_id, "cpuS": cpu, "cpuPerOutputS": cpu / output_s if cpu is not None else None,
           "taskPythonCpuS": finished.get("cpuS"), "taskChildCpuS": finished.get("childCpuS"),
           "wallS": wall, "taskWallS": exited.get("wallS"), "states": client.state_durations(final),
           "timings": rendered.get("timings"),
           "memory": sampler.peaks(), "lufs": measured.get("integratedLufs"), "truePeakDb": measured.get("truePeakDb"),
           "lufsFfmpeg": lufs_ff, "truePeakDbFfmpeg": tp_ff, "targetTruePeakDb": spec["audio"]["truePeakDb"],
           "frames": count_frames(mp4), "planFrames": plan_frames, "specFrames": round(output_s * long_media.FPS),
           "mp4Bytes": mp4.stat().st_size, "outputSizeBytes": output.get("sizeBytes"), "series": sampler.series}
    if not keep:
        shutil.rmtree(d, ignore_errors=True)
    return row


def _f(v, fmt: str = ".2f", none: str = "-") -> str:
    return none if v is None else format(v, fmt)


def table(rows: list[dict]) -> list[str]:
    lines = ["| output s | scenes | CPU s per output s | wall s: export / render task | peak memory GiB: "
             "processes + files = sum | processes peak GiB | files peak GiB | LUFS: job / ebur128 | "
             "true peak dBTP: job / ebur128 | frames / plan | MP4 MB |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        m = r["memory"]
        lines.append(
            f"| {r['outputS']:g} | {r['scenes']} | {_f(r['cpuPerOutputS'])} | {r['wallS']:.0f} / {_f(r['taskWallS'], '.0f')} | "
            f"{m['processesAtPeak'] / GIB:.2f} + {m['filesAtPeak'] / GIB:.2f} = {m['sum'] / GIB:.2f} | "
            f"{m['processes'] / GIB:.2f} | {m['files'] / GIB:.2f} | {_f(r['lufs'], '.1f')} / {_f(r['lufsFfmpeg'], '.1f')} | "
            f"{_f(r['truePeakDb'], '.1f')} / {_f(r['truePeakDbFfmpeg'], '.1f')} | {r['frames']} / {r['planFrames']} | "
            f"{r['mp4Bytes'] / 1e6:.0f} |")
    return lines


def ratios(rows: list[dict]) -> list[str]:
    """CPU and wall per output second of each longer length against the 1-minute run."""
    base = next((r for r in rows if r["minutes"] == 1), None)
    if base is None:
        return []
    out = []
    for r in rows:
        if r is base:
            continue
        def per(row, key):
            return row[key] / row["outputS"] if row.get(key) is not None else None
        parts = []
        for key, name in (("cpuS", "CPU"), ("wallS", "export wall"), ("taskWallS", "task wall")):
            a, b = per(base, key), per(r, key)
            parts.append(f"{name} {b / a:.2f}" if a and b else f"{name} -")
        out.append(f"- per output second, {r['minutes']} min / 1 min: " + ", ".join(parts))
    return out


def checks(rows: list[dict], limit: int, limit_from: str) -> list[str]:
    """PASS/FAIL lines of the issue's Done-when."""
    def v(ok):
        return "PASS" if ok else "FAIL"
    lines = []
    for r in rows:
        ceiling = r["targetTruePeakDb"] + TP_TOLERANCE_DB
        peaks = [x for x in (r["truePeakDb"], r["truePeakDbFfmpeg"]) if x is not None]
        worst = max(peaks) if peaks else None
        lines.append(f"{v(worst is not None and worst <= ceiling)} {r['minutes']} min true peak "
                     f"{_f(worst, '.2f')} dBTP (higher of job and ebur128) <= {ceiling:g} "
                     f"({r['targetTruePeakDb']:g} + {TP_TOLERANCE_DB:g})")
        lines.append(f"{v(r['frames'] == r['planFrames'])} {r['minutes']} min frames {r['frames']} == plan "
                     f"{r['planFrames']} (spec {r['specFrames']})")
        peak = r["memory"]["sum"]
        lines.append(f"{v(peak < limit)} {r['minutes']} min peak memory {peak / GIB:.2f} GiB (processes + files) "
                     f"< {limit / GIB:.2f} GiB ({limit_from}): margin {100 * (limit - peak) / limit:.0f} %")
    return lines


def plot(rows: list[dict], path: Path, limit: int) -> bool:
    """Memory over time, one panel per length; False when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is missing (make bench-long installs requirements-bench.txt): no PNG")
        return False
    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 3.2 * len(rows)), squeeze=False)
    for ax, r in zip(axes[:, 0], rows):
        t = [s[0] for s in r["series"]]
        procs = [s[1] / GIB for s in r["series"]]
        files = [s[2] / GIB for s in r["series"]]
        ax.plot(t, procs, label="processes (summed RSS of the render task's tree)", lw=1)
        ax.plot(t, files, label="working files", lw=1)
        ax.plot(t, [a + b for a, b in zip(procs, files)], label="sum", color="black", lw=1.4)
        ax.set_title(f"{r['minutes']} min ({r['scenes']} scenes x {r['sceneS']:g} s, 1080p30 standard): peak "
                     f"{r['memory']['sum'] / GIB:.2f} GiB of {limit / GIB:.0f} GiB", fontsize=10)
        ax.set_xlabel("seconds since export_start")
        ax.set_ylabel("GiB")
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="1,10,30", help="minutes of output, comma-separated, of 1, 10, 30")
    ap.add_argument("--out", default=str(ROOT / ".local" / "bench-long"), help="media cache, results, PNG")
    ap.add_argument("--keep", action="store_true", help="keep each length's MP4, stack logs and work folder")
    ap.add_argument("--no-motion", action="store_true", help="stills without Ken Burns motion")
    ap.add_argument("--wait-idle", type=float, default=15.0, help="before each length, wait (up to 120 s) for "
                                                                  "the CPUs to be less busy than this %%")
    ap.add_argument("--publish", action="store_true", help=f"also copy the PNG to docs/{PNG} (BENCHMARKS.md)")
    args = ap.parse_args(argv)
    lengths = [int(x) for x in args.lengths.split(",") if x.strip()]
    bad = [x for x in lengths if x not in LENGTHS]
    if bad:
        ap.error(f"--lengths: {bad} not among {sorted(LENGTHS)}")

    from render_job.runner import find_ffmpeg
    from shared.config import get_settings

    ffmpeg = find_ffmpeg(get_settings().ffmpeg_binary)
    machine = machine_info(ffmpeg)
    limit, limit_from = memory_limit()
    log(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gb']} GiB; FFmpeg {machine['ffmpeg_version']}")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    rows, failed = [], []
    for minutes in lengths:
        wait_for_quiet(None, 120, args.wait_idle or None)
        try:
            rows.append(run_length(minutes, ffmpeg, out / "media", out, motion=not args.no_motion, keep=args.keep))
        except Exception as exc:  # noqa: BLE001 - report, go on with the other lengths
            log(f"{minutes} min FAILED: {type(exc).__name__}: {exc}")
            failed.append(f"{minutes} min: {type(exc).__name__}: {exc}")
            continue
        log(f"{minutes} min done: wall {rows[-1]['wallS']:.0f} s")
    print()
    print(f"Long storyboards through the embedded stack, {started} (motion {'off' if args.no_motion else 'on'}):")
    print()
    for line in table(rows) + [""] + ratios(rows) + [""] + checks(rows, limit, limit_from):
        print(line)
    for f in failed:
        print(f"FAIL export {f}")
    png = out / PNG
    if rows and plot(rows, png, limit):
        print(f"memory over time: {png}")
        if args.publish:
            (ROOT / "docs").mkdir(exist_ok=True)
            shutil.copyfile(png, ROOT / "docs" / PNG)
            print(f"copied to docs/{PNG}")
    (out / "bench-long.json").write_text(json.dumps(
        {"started": started, "machine": machine, "memoryLimitBytes": limit, "memoryLimitFrom": limit_from,
         "env": {k: os.environ[k] for k in os.environ if k.startswith(("RENDER_", "EXPORT_"))},
         "rows": rows, "failed": failed}, indent=1))
    print(f"results: {out / 'bench-long.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
