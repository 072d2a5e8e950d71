"""SceneFlow render benchmark (`make bench`; issue 4 item 6).

    .venv/bin/python tests/bench/bench_render.py [--skip-moviepy] [--skip-pipeline] [--profile]
                                                 [--kb ss2|scale|zoompan] [--no-motion]
                                                 [--repeat 4] [--max-extra-pairs 6] [--wait-idle 15]
                                                 [--wait-load 1.0]
                                                 [--no-write] [--out .local/bench]

Renders the benchmark storyboard (tests/bench/storyboard.py: 12 x 5 s stills of 1920x1080 with Ken
Burns, 11 fades of 0.5 s, narration per scene, ducked music, captions, -16 LUFS; 1080p30 standard)
and measures, in this one run, wall time, CPU time (user+sys of the whole process tree), peak
memory and realtime factor (output seconds / wall seconds) of the runs below. It runs --repeat
rounds (default 4) of (b), (a), (d), (c) back to back, every other round backwards (ABBA); the table
keeps each one's fastest run (best of N, as timeit), and each target ratio is the median over the
rounds of that round's ratio (a shared 2-core VM's speed drifts by 10-25 % over minutes: runs made
back to back see the same speed; every run's wall time and every round's ratios are printed).
A target whose per-round values do not yet settle its verdict (the distribution-free interval of
their median, at >= 85 % coverage, still contains the target: see median_interval) gets extra
back-to-back pairs of (a) and the other run, the order alternating, until it is settled or
--max-extra-pairs is reached; the verdict is the median of all its pairs either way. Before each run
it waits until the CPUs are idle (--wait-idle):

  (a) our render job alone: render_job.job.run_export in a process of its own, LocalStorage, a
      recording reporter; the Python process's own peak RSS is reported apart from FFmpeg's;
  (b) the whole local pipeline from export_start to `succeeded`: the embedded stack
      (infra.local.stack.EmbeddedStack, with the deployed report interval), export_start, signed PUT
      uploads, polling export_status every 2 s (as often as the job reports progress);
  (c) the hand-written single FFmpeg command of tests/bench/baseline.py (same storyboard, same
      encoder settings);
  (d) the encode-only bound: (a)'s output decoded and re-encoded with the same x264/AAC settings;
  (e) MoviePy 2 rendering an equivalent timeline (tests/bench/moviepy_render.py).

(a), (c) and (d) use the FFmpeg that render_job.runner.find_ffmpeg picks (MoviePy is pointed at it
too). It prints a table, the ratios a/c, a/d, e/a and b-a against the issue's targets (PASS/FAIL,
never a failing exit: it is a measurement), the loudness and A/V duration difference of our output,
and Ken Burns smoothness (tests/bench/smoothness.py); then rewrites the results section of
BENCHMARKS.md. With --profile (automatic when a/c misses its target) it re-runs our FFmpeg command
and the baseline's in variants (filters only, video only, audio only, no captions) to show which part
of our graph costs what.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for p in (str(ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import baseline  # noqa: E402
import outputs  # noqa: E402
import storyboard as sb  # noqa: E402
from bench_stats import NORMALIZED, b_minus_a, b_minus_a_normalized, median_interval, settled  # noqa: E402
from measure import Measurement, RssSampler, TreeCpu, run_measured  # noqa: E402

TARGETS = {"a/c": 1.10, "a/d": 1.30, "e/a": 8.0, "b-a": 2.0, "py_rss": 200.0}
MARK_START = "<!-- bench:results:start -->"
MARK_END = "<!-- bench:results:end -->"
FRAME_MS = 1000.0 / sb.FPS
ROUND_ORDER = ("b", "a", "d", "c")  # odd rounds; even rounds run it backwards
POLL_S = 2.0  # (b): export_status polling interval: the deployed report interval (polling faster shows nothing new)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def load1() -> float:
    return os.getloadavg()[0]


# ------------------------------------------------------------------------------------------ machine
def machine_info(ffmpeg: str) -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = int(line.split()[1]) / 2**20
    except OSError:
        pass
    version = subprocess.run([ffmpeg, "-hide_banner", "-version"], capture_output=True, text=True).stdout
    first = version.splitlines()[0] if version else "?"
    import av
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": round(ram_gb or 0, 1),
            "ffmpeg": ffmpeg, "ffmpeg_version": first.replace("ffmpeg version ", "").split(" Copyright")[0],
            "python": platform.python_version(), "os": platform.platform(terse=True),
            "pyav": av.__version__}


def wait_for_quiet(threshold: float | None, max_wait_s: float, idle_pct: float | None = None) -> None:
    """Before a measurement: wait (up to max_wait_s) until the machine is quiet.

    idle_pct: until the CPUs were busy less than idle_pct % over the last 2 s (what a measurement
    competes with right now; the default); threshold: until the 1-minute load average is below it
    (slow: the average needs about a minute to forget the previous measurement's own load).
    """
    t0 = time.monotonic()
    if idle_pct is not None:
        import psutil
        while time.monotonic() - t0 < max_wait_s:
            busy = psutil.cpu_percent(interval=2.0)
            if busy < idle_pct:
                break
            log(f"CPUs {busy:.0f} % busy >= {idle_pct:g} %: waiting")
    if threshold is None:
        return
    while load1() > threshold and time.monotonic() - t0 < max_wait_s:
        log(f"load average {load1():.2f} > {threshold}: waiting (up to {max_wait_s - (time.monotonic() - t0):.0f} s)")
        time.sleep(15)


# ------------------------------------------------------------------------------------------ (a)
def stage_local_job(root: Path, job_id: str, story: sb.Storyboard) -> None:
    from shared.adapters.local_storage import LocalStorage

    st = LocalStorage(root)
    st.upload_bytes("bench-in", f"jobs/{job_id}/spec.json", json.dumps(story.spec).encode(), "application/json")
    for f in story.files:
        st.upload_file("bench-in", f"jobs/{job_id}/assets/{f.name}", str(f), "application/octet-stream")


def run_ours(out: Path, story: sb.Storyboard, ffmpeg: str) -> tuple[Measurement, dict, Path, Path]:
    """(a): returns (measurement, child result json, output mp4, kept work dir)."""
    d = out / "a"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    job_id = "bench-" + uuid.uuid4().hex[:8]
    stage_local_job(d / "storage", job_id, story)
    wrapper = outputs.make_logging_ffmpeg(ffmpeg, d / "ffmpeg", d / "calls")
    env = dict(os.environ, FFMPEG_BINARY=str(wrapper), PYTHONPATH=str(ROOT))
    # in a session of its own, as the local launcher starts (b)'s render task (sched_autogroup)
    m = run_measured("(a) our render job", [sys.executable, str(HERE / "render_child.py"), str(d / "storage"),
                                            job_id, str(d / "result.json"), str(d / "work")],
                     cwd=str(ROOT), env=env, output_s=sb.TOTAL_S, log_path=str(d / "job.log"), new_session=True)
    res = json.loads((d / "result.json").read_text()) if (d / "result.json").exists() else {}
    if m.returncode != 0 or res.get("status") != "succeeded":
        raise RuntimeError(f"our render failed ({m.returncode}): {res.get('error')}; log: {d / 'job.log'}")
    mp4 = d / "storage" / "bench-out" / "exports" / job_id / res["output"]["filename"]
    kids = res.get("children") or {}
    m.extra.update(render_step_s=res.get("timings", {}).get("render_s"), render_argv=render_argv(d / "calls"),
                   ffmpeg_cpu_s=(kids["user_s"] + kids["sys_s"]) if "user_s" in kids else None)
    return m, res, mp4, d


# ------------------------------------------------------------------------------------------ (b)
def run_pipeline(out: Path, story: sb.Storyboard, ffmpeg: str) -> tuple[Measurement, dict]:
    """(b): embedded stack; timed from export_start to `succeeded` (stack start-up reported apart).

    The render task runs FFmpeg through the same logging wrapper as (a) (its calls in b/calls), and
    its log gives the FFmpeg render step's seconds (`timings.render_s`) and the task's CPU seconds
    (`render task finished`): Measurement.extra render_step_s, task_cpu_s, others_cpu_s (the CPU
    seconds every process but the render task used while its FFmpeg render step ran: gateway,
    storage emulator, client; measure.RssSampler), others_run_cpu_s (the same over the whole run,
    less the RSS sampler's thread, which samples (a) too) and render_argv; and the cost export_status
    reports once the task has exited (reported_vcpu_s, reported_cpu_s, reported_usd; vcpus: the
    task's allocation, this machine's CPUs) to compare with the task's lifetime x vcpus.
    """
    import psutil

    from infra.local import client
    from infra.local.stack import EmbeddedStack
    from render_job.usage import allocated_vcpus
    from shared.config import Settings

    d = out / "b"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    wrapper = outputs.make_logging_ffmpeg(ffmpeg, d / "ffmpeg", d / "calls")
    t_boot = time.perf_counter()
    # the deployed report interval (shared.config, env.example), not the local modes' 0.5 s
    interval = str(Settings.model_fields["render_report_interval_s"].default)
    with EmbeddedStack(run_dir=d / "run", render_max_retries=0,
                       extra_env={"RENDER_REPORT_INTERVAL_S": interval, "FFMPEG_BINARY": str(wrapper)}) as stack:
        boot_s = time.perf_counter() - t_boot
        time.sleep(1.0)  # let the gateway settle
        me = psutil.Process()
        u0, s0 = TreeCpu.snapshot()
        with RssSampler(os.getpid(), task="-m render_job", step="filter_complex") as sampler:
            t0 = time.perf_counter()
            epoch0 = time.time()
            job = client.start_export(stack.base, story.spec, story.files)
            t_started = time.perf_counter()
            client.upload_all(job["uploads"], story.files)
            t_uploaded = time.perf_counter()
            # a client polling every POLL_S; the end time is the server's `succeeded` timestamp (same
            # clock), so polling adds no latency to the figure, and little CPU to the machine
            final = client.wait_for(stack.base, job["jobId"], timeout_s=900, interval_s=POLL_S)
            seen = time.perf_counter() - t0
            done_at = next((h["at"] for h in reversed(final.get("history") or []) if h.get("status") == "succeeded"),
                           None) or final.get("finishedAt")
            wall = (client.parse_time(done_at).timestamp() - epoch0) if done_at else seen
            # let the render job process exit (it reports and uploads before Cloud Run-like exit) and
            # the launcher reap it: it logs "render task exited" then (a zombie has no command line,
            # so waiting for the process alone could end before that line is written)
            deadline = time.monotonic() + 30
            exited = stack.log_entries  # the gateway's JSON log lines (the local launcher runs in it)
            while not (exited("render task exited", job_id=job["jobId"]) and not any(
                    "render_job" in " ".join(_cmd(p)) for p in me.children(recursive=True))):
                if time.monotonic() > deadline:
                    log("WARNING: (b)'s render task did not exit within 30 s of `succeeded`; "
                        f"its CPU is counted up to now (logs {d / 'run'})")
                    break
                time.sleep(0.2)
        u1, s1 = TreeCpu.snapshot()
        if final.get("status") != "succeeded":
            raise RuntimeError(f"pipeline export {final.get('status')}: {final.get('error')} (logs {d})")
        states = client.state_durations(final)
        # what export_status reports the render cost (issue 18), read once the task has exited
        cost = client.get_status(stack.base, job["jobId"]).get("cost") or {}
    # the render task's process lifetime inside (b) (the local launcher logs it when the process exits):
    # b minus it = the pipeline's time before the task starts (export_start, uploads, finalize, queue,
    # dispatch) minus the task's time after `succeeded` (report, clean-up, exit), within one run
    task_s = None
    for line in (d / "run" / "gateway.log").read_text(errors="replace").splitlines():
        if '"render task exited"' in line:
            try:
                task_s = json.loads(line).get("wallS")
            except ValueError:
                pass
    rendered = (stack.render_log_entries("export rendered", job["jobId"]) or [{}])[-1]
    finished = (stack.render_log_entries("render task finished", job["jobId"]) or [{}])[-1]
    task_cpu = (finished["cpuS"] + finished["childCpuS"]) if "childCpuS" in finished else None
    m = Measurement(name="(b) whole local pipeline", wall_s=wall, user_s=u1 - u0, sys_s=s1 - s0,
                    max_rss_mb=max(sampler.per_name.values(), default=0) / 2**20,
                    tree_rss_mb=sampler.peak_sum / 2**20,
                    per_name_rss_mb={k: v / 2**20 for k, v in sampler.per_name.items()},
                    output_s=sb.TOTAL_S,
                    extra={"stack_start_s": boot_s, "seen_by_client_s": seen, "export_start_s": t_started - t0,
                           "upload_s": t_uploaded - t_started, "states": states, "render_task_s": task_s,
                           "render_step_s": (rendered.get("timings") or {}).get("render_s"),
                           "task_cpu_s": task_cpu, "ffmpeg_cpu_s": finished.get("childCpuS"),
                           "reported_vcpu_s": cost.get("vcpuSeconds"), "reported_cpu_s": cost.get("cpuSeconds"),
                           "reported_usd": cost.get("estimatedUsd"), "vcpus": allocated_vcpus(0),
                           # over the whole run; the RSS sampler's thread runs in (a) too, where it is not counted
                           "others_run_cpu_s": (u1 - u0 + s1 - s0 - task_cpu - sampler.cpu_s)
                           if task_cpu is not None else None,
                           "others_cpu_s": sampler.others_step_cpu_s,
                           "render_argv": render_argv(d / "calls")})
    return m, final


def cost_line(ex: dict) -> str:
    """(b)'s cost as export_status reports it next to the benchmark's own measurement of the same render."""
    if not (ex.get("reported_vcpu_s") and ex.get("render_task_s")):
        return "(b) cost: not reported"
    measured = ex["render_task_s"] * ex["vcpus"]
    return (f"(b) cost: export_status reports {ex['reported_vcpu_s']:.2f} vCPU-s (~${ex['reported_usd']:.5f} at list "
            f"price); measured {measured:.2f} vCPU-s (the task's lifetime {ex['render_task_s']:.2f} s x "
            f"{ex['vcpus']:g} vCPUs); ratio {ex['reported_vcpu_s'] / measured:.3f}. CPU used: reported "
            f"{ex['reported_cpu_s']:.2f} s, the task's last log line {ex.get('task_cpu_s') or 0:.2f} s")


def render_argv(calls: Path) -> list[str] | None:
    """The argv of the FFmpeg render call (the one with a filter graph) that a logging wrapper
    recorded in `calls`, or None. Paths in it are relative to the work folder, so (a)'s and (b)'s
    are equal when they render the same thing the same way."""
    return next((av for _, av in outputs.logged_calls(calls)
                 if "-filter_complex" in av or "-/filter_complex" in av), None)


def _cmd(p) -> list[str]:
    try:
        return p.cmdline()
    except Exception:  # noqa: BLE001 - gone
        return []


# ------------------------------------------------------------------------------------------ (c) (d) (e)
def baseline_workdir(out: Path, name: str) -> Path:
    d = out / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    baseline.write_ass(d / "captions.ass")
    shutil.copytree(ROOT / "render_job" / "fonts", d / "fonts")
    return d


def baseline_argv(ffmpeg: str, story: sb.Storyboard, kb: str, out_name: str) -> list[str]:
    stills = story.files[:sb.SCENES]
    narr = [sb.SAMPLES / sb.NARRATIONS[i % len(sb.NARRATIONS)] for i in range(sb.SCENES)]
    return baseline.build_argv(ffmpeg, stills, narr, sb.SAMPLES / sb.MUSIC, out_name, story.motion, kb)


def run_baseline(out: Path, story: sb.Storyboard, ffmpeg: str, kb: str, label: str) -> tuple[Measurement, Path]:
    d = baseline_workdir(out, f"c-{kb}")
    argv = baseline_argv(ffmpeg, story, kb, "baseline.mp4")
    (d / "command.txt").write_text(" ".join(_shell_quote(a) for a in argv) + "\n")
    for attempt in range(3):
        m = run_measured(label, argv, cwd=str(d), output_s=sb.TOTAL_S, log_path=str(d / "ffmpeg.log"))
        if m.returncode >= 0:
            break
        # FFmpeg 9.0.2 has crashed (SIGSEGV in its filter-graph thread) in this graph now and then:
        # a crashed run measures nothing, so it is run again (and said so)
        log(f"{label}: FFmpeg killed by signal {-m.returncode}; running it again")
    if m.returncode != 0:
        raise RuntimeError(f"baseline FFmpeg failed ({m.returncode}); see {d / 'ffmpeg.log'}")
    return m, d / "baseline.mp4"


def run_encode_only(out: Path, ffmpeg: str, src: Path) -> Measurement:
    d = out / "d"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    m = run_measured("(d) encode-only bound", baseline.encode_only_argv(ffmpeg, str(src), str(d / "reencoded.mp4")),
                     cwd=str(d), output_s=sb.TOTAL_S, log_path=str(d / "ffmpeg.log"))
    if m.returncode != 0:
        raise RuntimeError(f"re-encode failed; see {d / 'ffmpeg.log'}")
    return m


def run_moviepy(out: Path, story: sb.Storyboard, ffmpeg: str, media: Path) -> tuple[Measurement, Path]:
    d = out / "e"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    mp4 = d / "moviepy.mp4"
    env = dict(os.environ, FFMPEG_BINARY=ffmpeg, IMAGEIO_FFMPEG_EXE=ffmpeg)
    m = run_measured("(e) MoviePy 2", [sys.executable, str(HERE / "moviepy_render.py"), str(media), str(mp4),
                                       "1" if story.motion else "0",
                                       str(ROOT / "render_job" / "fonts" / "DejaVuSans.ttf")],
                     cwd=str(d), env=env, output_s=sb.TOTAL_S, log_path=str(d / "moviepy.log"))
    if m.returncode != 0:
        raise RuntimeError(f"MoviePy failed; see {d / 'moviepy.log'}")
    return m, mp4


def _shell_quote(a: str) -> str:
    import shlex
    return shlex.quote(a)


# ------------------------------------------------------------------------------------------ profile
def _filter_graph(argv: list[str]) -> str:
    return argv[argv.index("-filter_complex") + 1]


def _inputs_part(argv: list[str]) -> list[str]:
    """argv[1:] up to -filter_complex (global options and inputs)."""
    return argv[1:argv.index("-filter_complex")]


def _strip_subtitles(graph: str) -> str:
    import re
    return re.sub(r"subtitles=[^,;\[]*(,|(?=\[))", "", graph)


def _cpu_of(ffmpeg: str, args: list[str], cwd: str) -> tuple[float, float]:
    m = run_measured("profile", [ffmpeg, *args], cwd=cwd)
    if m.returncode != 0:
        return float("nan"), float("nan")
    return m.wall_s, m.cpu_s


_AUDIO_HINTS = ("[aout]", "amix", "v=0:a=1", "aresample", "asplit", "apad", "sidechaincompress", "anullsrc", "atrim",
                "adelay", "loudnorm", "aformat", "volume=")


def _is_audio_stmt(stmt: str) -> bool:
    return any(h in stmt for h in _AUDIO_HINTS) and "xfade" not in stmt and "[vout]" not in stmt


def _strip_motion(graph: str) -> str:
    import re
    return re.sub(r"perspective=[^,;\[]*(,|(?=\[))", "", graph)


def profile_graphs(ffmpeg: str, ours: tuple[str, list[str]], base: tuple[str, list[str]],
                   ours_mp4: Path, base_mp4: Path) -> list[dict]:
    """Re-run our command and the baseline's in variants; (wall, CPU) seconds of each part.

    video/audio: the graph with only [vout] (or [aout]) consumed, into a null output (decode +
    filters, no encoding); nosubs: without the `subtitles` filter; nomotion: without `perspective`
    (ours only); encode: the encode-only bound on that graph's own output (content-dependent).
    """
    rows = []
    null = ["-f", "null", "-"]
    for who, (cwd, argv), mp4 in (("ours", ours, ours_mp4), ("baseline", base, base_mp4)):
        graph = _filter_graph(argv)
        head = _inputs_part(argv)

        def run(g: str, label: str) -> tuple[float, float]:
            # keep only the statements of one kind (the other output would be computed for nothing)
            parts = [p for p in g.split(";") if _is_audio_stmt(p) == (label == "[aout]")]
            return _cpu_of(ffmpeg, [*head, "-filter_complex", ";".join(parts), "-map", label, *null], cwd)

        r = {"who": who}
        r["video"] = run(graph, "[vout]")
        r["video_nosubs"] = run(_strip_subtitles(graph), "[vout]")
        r["video_nomotion"] = run(_strip_motion(graph), "[vout]") if "perspective=" in graph else (None, None)
        r["audio"] = run(graph, "[aout]")
        enc = [a for a in baseline.encode_only_argv(ffmpeg, str(mp4), "/dev/null")[1:-2]
               if a not in ("-movflags", "+faststart")]
        r["encode"] = _cpu_of(ffmpeg, [*enc, "-f", "mp4", "-y", "/dev/null"], cwd)
        rows.append(r)
        log(f"profile {who}: " + ", ".join(f"{k} {v[1]:.1f} s CPU" for k, v in r.items()
                                           if k != "who" and v[1] is not None))
    return rows


# ------------------------------------------------------------------------------------------ ratios
def _wall(result) -> float:
    return (result[0] if isinstance(result, tuple) else result).wall_s


def paired(walls: dict[str, list[float]]) -> dict[str, list[float]]:
    """Per-round a/c, a/d and b-a from the wall seconds of each round's runs ({"a": [round 1, ...], ...}).

    This VM's speed drifts by 10-25 % over minutes (docs/benchmarks-history.md, finding 14), so the fastest (a) and
    the fastest (d) of several rounds can come from different speeds; a ratio of runs made back to
    back in one round compares like with like, the order reversed every other round cancels the
    handicap of running second, and the median over the rounds drops a disturbed round.
    """
    n = len(walls["a"])
    return {"a/c": [walls["a"][i] / walls["c"][i] for i in range(n)],
            "a/d": [walls["a"][i] / walls["d"][i] for i in range(n)],
            "b-a": [walls["b"][i] - walls["a"][i] for i in range(len(walls["b"]))]}


def b_minus_a_pairs(runs_b: list, runs_a: list, pairs: list[tuple[int, int]]) -> dict:
    """b-a of each pair at (b)'s CPU speed and split at the render step (bench_stats.b_minus_a):
    {"normalized": [s] (b_minus_a_normalized), "outside": [s] (b-a less the render step's b-a),
    "render_step": [s] (timings.render_s of (b) less (a)'s), "others_cpu": [CPU s] (what (b)'s
    other processes used while its FFmpeg render ran), "same_work": every (b) ran (a)'s render
    argv}. A pair whose figures are missing or whose argv differ is left out of the lists, and then
    same_work is False."""
    out = {"normalized": [], "outside": [], "render_step": [], "others_cpu": [], "same_work": bool(pairs)}
    for ib, ia in pairs:
        mb, ma = runs_b[ib][0], runs_a[ia][0]
        step_b, step_a, cpu = mb.extra.get("render_step_s"), ma.extra.get("render_step_s"), mb.extra.get("others_cpu_s")
        ff_b, ff_a = mb.extra.get("ffmpeg_cpu_s"), ma.extra.get("ffmpeg_cpu_s")
        argv_b, argv_a = mb.extra.get("render_argv"), ma.extra.get("render_argv")
        if None in (step_b, step_a, cpu, ff_b, ff_a) or not ff_a or not argv_a or argv_b != argv_a:
            out["same_work"] = False
            continue
        out["normalized"].append(b_minus_a_normalized(mb.wall_s, ma.wall_s, ff_b, ff_a))
        out["outside"].append((mb.wall_s - step_b) - (ma.wall_s - step_a))
        out["render_step"].append(step_b - step_a)
        out["others_cpu"].append(cpu)
    return out


# ------------------------------------------------------------------------------------------ report
def fmt(v, nd=1, unit=""):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if isinstance(v, float) and v != v:
        return "-"
    return f"{v:.{nd}f}{unit}"


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "FAIL")


def build_report(machine: dict, story: sb.Storyboard, rows: list[Measurement], res_a: dict | None,
                 ratios: list[tuple], quality: list[tuple], smooth: dict, profile: list[dict],
                 loads: dict, kb: str, started: str) -> tuple[list[list[str]], list[str]]:
    header = ["run", "wall s", "CPU s", "CPU/wall", "peak RSS MB", "tree RSS MB", "realtime x", "load1"]
    table = []
    for m in rows:
        table.append([m.name, fmt(m.wall_s, 2), fmt(m.cpu_s, 1), fmt(m.cpu_s / m.wall_s if m.wall_s else None, 2),
                      fmt(m.max_rss_mb, 0), fmt(m.tree_rss_mb, 0), fmt(m.realtime, 2), fmt(loads.get(m.name), 2)])
    notes = []
    if res_a:
        me, ch = res_a["self"], res_a["children"]
        t = res_a.get("timings", {})
        notes.append(f"(a) Python process alone: peak RSS {me['maxrss_kb'] / 1024:.0f} MB, CPU "
                     f"{me['user_s'] + me['sys_s']:.1f} s; its FFmpeg runs: peak RSS {ch['maxrss_kb'] / 1024:.0f} MB, "
                     f"CPU {ch['user_s'] + ch['sys_s']:.1f} s; stages: " +
                     ", ".join(f"{k} {v:.2f} s" for k, v in t.items()))
    return [header] + table, notes


def print_table(rows: list[list[str]], title: str) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        print(title)
        for k, r in enumerate(rows):
            print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
            if k == 0:
                print("  ".join("-" * w for w in widths))
        return
    t = Table(title=title, title_justify="left")
    for i, h in enumerate(rows[0]):
        t.add_column(h, justify="left" if i == 0 else "right")
    for r in rows[1:]:
        t.add_row(*r)
    Console(width=160).print(t)


def md_table(rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(rows[0]))) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out)


def write_benchmarks_md(path: Path, section: str) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{MARK_START}\n{section.rstrip()}\n{MARK_END}"
    if MARK_START in text and MARK_END in text:
        pre = text[:text.index(MARK_START)]
        post = text[text.index(MARK_END) + len(MARK_END):]
        text = pre + block + post
    else:
        text = (text.rstrip() + "\n\n" if text else "# Benchmarks\n\n") + "## Latest results\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


# ------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / ".local" / "bench"), help="work folder (default .local/bench)")
    ap.add_argument("--skip-moviepy", action="store_true", help="skip (e) (MoviePy takes minutes)")
    ap.add_argument("--skip-pipeline", action="store_true", help="skip (b)")
    ap.add_argument("--kb", choices=baseline.KB_METHODS, default="ss2", help="the baseline's Ken Burns method")
    ap.add_argument("--also-kb", action="append", default=[], choices=baseline.KB_METHODS,
                    help="also time the baseline with this Ken Burns method (extra row)")
    ap.add_argument("--no-motion", action="store_true", help="render every scene with motion 'none'")
    ap.add_argument("--profile", action="store_true", help="per-part CPU of our graph and the baseline's")
    ap.add_argument("--wait-load", type=float, default=None,
                    help="before each measurement wait (up to --max-wait s) until the 1-min load is below this")
    ap.add_argument("--wait-idle", type=float, default=15.0,
                    help="before each measurement wait until the CPUs were < this %% busy over 2 s (0: off)")
    ap.add_argument("--repeat", type=int, default=4,
                    help="rounds of (b), (a), (d), (c), every other one backwards; the table keeps each "
                         "one's fastest run, each target ratio is the median of its per-round values")
    ap.add_argument("--max-extra-pairs", type=int, default=6,
                    help="at most this many extra back-to-back pairs per target whose rounds leave its verdict "
                         "unsettled (see median_interval; 0: off)")
    ap.add_argument("--max-wait", type=float, default=300)
    ap.add_argument("--no-write", action="store_true", help="do not rewrite BENCHMARKS.md")
    ap.add_argument("--smooth-scenes", default="0,1,2,4",
                    help="0-based scenes whose Ken Burns is tracked (default: zoom-in, zoom-out, pan-left, pan-up)")
    args = ap.parse_args(argv)

    from render_job.runner import find_ffmpeg
    from shared.config import get_settings

    started = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    ffmpeg = find_ffmpeg(get_settings().ffmpeg_binary)
    os.environ["FFMPEG_BINARY"] = ffmpeg  # the pipeline's render job uses the same binary
    # the render watchdog (60 s + 4 x output) would kill a render slowed down by a busy machine:
    # the benchmark measures time, so it gets a generous limit
    os.environ.setdefault("RENDER_TIMEOUT_BASE_S", "900")
    machine = machine_info(ffmpeg)
    log(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gb']} GiB; FFmpeg {machine['ffmpeg_version']} "
        f"({ffmpeg}); load {os.getloadavg()}")

    media = out / "media"
    story = sb.bench_storyboard(ffmpeg, media, want_motion=not args.no_motion)
    if story.motion_note:
        print(f"\n*** WARNING: Ken Burns motion OFF: {story.motion_note} ***\n", flush=True)
    log(f"storyboard: {sb.SCENES} scenes x {sb.SCENE_S:g} s, {sb.SCENES - 1} fades of {sb.XFADE_S:g} s, "
        f"total {sb.TOTAL_S:g} s, motion {'on (' + ', '.join(sorted(set(sb.MOTIONS))) + ')' if story.motion else 'OFF'}, "
        f"baseline Ken Burns '{args.kb}'")

    loads: dict[str, float] = {}

    all_runs: dict[str, list[float]] = {}

    def measured(fn, *a):
        wait_for_quiet(args.wait_load, args.max_wait, args.wait_idle or None)
        before = load1()
        result = fn(*a)
        m = result[0] if isinstance(result, tuple) else result
        all_runs.setdefault(m.name, []).append(m.wall_s)
        loads[m.name] = max(before, load1())
        log(f"{m.name}: wall {m.wall_s:.2f} s, CPU {m.cpu_s:.1f} s, peak RSS {m.max_rss_mb:.0f} MB, "
            f"realtime {m.realtime or 0:.2f}x (load {loads[m.name]:.2f})")
        return result

    def best(results: list):
        """The fastest of the repeated runs (its Measurement first in each result)."""
        return min(results, key=lambda r: (r[0] if isinstance(r, tuple) else r).wall_s)

    runs_a, runs_b, runs_c, runs_d = [], [], [], []
    runs = {"a": runs_a, "b": runs_b, "c": runs_c, "d": runs_d}

    def run_one(which: str, tag: str = "") -> float:
        """Measure (a), (b), (c) or (d) once, keep its result in runs[which]; its wall seconds."""
        if which == "b":
            log(f"(b) whole local pipeline (embedded stack){tag} ...")
            runs_b.append(measured(run_pipeline, out, story, ffmpeg))
        elif which == "a":
            log(f"(a) our render job{tag} ...")
            runs_a.append(measured(run_ours, out, story, ffmpeg))
        elif which == "d":
            log(f"(d) encode-only bound{tag} ...")
            # (a)'s output (the same every run): this round's, or the previous round's when backwards
            runs_d.append(measured(run_encode_only, out, ffmpeg, runs_a[-1][2]))
        else:
            log(f"(c) hand-written FFmpeg baseline (Ken Burns '{args.kb}'){tag} ...")
            runs_c.append(measured(run_baseline, out, story, ffmpeg, args.kb, "(c) hand-written FFmpeg"))
        return _wall(runs[which][-1])

    # rounds of (b), (a), (d), (c) back to back, the order reversed every other round (ABBA): (a) sits
    # next to both runs it is compared with most tightly (b-a, a/d), and a run that follows another
    # (on this VM often slower than one after a pause) is (a) as often as (b) or (d); see paired()
    for rep in range(max(1, args.repeat)):
        tag = f" (round {rep + 1} of {args.repeat})" if args.repeat > 1 else ""
        for which in (ROUND_ORDER if rep % 2 == 0 else ROUND_ORDER[::-1]):
            if which != "b" or not args.skip_pipeline:
                run_one(which, tag)
    # --- ratios: per round (paired()); then extra pairs for a target the rounds leave unsettled
    walls = {k: [_wall(r) for r in rs] for k, rs in runs.items()}
    per_round = paired(walls)
    ba_pairs = [(i, i) for i in range(len(runs_b))]  # (index in runs_b, index in runs_a) of each b-a pair
    extra_pairs = {"a/c": 0, "a/d": 0, "b-a": 0}
    while True:
        ba_settled = bool(per_round["b-a"]) and b_minus_a(
            per_round["b-a"], b_minus_a_pairs(runs_b, runs_a, ba_pairs)["normalized"], TARGETS["b-a"])[2]
        todo = [k for k in ("b-a", "a/d", "a/c") if per_round[k] and extra_pairs[k] < args.max_extra_pairs
                and not (ba_settled if k == "b-a" else settled(per_round[k], TARGETS[k]))]
        if not todo:
            break
        for k in todo:
            lo, hi, cov = median_interval(per_round[k])
            extra_pairs[k] += 1
            log(f"{k}: {len(per_round[k])} pairs, median interval {lo:.2f}..{hi:.2f} at {cov:.0%} coverage: not "
                f"settled against {TARGETS[k]:g}; extra pair {extra_pairs[k]} of at most {args.max_extra_pairs} ...")
            other = k.replace("a/", "").replace("-a", "")
            order = ("a", other) if (len(per_round[k]) % 2 == 0) else (other, "a")
            got = {which: run_one(which, f" (extra pair for {k})") for which in order}
            per_round[k].append(got["b"] - got["a"] if k == "b-a" else got["a"] / got[other])
            if k == "b-a":
                ba_pairs.append((len(runs_b) - 1, len(runs_a) - 1))
    m_a, res_a, _, _ = best(runs_a)
    # every run renders the same output; each run replaces the previous one's folder: the last is on disk
    mp4_a, dir_a = runs_a[-1][2], runs_a[-1][3]
    m_b = best(runs_b)[0] if runs_b else None
    m_c, mp4_c = best(runs_c)
    m_d = best(runs_d)
    extra_c = []
    for kb in args.also_kb:
        if kb != args.kb:
            log(f"(c') baseline with Ken Burns '{kb}' ...")
            extra_c.append(measured(run_baseline, out, story, ffmpeg, kb, f"(c') baseline, Ken Burns '{kb}'"))
    m_e = mp4_e = None
    if not args.skip_moviepy:
        log("(e) MoviePy 2 (minutes) ...")
        m_e, mp4_e = measured(run_moviepy, out, story, ffmpeg, media)

    a = statistics.median(_wall(r) for r in runs_a)
    render_s = res_a.get("timings", {}).get("render_s")
    py_rss = max(r[1]["self"]["maxrss_kb"] for r in runs_a) / 1024
    ac, ad = statistics.median(per_round["a/c"]), statistics.median(per_round["a/d"])
    ba, ba_how, ba_settled, parts = None, "", False, b_minus_a_pairs(runs_b, runs_a, ba_pairs)
    if per_round["b-a"]:
        ba, ba_how, ba_settled = b_minus_a(per_round["b-a"], parts["normalized"], TARGETS["b-a"])
    ratios = [
        ("a/c", ac, f"<= {TARGETS['a/c']:.2f}", ac <= TARGETS["a/c"]),
        ("a/d", ad, f"<= {TARGETS['a/d']:.2f}", ad <= TARGETS["a/d"]),
        ("MoviePy/a", (m_e.wall_s / a) if m_e else None, f">= {TARGETS['e/a']:.0f}",
         (m_e.wall_s / a >= TARGETS["e/a"]) if m_e else None),
        ("b-a (s)" + (" at (b)'s CPU speed" if ba_how == NORMALIZED else "") +
         ("" if ba_settled else " (NOT settled)"), ba, f"<= {TARGETS['b-a']:.1f}",
         (ba <= TARGETS["b-a"]) if ba is not None else None),
        ("(a) Python peak RSS (MB)", py_rss, f"<= {TARGETS['py_rss']:.0f}", py_rss <= TARGETS["py_rss"]),
        ("a/c, fastest runs", m_a.wall_s / m_c.wall_s, "info", None),
        ("a/d, fastest runs", m_a.wall_s / m_d.wall_s, "info", None),
    ]
    for k in ("a/c", "a/d", "b-a"):
        if per_round[k]:
            lo, hi, cov = median_interval(per_round[k])
            ratios.append((f"{k}: median interval of {len(per_round[k])} pairs ({cov:.0%}), "
                           f"{'settled' if settled(per_round[k], TARGETS[k]) else 'NOT settled'}",
                           f"{lo:.2f}..{hi:.2f}", "info", None))
    if per_round["b-a"]:
        ratios.append((f"b-a (s), direct median of {len(per_round['b-a'])} pairs", statistics.median(per_round["b-a"]),
                       "info", None))
    for key, name, label in (
            ("normalized", "b-a at (b)'s CPU speed",
             f"b-a at (b)'s CPU speed (s; FFmpeg's same argv: {'yes' if parts['same_work'] else 'NO'})"),
            ("outside", "b-a outside the render step", "b-a outside the render step (s)"),
            ("render_step", "b-a of the render step", "b-a of the render step (s; timings.render_s)"),
            ("others_cpu", "(b) other processes' CPU s during the render step",
             "(b) other processes' CPU s during the render step")):
        if parts[key]:
            per_round[name] = parts[key]
            lo, hi, cov = median_interval(parts[key])
            ratios.append((f"{label}, median [interval {lo:.2f}..{hi:.2f}, {cov:.0%}]",
                           statistics.median(parts[key]), "info", None))
    if per_round["b-a"]:
        ratios.append((f"b-a verdict: {ba_how}, {'settled' if ba_settled else 'NOT settled'}", ba, "info", None))
    if m_b:
        ratios.append(("b-a (s), fastest runs", m_b.wall_s - m_a.wall_s, "info", None))
    outside = [r[0].wall_s - r[0].extra["render_task_s"] for r in runs_b if r[0].extra.get("render_task_s")]
    if outside:
        per_round["b - its render task's lifetime"] = outside
        ratios.append(("b - its render task's lifetime (s), median", statistics.median(outside), "info", None))
    if render_s:
        ratios.append(("a(FFmpeg step only)/c", render_s / m_c.wall_s, "info", None))
    # issue 18: the vCPU-seconds export_status reports against the task's lifetime the local launcher
    # measured (process start to exit) x the vCPUs it was given: billed time, like with like
    cost_ratio = [ex["reported_vcpu_s"] / (ex["render_task_s"] * ex["vcpus"]) for ex in (r[0].extra for r in runs_b)
                  if ex.get("reported_vcpu_s") and ex.get("render_task_s")]
    if cost_ratio:
        per_round["reported/measured vCPU-s"] = cost_ratio
        med = statistics.median(cost_ratio)
        ratios.append(("(b) reported vCPU-s / (task lifetime x vCPUs), median", med, "0.90..1.10",
                       abs(med - 1) <= 0.10))

    # --- output quality
    log("checking outputs (loudness, durations, Ken Burns smoothness) ...")
    from smoothness import track_scenes

    infos = {"ours": outputs.inspect(ffmpeg, str(mp4_a)), "baseline": outputs.inspect(ffmpeg, str(mp4_c))}
    if mp4_e:
        infos["MoviePy"] = outputs.inspect(ffmpeg, str(mp4_e))
    scenes = [int(s) for s in args.smooth_scenes.split(",") if s.strip()]
    smooth = {"ours": track_scenes(str(mp4_a), scenes), "baseline": track_scenes(str(mp4_c), scenes)}
    if mp4_e:
        smooth["MoviePy"] = track_scenes(str(mp4_e), scenes)
    ia = infos["ours"]
    zoom_in = [t for t in smooth["ours"] if sb.MOTIONS[t.scene] == "zoom-in"]
    quality = [
        ("our loudness (LUFS, target -16 +/- 1)", ia.lufs, "within 1 LU",
         abs(ia.lufs + 16) <= 1.0 if ia.lufs is not None else False),
        ("our audio - video duration (ms)", ia.av_diff_ms, f"abs <= {FRAME_MS:.1f} (1 frame)",
         abs(ia.av_diff_ms) <= FRAME_MS if ia.av_diff_ms is not None else False),
        ("our video duration (s, plan 54.5)", ia.video_s, f"+/- {FRAME_MS / 1000:.3f}",
         abs(ia.video_s - sb.TOTAL_S) <= FRAME_MS / 1000 + 1e-6 if ia.video_s else False),
    ]
    if story.motion and zoom_in:
        z = zoom_in[0]
        quality.append(("our zoom-in backward steps (scene 1)", None if z.lost else float(z.backward_steps), "0",
                        (not z.lost) and z.backward_steps == 0 and z.travel_px > 5))

    # --- profile
    profile: list[dict] = []
    if args.profile or ratios[0][3] is False:
        calls = outputs.logged_calls(dir_a / "calls")
        render_calls = [(cwd, av) for cwd, av in calls if "-filter_complex" in av]
        if render_calls:
            cwd_o, av_o = render_calls[0]
            d_c = out / f"c-{args.kb}"
            log("profiling our graph and the baseline's (filters only, video/audio apart, without captions) ...")
            wait_for_quiet(args.wait_load, args.max_wait)
            profile = profile_graphs(ffmpeg, (cwd_o, ["ffmpeg", *av_o]),
                                     (str(d_c), baseline_argv(ffmpeg, story, args.kb, "x.mp4")), mp4_a, mp4_c)

    # --- print
    all_rows = [m_a] + ([m_b] if m_b else []) + [m_c] + [e[0] for e in extra_c] + [m_d] + ([m_e] if m_e else [])
    table, notes = build_report(machine, story, all_rows, res_a, ratios, quality, smooth, profile, loads,
                                args.kb, started)
    if args.repeat > 1:
        notes.insert(0, f"{args.repeat} rounds of (b), (a), (d), (c) back to back, every other round backwards; "
                        "the table keeps the fastest "
                        "run of each (wall s of every run: " +
                        "; ".join(f"{name.split(' ')[0]} " + ", ".join(f"{w:.2f}" for w in ws)
                                  for name, ws in all_runs.items()) + "); each target ratio is the median of "
                        "its per-round values (" +
                        "; ".join(f"{k} " + ", ".join(f"{v:.2f}" for v in vs) for k, vs in per_round.items() if vs) +
                        "); MoviePy/a divides by the median (a), " + f"{a:.2f} s" +
                        "".join(f"; {k}: {n} extra pair(s) after the rounds" for k, n in extra_pairs.items() if n))
    print()
    print_table(table, f"SceneFlow render benchmark - {sb.TOTAL_S:g} s of 1080p30, {started}")
    for n in notes:
        print(n)
    if m_b:
        ex = m_b.extra
        print(f"(b) stack start-up {ex['stack_start_s']:.2f} s (not in (b)); client saw succeeded after "
              f"{ex['seen_by_client_s']:.2f} s (polling every {POLL_S:g} s); export_start {ex['export_start_s']:.2f} s, "
              f"uploads {ex['upload_s']:.2f} s; time per state: " +
              ", ".join(f"{s} {v:.2f} s" for s, v in ex["states"]))
        print(cost_line(ex))
    print()
    rt = [["ratio / check", "value", "target", "verdict"]]
    for name, val, target, ok in ratios + quality:
        rt.append([name, fmt(val, 2), target, verdict(ok)])
    print_table(rt, "Targets (issue 4)")
    print()
    ot = [["output", "video s", "audio s", "A-V ms", "LUFS", "true peak dBFS", "MB"]]
    for k, v in infos.items():
        ot.append([k, fmt(v.video_s, 3), fmt(v.audio_s, 3), fmt(v.av_diff_ms, 1), fmt(v.lufs, 1),
                   fmt(v.true_peak, 1), fmt(v.size_mb, 1)])
    print_table(ot, "Outputs")
    print()
    st = [["output", "scene", "motion", "travel px", "backward steps", "jitter px RMS", "step px min..max"]]
    for who, tracks in smooth.items():
        for t in tracks:
            st.append([who, str(t.scene + 1), sb.MOTIONS[t.scene] if story.motion else "none",
                       "lost" if t.lost else fmt(t.travel_px, 1), "-" if t.lost else str(t.backward_steps),
                       "-" if t.lost else fmt(t.jitter_px, 3),
                       "-" if t.lost else f"{t.min_step_px:.2f}..{t.max_step_px:.2f}"])
    print_table(st, "Ken Burns smoothness (marker tracked on transition-free frames)")
    if story.motion and all(t.travel_px < 1 for t in smooth["ours"] if not t.lost):
        print("*** WARNING: the spec accepted visual.motion but our output shows no motion ***")
    pt = None
    if profile:
        print()
        pt = [["graph", "video filters", "video w/o captions", "video w/o Ken Burns", "audio filters",
               "x264+AAC of its output"]]
        for r in profile:
            pt.append([r["who"]] + [fmt(r[k][1], 1) for k in ("video", "video_nosubs", "video_nomotion", "audio",
                                                                "encode")])
        print_table(pt, "Where the time goes: CPU s (decode + filters to a null output; encode-only of each output)")

    # --- BENCHMARKS.md
    if not args.no_write:
        loads_txt = ", ".join(f"{k.split(')')[0]})" + f" {v:.2f}" for k, v in loads.items())
        sec = [f"Run {started} by `make bench` ({'motion on' if story.motion else 'motion OFF: ' + story.motion_note}; "
               f"baseline Ken Burns `{args.kb}`).", "",
               f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gb']} GiB RAM; "
               f"FFmpeg {machine['ffmpeg_version']} (`{machine['ffmpeg']}`); Python {machine['python']}; "
               f"{machine['os']}. 1-minute load average during each run: {loads_txt}.", "",
               md_table(table), ""]
        sec += [f"- {n}" for n in notes]
        if m_b:
            ex = m_b.extra
            sec.append(f"- (b) is timed from export_start to `succeeded`; stack start-up ({ex['stack_start_s']:.2f} s) "
                       f"is not included. Time per state: " + ", ".join(f"{s} {v:.2f} s" for s, v in ex["states"]) + ".")
            sec.append(f"- {cost_line(ex)}")
        sec += ["", md_table(rt), "", md_table(ot), "", md_table(st)]
        if pt:
            sec += ["", "Where the time goes: CPU seconds (decode + filters into a null output; the last column "
                    "re-encodes that graph's own output with the same x264/AAC settings):", "", md_table(pt)]
        write_benchmarks_md(ROOT / "BENCHMARKS.md", "\n".join(sec) + "\n")
        (out / "results.json").write_text(json.dumps({
            "started": started, "machine": machine, "motion": story.motion, "kb": args.kb, "loads": loads,
            "rows": [m.__dict__ | {"cpu_s": m.cpu_s, "realtime": m.realtime} for m in all_rows],
            "ratios": [r[:2] for r in ratios], "quality": [q[:2] for q in quality], "result_a": res_a,
            "profile": profile}, indent=1, default=str))
        log("BENCHMARKS.md results section rewritten; raw figures in " + str(out / "results.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
