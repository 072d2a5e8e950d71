"""Local JobLauncher stand-ins (Cloud Run Jobs has no emulator).

SubprocessLauncher runs `python -m render_job` with the environment a Cloud Run task sees
(EXPORT_JOB_ID, CLOUD_RUN_JOB, CLOUD_RUN_EXECUTION, CLOUD_RUN_TASK_INDEX/COUNT/ATTEMPT;
https://cloud.google.com/run/docs/container-contract#jobs-env-vars) and, like Cloud Run, runs the
task again after a non-zero exit, up to `max_retries` more times.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from shared import logs


class SubprocessLauncher:
    """Starts each execution in a background thread; `launch` returns its name at once."""

    def __init__(self, job: str, max_retries: int = 3, python: str | None = None,
                 workdir: str | None = None, env: dict[str, str] | None = None, log_dir: str | None = None) -> None:
        self.job, self.max_retries = job, max_retries
        self.python = python or sys.executable
        self.workdir = workdir
        self.extra_env = env or {}
        self.log_dir = Path(log_dir) if log_dir else None
        self.executions: dict[str, threading.Thread] = {}
        self.exit_codes: dict[str, list[int]] = {}

    def launch(self, job_id: str) -> str:
        name = f"{self.job}-{uuid.uuid4().hex[:8]}"
        t = threading.Thread(target=self._run, args=(job_id, name), daemon=True, name=name)
        self.executions[name] = t
        self.exit_codes[name] = []
        t.start()
        return name

    def _run(self, job_id: str, execution: str) -> None:
        repo_root = Path(__file__).resolve().parents[2]
        for attempt in range(self.max_retries + 1):
            env = dict(os.environ)
            env.update(self.extra_env)
            env.update({
                "EXPORT_JOB_ID": job_id, "CLOUD_RUN_JOB": self.job, "CLOUD_RUN_EXECUTION": execution,
                "CLOUD_RUN_TASK_INDEX": "0", "CLOUD_RUN_TASK_COUNT": "1", "CLOUD_RUN_TASK_ATTEMPT": str(attempt),
                "PYTHONPATH": str(repo_root) + os.pathsep + env.get("PYTHONPATH", ""),
            })
            out = None
            if self.log_dir:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                out = open(self.log_dir / f"{execution}-{attempt}.log", "wb")
            try:
                code = subprocess.call([self.python, "-m", "render_job"], env=env, cwd=self.workdir or repo_root,
                                       stdout=out or None, stderr=subprocess.STDOUT if out else None)
            finally:
                if out:
                    out.close()
            self.exit_codes[execution].append(code)
            logs.info("render task exited", job_id=job_id, execution=execution, attempt=attempt, exitCode=code)
            if code == 0:
                return
        logs.error("render execution failed after retries", job_id=job_id, execution=execution)

    def wait(self, execution: str, timeout: float | None = None) -> None:
        """Block until the execution's thread ends (tests)."""
        self.executions[execution].join(timeout)


class RecordingLauncher:
    """In-memory JobLauncher: records launched job ids; `fail_next` injects TransientErrors."""

    def __init__(self) -> None:
        self.launched: list[str] = []
        self.fail_next = 0

    def launch(self, job_id: str) -> str:
        from shared.errors import TransientError

        if self.fail_next:
            self.fail_next -= 1
            raise TransientError("run_job failed (injected)")
        self.launched.append(job_id)
        return f"projects/local/locations/local/jobs/render/executions/exec-{len(self.launched)}"
