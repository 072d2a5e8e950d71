"""What an export's render cost: the arithmetic from a render task's usage to billed vCPU-seconds,
GiB-seconds and an estimate in USD (README "What an export costs", DESIGN §4, §9). Pure: no I/O.

Cloud Run jobs bill instance time: a task is charged for the vCPUs and memory allocated to it for
as long as its instance runs, whatever it uses (https://cloud.google.com/run/pricing, "Jobs" rows of
the Tier 1 table, read 2026-12-05; env.example has the prices). So, per task attempt:

    vcpuSeconds = allocated vCPUs x the attempt's wall seconds
    gibSeconds  = allocated GiB   x the attempt's wall seconds

and an export's cost is the sum over its attempts. Reports of one attempt are cumulative (each
carries the attempt's usage so far): the largest one counts, so a duplicate or late report never
adds twice. `cpuSeconds` is what the task actually used (user + sys of the task and its FFmpeg
runs, getrusage), for comparison: it is not billed.
"""
from __future__ import annotations

from typing import NamedTuple

from shared.responses import Cost, Pricing

GIB = 1024 ** 3


class AttemptUsage(NamedTuple):
    """One task attempt's billed and used amounts (all cumulative for the attempt, seconds):
    wall_s, cpu_s (used), vcpu_s (vCPU-seconds billed), gib_s (GiB-seconds billed)."""

    wall_s: float
    cpu_s: float
    vcpu_s: float
    gib_s: float


def billed(wall_s: float, cpu_s: float, vcpu: float, memory_gib: float) -> AttemptUsage:
    """An attempt's usage from a report's `usage` {wallS, cpuS, vcpu, memoryGib}: allocation x time."""
    return AttemptUsage(wall_s, cpu_s, vcpu * wall_s, memory_gib * wall_s)


def merged(old: AttemptUsage | None, new: AttemptUsage) -> AttemptUsage:
    """The attempt's usage after one more report: each amount's largest value (reports are cumulative,
    may come twice or out of order)."""
    return new if old is None else AttemptUsage(*(max(a, b) for a, b in zip(old, new)))


class Totals(NamedTuple):
    """An export's usage over all its attempts: vCPU-seconds, GiB-seconds (billed), CPU seconds (used)."""

    vcpu_s: float = 0.0
    gib_s: float = 0.0
    cpu_s: float = 0.0


def totals(attempts: list[AttemptUsage]) -> Totals:
    """The sum over attempts, added in attempt order (the PostgreSQL view adds in the same order, so
    both give the same floats)."""
    vcpu = gib = cpu = 0.0
    for a in attempts:
        vcpu, gib, cpu = vcpu + a.vcpu_s, gib + a.gib_s, cpu + a.cpu_s
    return Totals(vcpu, gib, cpu)


def cost_view(sums: dict, vcpu_second_usd: float, gib_second_usd: float, source: str | None) -> dict:
    """export_status `cost` (Cost, camelCase) from the repository's sums {vcpuSeconds, gibSeconds,
    cpuSeconds} (numbers, possibly ints from the database): seconds to 3 decimals, USD to 6."""
    vcpu, gib = float(sums.get("vcpuSeconds") or 0), float(sums.get("gibSeconds") or 0)
    usd = vcpu * vcpu_second_usd + gib * gib_second_usd
    return Cost(vcpu_seconds=round(vcpu, 3), gib_seconds=round(gib, 3),
                cpu_seconds=round(float(sums.get("cpuSeconds") or 0), 3), estimated_usd=round(usd, 6),
                pricing=Pricing(vcpu_second_usd=vcpu_second_usd, gib_second_usd=gib_second_usd,
                                source=source or None)).model_dump(by_alias=True, exclude_none=True)
