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
SPLIT = "split (outside the render step + other processes' CPU during it)"


def b_minus_a(total: list[float], outside: list[float], render_step: list[float], others_cpu: list[float],
              same_work: bool, target: float) -> tuple[float, str]:
    """The b-a verdict value (seconds) and how it was reached (DIRECT or SPLIT), from per-pair figures.

    Per pair of (b) and (a) run back to back: `total` = b - a wall seconds; `render_step` = (b)'s
    FFmpeg render step seconds - (a)'s (each run's `timings.render_s`); `outside` = total -
    render_step, the pipeline's own time (export_start, uploads, events, dispatch, the task's start,
    downloads, upload, report) less the job-alone's; `others_cpu` = CPU seconds that every process of
    (b) but the render task used while the render step ran (gateway, storage emulator, client;
    measure.RssSampler). `same_work`: (b)'s render step ran the very argv of (a)'s.

    - `total` settled against `target` (settled()): its median, DIRECT.
    - Else, when the render step ran the same argv and its difference is not shown to be positive
      (the median interval of `render_step` reaches 0 or below): the render step is the same FFmpeg
      work on the same machine, and the only way the pipeline can slow it is to take CPU from it:
      at most `others_cpu` seconds (all of it, as if none ran on the CPU that FFmpeg left idle,
      so it over-states). The noise of the machine's speed during the step (several seconds a pair on a
      busy host; BENCHMARKS.md finding 24) is left out: median(outside) + median(others_cpu), SPLIT.
    - Else (a penalty is shown, or the work differed, or the parts are missing): the median of
      `total`, DIRECT, settled or not.
    Raises ValueError when `total` is empty.
    """
    if not total:
        raise ValueError("b_minus_a of no pairs")
    direct = statistics.median(total)
    if settled(total, target) or not same_work or not outside or not others_cpu or not render_step:
        return direct, DIRECT
    lo, _, _ = median_interval(render_step)
    if lo > 0:
        return direct, DIRECT
    return statistics.median(outside) + statistics.median(others_cpu), SPLIT
