"""Wall time, CPU time and peak memory of a process tree.

`run_measured(argv)` starts a subprocess and reaps it with os.wait4, which returns that child's own
rusage including every descendant it waited for: user+sys CPU of the whole tree (FFmpeg under a
Python job included) and ru_maxrss, the largest single process of the tree. A psutil sampler (every
SAMPLE_S) adds the peak of the tree's *summed* RSS (processes alive at the same time) and the peak
per process name.

`TreeCpu` snapshots the CPU of this process plus all live descendants (each with its reaped
children), for pipelines that run partly in this process (the embedded stack).
"""
from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from dataclasses import dataclass, field

import psutil

SAMPLE_S = 0.2


@dataclass
class Measurement:
    name: str
    wall_s: float
    user_s: float
    sys_s: float
    max_rss_mb: float            # largest single process (exact, from rusage; sampled when exact is None)
    tree_rss_mb: float           # peak of the summed RSS of the tree (sampled)
    per_name_rss_mb: dict[str, float] = field(default_factory=dict)
    returncode: int = 0
    output_s: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    @property
    def realtime(self) -> float | None:
        return self.output_s / self.wall_s if self.output_s and self.wall_s else None


class RssSampler:
    """Samples the RSS of `root` and its descendants every SAMPLE_S seconds in a thread; `cpu_s` is
    the CPU seconds that thread used (the measurement's own cost, set on exit).

    With `task` (a substring of one descendant's command line, e.g. "-m render_job") and `step` (a
    substring of the command line of a process under it, e.g. "filter_complex"), it also adds up
    `others_step_cpu_s`: the CPU seconds (user + sys) that every process outside the task's subtree
    used while the step ran, this process's other threads included and this sampler's thread not:
    what could have competed with the step for the CPUs. Per interval between samples, counted when
    the step was seen at either end (so it over-states by up to one interval at each end); a
    process that starts and exits between two samples is missed.
    """

    def __init__(self, root_pid: int, include_root: bool = True, task: str | None = None,
                 step: str | None = None) -> None:
        self.root_pid = root_pid
        self.include_root = include_root
        self.peak_sum = 0
        self.per_name: dict[str, int] = {}
        self.cpu_s = 0.0
        self.task, self.step = task, step
        self.others_step_cpu_s = 0.0
        self._prev: tuple[dict[int, float], bool] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        try:
            root = psutil.Process(self.root_pid)
            procs = ([root] if self.include_root else []) + root.children(recursive=True)
        except psutil.Error:
            return
        total = 0
        cpu: dict[int, float] = {}
        task_pids: set[int] = set()
        in_step = False
        for p in procs:
            try:
                with p.oneshot():
                    rss = p.memory_info().rss
                    name = _label(p)
                    if self.task:
                        cmd = " ".join(p.cmdline())
                        if self.task in cmd or p.ppid() in task_pids:  # children() lists parents first
                            task_pids.add(p.pid)
                            in_step = in_step or bool(self.step and self.step in cmd)
                        else:
                            t = p.cpu_times()
                            cpu[p.pid] = t.user + t.system
            except psutil.Error:
                continue
            total += rss
            self.per_name[name] = max(self.per_name.get(name, 0), rss)
        self.peak_sum = max(self.peak_sum, total)
        if self.task:
            if os.getpid() in cpu:
                cpu[os.getpid()] -= time.thread_time()  # not this sampler's own thread
            if self._prev is not None:
                prev, prev_in_step = self._prev
                if in_step or prev_in_step:
                    self.others_step_cpu_s += sum(max(0.0, v - prev[pid]) for pid, v in cpu.items() if pid in prev)
            self._prev = (cpu, in_step)

    def _run(self) -> None:
        t0 = time.thread_time()
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(SAMPLE_S)
        self.cpu_s = time.thread_time() - t0


def _label(p: psutil.Process) -> str:
    """'ffmpeg', 'python -m render_job', 'python gateway', ... for the per-process table."""
    name = p.name()
    if name.startswith("python"):
        try:
            cmd = p.cmdline()
        except psutil.Error:
            return name
        if "-m" in cmd:
            return f"python -m {cmd[cmd.index('-m') + 1]}"
        scripts = [c for c in cmd[1:] if c.endswith(".py")]
        return f"python {os.path.basename(scripts[0])}" if scripts else "python"
    return name


def run_measured(name: str, argv: list[str], *, cwd: str | None = None, env: dict | None = None,
                 output_s: float | None = None, log_path: str | None = None, new_session: bool = False) -> Measurement:
    """Run argv to completion and measure it. stdout/stderr go to log_path (or are discarded);
    new_session: start it in a session of its own (setsid; its own scheduling autogroup on Linux)."""
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=new_session)
        with RssSampler(proc.pid) as sampler:
            _, status, ru = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log_path:
            out.close()
    mb = 1024.0  # ru_maxrss is in KiB on Linux
    return Measurement(name=name, wall_s=wall, user_s=ru.ru_utime, sys_s=ru.ru_stime,
                       max_rss_mb=ru.ru_maxrss / mb, tree_rss_mb=sampler.peak_sum / 2**20,
                       per_name_rss_mb={k: v / 2**20 for k, v in sampler.per_name.items()},
                       returncode=proc.returncode, output_s=output_s)


class TreeCpu:
    """CPU seconds (user, sys) used so far by this process, its reaped children, and every live
    descendant (with their reaped children)."""

    @staticmethod
    def snapshot() -> tuple[float, float]:
        me = psutil.Process()
        t = me.cpu_times()
        user, sys_ = t.user + t.children_user, t.system + t.children_system
        for p in me.children(recursive=True):
            try:
                c = p.cpu_times()
            except psutil.Error:
                continue
            user += c.user + c.children_user
            sys_ += c.system + c.children_system
        return user, sys_


@dataclass
class Cost:
    wall_s: float = 0.0
    cpu_s: float = 0.0

    def __add__(self, o: "Cost") -> "Cost":
        return Cost(self.wall_s + o.wall_s, self.cpu_s + o.cpu_s)


class Clock:
    """Wall and CPU (this process + reaped children) of a block."""

    def __enter__(self) -> "Clock":
        self.t0 = time.perf_counter()
        self.c0 = self._cpu()
        return self

    def __exit__(self, *exc) -> None:
        self.cost = Cost(time.perf_counter() - self.t0, self._cpu() - self.c0)

    @staticmethod
    def _cpu() -> float:
        s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
