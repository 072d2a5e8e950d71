"""The benchmark's stopping rule for paired targets and its b-a verdict (tests/bench/bench_stats.py:
median_interval, settled, b_minus_a)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from bench_stats import DIRECT, NORMALIZED, b_minus_a, b_minus_a_normalized, median_interval, settled  # noqa: E402


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



# b-a per pair of the 15:54 run on a busy host (docs/benchmarks-history.md), and a synthetic companion
# series of b-a at (b)'s CPU speed, spread as in the 17:27 run (finding 24 there)
TOTAL = [6.06, -1.22, 0.34, -3.37, 12.13, 3.70, 6.83, 7.56, -0.05, -6.38]
NORMALIZED_S = [0.56, 0.15, 0.50, 0.83, 1.06, -0.69, 1.86, 0.69, 0.42, 8.53]


def test_b_minus_a_settled_pairs_give_the_direct_median():
    assert b_minus_a([0.3, 1.0, 1.9, 0.8], NORMALIZED_S[:4], 2.0) == (0.9, DIRECT, True)
    assert b_minus_a([2.1, 3.0, 2.5, 4.0], NORMALIZED_S[:4], 2.0) == (2.75, DIRECT, True)


def test_b_minus_a_unsettled_pairs_fall_back_to_the_cpu_speed_normalized_pairs():
    value, how, done = b_minus_a(TOTAL, NORMALIZED_S, 2.0)
    assert (how, done) == (NORMALIZED, True)
    assert value == pytest.approx((0.56 + 0.69) / 2)  # the median of NORMALIZED_S


def test_b_minus_a_stays_direct_and_unsettled_when_neither_series_settles():
    assert b_minus_a(TOTAL, [0.5, 3.0, 2.5, -1.0], 2.0) == (pytest.approx(2.02), DIRECT, False)
    assert b_minus_a(TOTAL, [], 2.0) == (pytest.approx(2.02), DIRECT, False)
    with pytest.raises(ValueError):
        b_minus_a([], [], 2.0)


def test_normalized_b_minus_a_scales_a_to_the_cpu_speed_b_met():
    # (b) met a 20 % slower CPU: its FFmpeg needed 96 CPU s for what took (a) 80; (a) took 40 s
    assert b_minus_a_normalized(49.0, 40.0, 96.0, 80.0) == pytest.approx(1.0)  # 49 - 48
    # the same speed: plain b - a
    assert b_minus_a_normalized(41.5, 40.0, 80.0, 80.0) == pytest.approx(1.5)
    # CPU taken from (b)'s FFmpeg by other processes lengthens its wall time, not its CPU seconds
    assert b_minus_a_normalized(43.0, 40.0, 80.0, 80.0) == pytest.approx(3.0)
    with pytest.raises(ValueError):
        b_minus_a_normalized(40.0, 40.0, 80.0, 0.0)
