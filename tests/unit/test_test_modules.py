"""The suite's own layout: pytest imports test modules by basename (rootdir-relative packages are
not used), so two test files of one name in different folders stop the whole collection."""
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_modules_share_a_basename():
    names = Counter(p.name for p in TESTS.rglob("test_*.py") if ".venv" not in p.parts)
    assert [n for n, c in names.items() if c > 1] == []
