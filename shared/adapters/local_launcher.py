"""Local JobLauncher stand-ins (Cloud Run Jobs has no emulator).

SubprocessLauncher runs `python -m render_job` with the environment a Cloud Run task sees
(EXPORT_JOB_ID, CLOUD_RUN_JOB, CLOUD_RUN_EXECUTION, CLOUD_RUN_TASK_INDEX/COUNT/ATTEMPT;
https://cloud.google.com/run/docs/container-contract#jobs-env-vars) and, like Cloud Run, runs the
task again after a non-zero exit, up to `max_retries` more times. Each task runs in its own process
group; with a log_dir, `{log_dir}/{execution}.pgid` holds that group's id while the task runs, so
whoever owns the folder (infra/local/tasks.py, on a local stack's stop) can stop every task even
when the launcher's process is already gone.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from shared import logs
from shared.ports import ExecutionStatus


TASK_GROUP_SUFFIX = ".pgid"  # {log_dir}/{execution}.pgid: the running task's process group id


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
        self._states: dict[str, ExecutionStatus] = {}
        self._procs: dict[str, subprocess.Popen] = {}
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()

    def launch(self, job_id: str) -> str:
        name = f"{self.job}-{uuid.uuid4().hex[:8]}"
        t = threading.Thread(target=self._run, args=(job_id, name), daemon=True, name=name)
        self.executions[name] = t
        self.exit_codes[name] = []
        self._states[name] = ExecutionStatus("running")
        t.start()
        return name

    def status(self, execution_name: str) -> ExecutionStatus:
        """The execution's state; log_uri is its log file (every attempt appends to it) when log_dir is set."""
        state = self._states.get(execution_name)
        if state is None:
            return ExecutionStatus("missing", "unknown to this launcher")
        log = str((self.log_dir / f"{execution_name}.log").resolve()) if self.log_dir else None
        return dataclasses.replace(state, log_uri=log)

    def cancel(self, execution_name: str) -> None:
        """Stop the execution's current task (SIGTERM, then SIGKILL after 10 s) and run no retry."""
        with self._lock:
            self._cancelled.add(execution_name)
            proc = self._procs.get(execution_name)
        if proc is not None and proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)

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
                out = open(self.log_dir / f"{execution}.log", "ab")  # attempts append to one file
            with self._lock:
                if execution in self._cancelled:
                    break
                # its own process group, so a cancel also stops the FFmpeg it started
                started = time.monotonic()
                proc = subprocess.Popen([self.python, "-m", "render_job"], env=env, cwd=self.workdir or repo_root,
                                        stdout=out or None, stderr=subprocess.STDOUT if out else None,
                                        start_new_session=True)
                self._procs[execution] = proc
            group_file = self.log_dir / f"{execution}{TASK_GROUP_SUFFIX}" if self.log_dir else None
            if group_file:
                group_file.write_text(str(proc.pid))  # start_new_session: pgid == pid
            try:
                code = proc.wait()
            finally:
                if out:
                    out.close()
                if group_file:
                    group_file.unlink(missing_ok=True)
            self.exit_codes[execution].append(code)
            logs.info("render task exited", job_id=job_id, execution=execution, attempt=attempt, exitCode=code,
                      wallS=round(time.monotonic() - started, 3))  # process start to exit, seconds
            if code == 0:
                self._states[execution] = ExecutionStatus("succeeded")
                return
        if execution in self._cancelled:
            self._states[execution] = ExecutionStatus("cancelled", "the execution was cancelled")
            return
        codes = self.exit_codes[execution]
        self._states[execution] = ExecutionStatus(
            "failed", f"task failed {len(codes)} time(s); last exit code {codes[-1] if codes else None}")
        logs.error("render execution failed after retries", job_id=job_id, execution=execution)

    def wait(self, execution: str, timeout: float | None = None) -> None:
        """Block until the execution's thread ends (tests)."""
        self.executions[execution].join(timeout)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Signal the task's whole process group (render_job and its FFmpeg)."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class RecordingLauncher:
    """In-memory JobLauncher: records launched job ids and cancels; `fail_next` injects
    TransientErrors; `states` maps execution name -> ExecutionStatus (default running)."""

    def __init__(self) -> None:
        self.launched: list[str] = []
        self.cancelled: list[str] = []
        self.states: dict[str, ExecutionStatus] = {}
        self.fail_next = 0

    def status(self, execution_name: str) -> ExecutionStatus:
        return self.states.get(execution_name, ExecutionStatus("running"))

    def cancel(self, execution_name: str) -> None:
        self.cancelled.append(execution_name)

    def launch(self, job_id: str) -> str:
        from shared.errors import TransientError

        if self.fail_next:
            self.fail_next -= 1
            raise TransientError("run_job failed (injected)")
        self.launched.append(job_id)
        return f"projects/local/locations/local/jobs/render/executions/exec-{len(self.launched)}"
