"""What a render task attempt uses, from its process's start (shared.cost, README "What an export
costs"): sent with every report to export_complete, so an attempt that crashes or is canceled is
counted up to its last report. A task that dies before its first report is not counted. On SIGTERM
(a cancel, a task timeout) the task sends one last report before it exits (stop_on_sigterm).

    {"wallS": seconds since this process started, "cpuS": user + sys seconds of this process and of
     the children it has waited for (FFmpeg, ffprobe; getrusage(2): a child still running is not in
     it yet), "vcpu": allocated vCPUs, "memoryGib": allocated memory in GiB}
"""
from __future__ import annotations

import os
import resource
import signal
import time
from typing import Any, Callable

from shared.config import Settings
from shared.cost import GIB


def allocated_vcpus(setting: float) -> float:
    """The task's vCPUs: RENDER_VCPUS (deploy.sh and Terraform set it from the job's --cpu), else (0,
    locally) the CPUs this process may run on, as the local launcher starts it."""
    if setting > 0:
        return float(setting)
    try:
        return float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return float(os.cpu_count() or 1)


def process_age_s() -> float:
    """Seconds since this process started (/proc/self/stat starttime against CLOCK_BOOTTIME: the
    interpreter's start-up and imports included); 0.0 when it cannot be read (not Linux)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of proc(5), counted after "(comm)"
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


def cpu_s() -> float:
    """User + sys CPU seconds of this process and of every child it has waited for."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class TaskUsage:
    """The attempt's usage so far; `snapshot()` is the `usage` of a report (shared.worker_report.ReportUsage)."""

    def __init__(self, vcpu: float, memory_bytes: int, clock: Callable[[], float] = time.monotonic,
                 age_s: float | None = None, cpu: Callable[[], float] = cpu_s) -> None:
        self.vcpu = vcpu
        self.memory_gib = memory_bytes / GIB
        self._clock, self._cpu = clock, cpu
        self._start = clock() - (process_age_s() if age_s is None else age_s)

    @classmethod
    def of(cls, settings: Settings) -> "TaskUsage":
        """The task's usage with its allocation from settings (RENDER_VCPUS, RENDER_MEMORY_BYTES)."""
        return cls(allocated_vcpus(settings.render_vcpus), settings.render_memory_bytes)

    def snapshot(self) -> dict[str, float]:
        return {"wallS": round(max(0.0, self._clock() - self._start), 3), "cpuS": round(self._cpu(), 3),
                "vcpu": self.vcpu, "memoryGib": round(self.memory_gib, 6)}


STOPPED_EXIT = 128 + signal.SIGTERM  # as a shell reports a process ended by SIGTERM


class Stopped(BaseException):
    """SIGTERM arrived: not an Exception, so no stage reports it as the export's failure."""


def _on_sigterm(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the last report is sent once
    raise Stopped()


def stop_on_sigterm() -> None:
    """From now on SIGTERM (Cloud Run's cancel and task timeout; the local launcher's cancel) raises
    Stopped in the main thread, so the task sends its last report (its usage) before it exits."""
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (tests): SIGTERM keeps its default
        pass


def task_cpu_s() -> dict[str, float]:
    """CPU seconds (user + sys) this task has used so far: {"cpuS": this Python process,
    "childCpuS": every child it has waited for (FFmpeg, ffprobe)}; getrusage(2). What the task used,
    not what is billed (allocation x time: shared.cost); the benchmark uses it to tell the render
    task's CPU from the rest of the local pipeline's."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cpuS": round(me.ru_utime + me.ru_stime, 3), "childCpuS": round(kids.ru_utime + kids.ru_stime, 3)}
