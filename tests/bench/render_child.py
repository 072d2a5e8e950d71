"""(a) Our render job alone, as a process of its own: render_job.job.run_export on a job staged in
a LocalStorage folder, with a reporter that only records (no HTTP), FFmpeg from find_ffmpeg.

    python tests/bench/render_child.py STORAGE_ROOT JOB_ID RESULT_JSON [WORKDIR]

WORKDIR (optional, created) is kept afterwards so that the benchmark can re-run our FFmpeg command
in it (per-filter costs); without it a temporary folder is used and removed.

Writes RESULT_JSON: {status, error, output, timings, reports, self: {maxrss_kb, user_s, sys_s},
children: {maxrss_kb, user_s, sys_s}}: `self` is this Python process alone (peak RSS exact: see
own_peak_rss_kb), `children` every FFmpeg it ran (largest one's peak RSS).
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

IN, OUT = "bench-in", "bench-out"


class RecordingReporter:
    rejected = False

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def running(self, stage, progress, force=False):
        self.calls.append({"status": "running", "stage": stage, "progress": round(progress, 3)})
        return True

    def succeeded(self, output):
        self.calls.append({"status": "succeeded"})
        return True

    def failed(self, code, message):
        self.calls.append({"status": "failed", "code": code, "message": message})
        return True

    def handoff(self, parts, stage, progress):
        """No answer (render_job.handoff.hand_over): the task renders the whole export, as the bench's
        (s) measures today's single task even when the output is long enough for a parallel render."""
        self.calls.append({"status": "running", "stage": stage, "progress": round(progress, 3), "handoff": parts})
        return None


def _ru(who: int) -> dict:
    r = resource.getrusage(who)
    return {"maxrss_kb": r.ru_maxrss, "user_s": r.ru_utime, "sys_s": r.ru_stime}


def own_peak_rss_kb() -> int:
    """This process's own peak RSS in kB: VmHWM of /proc/self/status (Linux), else ru_maxrss.

    Not getrusage(RUSAGE_SELF).ru_maxrss: on Linux, exec folds the peak RSS of the address space it
    replaces into the process's maxrss (fs/exec.c, exec_mmap), and that address space was the
    parent's (vfork) or a copy of it (fork), so a child of a 400 MB process reports >= 400 MB however
    little it uses. VmHWM belongs to the address space created by exec: only this program's pages.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv: list[str]) -> int:
    root, job_id, result_path = argv[:3]
    keep = argv[3] if len(argv) > 3 else None
    from render_job.job import run_export
    from shared.adapters.local_storage import LocalStorage
    from shared.config import Settings

    storage = LocalStorage(root)
    settings = Settings(input_bucket=IN, output_bucket=OUT, render_max_retries=0,
                        ffmpeg_binary=os.environ.get("FFMPEG_BINARY") or None,
                        # a busy machine must not turn the measurement into a watchdog kill
                        render_timeout_base_s=float(os.environ.get("RENDER_TIMEOUT_BASE_S") or 900),
                        render_segment_scenes=int(os.environ.get("RENDER_SEGMENT_SCENES") or
                                                  Settings.model_fields["render_segment_scenes"].default),
                        # bench_chunks: one encoding run or scene chunks (render_job.job._render)
                        render_parallel_after_s=float(os.environ.get("RENDER_PARALLEL_AFTER_S") or
                                                      Settings.model_fields["render_parallel_after_s"].default),
                        render_max_parts=int(os.environ.get("RENDER_MAX_PARTS") or
                                             Settings.model_fields["render_max_parts"].default))
    reporter = RecordingReporter()
    if keep:
        os.makedirs(keep, exist_ok=True)
    workdir = keep or tempfile.mkdtemp(prefix="bench-render-")
    try:
        result = run_export(job_id, storage, reporter, settings, workdir)
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    data = {"status": result.status, "error": result.error, "output": result.output,
            "timings": result.timings, "reports": len(reporter.calls),
            "self": {**_ru(resource.RUSAGE_SELF), "maxrss_kb": own_peak_rss_kb()},
            "children": _ru(resource.RUSAGE_CHILDREN)}
    Path(result_path).write_text(json.dumps(data, indent=1, default=str))
    return 0 if result.status == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
