"""The benchmark's "(a) Python peak RSS" (tests/bench/render_child.py: own_peak_rss_kb) is the render
job's own, not inherited from the benchmark process that started it."""
import os
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



# a "task" whose "step" child runs 2 s; beside it a process that is not the task burns 0.6 CPU s
# once the step has started (the step creates a flag file, the busy process waits for it)
STEP = "import pathlib, sys, time; pathlib.Path(sys.argv[1]).touch(); time.sleep(2.0)"
TASK = "import subprocess, sys; subprocess.run([sys.executable, '-c', sys.argv[1], sys.argv[2], 'step-marker'])"
BUSY = ("import os, sys, time\n"
        "while not os.path.exists(sys.argv[1]): time.sleep(0.02)\n"
        "t0 = time.process_time()\n"
        "while time.process_time() - t0 < 0.6: pass\n"
        "time.sleep(30)")


def test_rss_sampler_counts_the_cpu_of_the_other_processes_while_the_step_runs(tmp_path):
    sys.path.insert(0, str(BENCH))
    from measure import RssSampler

    flag = str(tmp_path / "step-started")
    busy = subprocess.Popen([sys.executable, "-c", BUSY, flag])
    try:
        with RssSampler(os.getpid(), task="task-marker", step="step-marker") as sampler:
            subprocess.run([sys.executable, "-c", TASK, STEP, flag, "task-marker"], timeout=60, check=True)
    finally:
        busy.kill()
        busy.wait()
    # the busy process's 0.6 s and none of the task's or the step's own (the sampler's thread is
    # left out too: it is in cpu_s)
    assert 0.45 <= sampler.others_step_cpu_s <= 1.0, sampler.others_step_cpu_s
    assert sampler.cpu_s > 0.0
