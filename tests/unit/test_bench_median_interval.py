"""The benchmark's stopping rule for paired targets (tests/bench/bench_stats.py: median_interval, settled)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from bench_stats import median_interval, settled  # noqa: E402


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
