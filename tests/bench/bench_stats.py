"""The benchmark's stopping rule for paired targets and the b-a verdict (pure: no third-party imports, unit-tested in
tests/unit/test_bench_median_interval.py). See BENCHMARKS.md "What is measured"."""
from __future__ import annotations

import math
import statistics

INTERVAL_COVERAGE = 0.85  # a paired target is settled when this interval of its median is on one side of it


def median_interval(values: list[float], min_coverage: float = INTERVAL_COVERAGE) -> tuple[float, float, float]:
    """A distribution-free confidence interval of the median of `values`: (low, high, coverage).

    The sign-test interval: with the values sorted, (k-th smallest, k-th largest) covers the median
    with probability 1 - 2 P(Binomial(n, 1/2) < k), whatever the distribution (source: W. J. Conover,
    Practical Nonparametric Statistics, 3rd ed., 1999, section 3.2). k is the largest whose coverage
    is >= min_coverage; with too few values for that, k = 1 (min..max, coverage 1 - 2 / 2**n: 87.5 %
    for 4 values). Raises ValueError for no values.
    """
    if not values:
        raise ValueError("median_interval of no values")
    xs, n = sorted(values), len(values)

    def coverage(k: int) -> float:
        return 1.0 - 2.0 * sum(math.comb(n, i) for i in range(k)) / 2 ** n

    k = 1
    while k + 1 <= (n + 1) // 2 and coverage(k + 1) >= min_coverage:
        k += 1
    return xs[k - 1], xs[n - k], coverage(k)


def settled(values: list[float], target: float) -> bool:
    """True when the median interval of `values` reaches INTERVAL_COVERAGE (4 values or more) and lies
    wholly at or below `target`, or wholly above it: more pairs would not change the verdict
    "median <= target" (at that coverage)."""
    lo, hi, cov = median_interval(values)
    return cov >= INTERVAL_COVERAGE and (hi <= target or lo > target)



DIRECT = "direct (median of the pairs)"
NORMALIZED = "at (b)'s CPU speed (median of the pairs)"


def b_minus_a(total: list[float], normalized: list[float], target: float) -> tuple[float, str, bool]:
    """The b-a verdict (seconds), how it was reached (DIRECT or NORMALIZED), and whether it is settled.

    Per pair of (b) and (a) run back to back: `total` = b - a wall seconds; `normalized` = b - a x
    (cpu_b / cpu_a), where cpu is the CPU seconds of each run's FFmpeg processes, which run the same
    argv on the same files: (a) scaled to the CPU speed (b) met (see b_minus_a_normalized).

    - `total` settled against `target` (settled()): its median, DIRECT, True.
    - Else `normalized` settled: its median, NORMALIZED, True.
    - Else the median of `total`, DIRECT, False.
    Raises ValueError when `total` is empty.
    """
    if not total:
        raise ValueError("b_minus_a of no pairs")
    if settled(total, target):
        return statistics.median(total), DIRECT, True
    if normalized and settled(normalized, target):
        return statistics.median(normalized), NORMALIZED, True
    return statistics.median(total), DIRECT, False


def b_minus_a_normalized(wall_b: float, wall_a: float, ffmpeg_cpu_b: float, ffmpeg_cpu_a: float) -> float:
    """b - a with (a)'s wall seconds scaled to the CPU speed that (b) met: wall_b - wall_a x
    ffmpeg_cpu_b / ffmpeg_cpu_a (seconds).

    Why: this shared VM's vCPUs run faster or slower from minute to minute, and a run's CPU seconds
    grow with its wall time (CPU/wall 1.81-1.82 in every run of one benchmark, docs/benchmarks-history.md,
    finding 24), so the same FFmpeg work measured a minute apart differs by several seconds. Both runs' FFmpeg
    processes do the same work (the benchmark checks that they run the same argv), so the ratio of
    their CPU seconds is the ratio of the speeds they met. Whatever else makes (b) slower still counts:
    its own time outside FFmpeg, and any CPU its other processes (or the render task's HTTP reports)
    take from FFmpeg, which lengthens (b)'s wall time but not its FFmpeg CPU seconds. Not removed:
    time the hypervisor takes the vCPUs away (steal), which lengthens the wall time alone, in either
    run. Raises ValueError when ffmpeg_cpu_a is not positive.
    """
    if ffmpeg_cpu_a <= 0:
        raise ValueError(f"(a)'s FFmpeg CPU seconds must be positive, got {ffmpeg_cpu_a}")
    return wall_b - wall_a * ffmpeg_cpu_b / ffmpeg_cpu_a
