"""The benchmark's stopping rule for paired targets and its b-a verdict (tests/bench/bench_stats.py:
median_interval, settled, b_minus_a)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from bench_stats import DIRECT, SPLIT, b_minus_a, median_interval, settled  # noqa: E402


def test_four_values_give_min_to_max_at_87_5_percent():
    assert median_interval([3.5, -4.7, 6.8, 0.8]) == (-4.7, 6.8, 0.875)


def test_more_values_narrow_the_interval_to_inner_order_statistics():
    lo, hi, cov = median_interval([float(v) for v in range(1, 9)])  # 8 values: 2nd and 7th, 1 - 18/256
    assert (lo, hi) == (2.0, 7.0) and cov == pytest.approx(1 - 18 / 256)
    lo, hi, cov = median_interval([float(v) for v in range(10, 0, -1)])  # 10 values: 3rd and 8th, 1 - 112/1024
    assert (lo, hi) == (3.0, 8.0) and cov == pytest.approx(1 - 112 / 1024)


def test_settled_only_when_the_interval_is_on_one_side_of_the_target():
    assert settled([0.3, 1.0, 1.9, 0.8], 2.0)          # all at or below: passes for sure
    assert settled([2.1, 3.0, 2.5, 4.0], 2.0)          # all above: fails for sure
    assert not settled([0.3, 1.0, 2.16, 0.8], 2.0)     # one pair above: more pairs needed
    assert settled([1.06, 1.07, 1.06, 1.15], 1.30)
    assert not settled([0.3, 1.0, 0.8], 2.0)           # 3 values: min..max covers only 75 %


def test_no_values_is_an_error():
    with pytest.raises(ValueError):
        median_interval([])


# b-a per pair of the 15:54 run on a busy host (BENCHMARKS.md), split as the benchmark splits it:
# outside the render step ~0.6 s every pair, the render step's difference the machine's noise
TOTAL = [6.06, -1.22, 0.34, -3.37, 12.13, 3.70, 6.83, 7.56, -0.05, -6.38]
OUTSIDE = [0.62, 0.55, 0.71, 0.58, 0.66, 0.60, 0.64, 0.59, 0.57, 0.70]
STEP = [t - o for t, o in zip(TOTAL, OUTSIDE)]
OTHERS = [0.31, 0.28, 0.35, 0.30, 0.29, 0.33, 0.30, 0.32, 0.27, 0.34]


def test_b_minus_a_settled_pairs_give_the_direct_median():
    assert b_minus_a([0.3, 1.0, 1.9, 0.8], OUTSIDE[:4], STEP[:4], OTHERS[:4], True, 2.0) == (0.9, DIRECT)
    assert b_minus_a([2.1, 3.0, 2.5, 4.0], OUTSIDE[:4], STEP[:4], OTHERS[:4], True, 2.0) == (2.75, DIRECT)


def test_b_minus_a_unsettled_pairs_split_at_the_render_step():
    value, how = b_minus_a(TOTAL, OUTSIDE, STEP, OTHERS, True, 2.0)
    assert how == SPLIT
    assert value == pytest.approx(0.61 + 0.305)  # median outside + median other processes' CPU


def test_b_minus_a_stays_direct_when_the_render_step_is_shown_slower_in_b():
    step = [abs(v) + 0.5 for v in STEP]  # every pair's render step slower in (b): a real penalty
    total = [o + v for o, v in zip(OUTSIDE, step)]
    value, how = b_minus_a(total, OUTSIDE, step, OTHERS, True, 2.0)
    assert how == DIRECT and value == pytest.approx(sorted(total)[4] / 2 + sorted(total)[5] / 2)


def test_b_minus_a_stays_direct_when_the_work_differed_or_parts_are_missing():
    assert b_minus_a(TOTAL, OUTSIDE, STEP, OTHERS, False, 2.0) == (pytest.approx(2.02), DIRECT)
    assert b_minus_a(TOTAL, [], [], [], True, 2.0) == (pytest.approx(2.02), DIRECT)
    with pytest.raises(ValueError):
        b_minus_a([], [], [], [], True, 2.0)
