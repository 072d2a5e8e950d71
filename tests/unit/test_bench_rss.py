"""The benchmark's "(a) Python peak RSS" (tests/bench/render_child.py: own_peak_rss_kb) is the render
job's own, not inherited from the benchmark process that started it."""
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"
CHILD = ("import resource, sys; sys.path.insert(0, sys.argv[1]); import render_child; "
         "print(render_child.own_peak_rss_kb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")


def test_a_child_of_a_big_process_reports_only_its_own_peak():
    big = bytearray(300 * 2**20)
    for i in range(0, len(big), 4096):  # touch every page: 300 MB resident in this process
        big[i] = 1
    out = subprocess.run([sys.executable, "-c", CHILD, str(BENCH)], capture_output=True, text=True, timeout=60)
    own_kb, ru_kb = (int(v) for v in out.stdout.split())
    assert ru_kb >= 300 * 1024      # what getrusage says on Linux: the parent's pages, folded in at exec
    assert own_kb < 100 * 1024      # the child's own peak: an interpreter importing the stdlib
    del big
