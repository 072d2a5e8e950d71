"""The benchmark's stopping rule for paired targets (pure: no third-party imports, unit-tested in
tests/unit/test_bench_median_interval.py). See BENCHMARKS.md "What is measured"."""
from __future__ import annotations

import math

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
