"""The local JobLauncher stand-in (Cloud Run Jobs has no emulator; the in-memory test double,
RecordingLauncher, is in tests/fakes.py).

SubprocessLauncher runs `python -m render_job` with the environment a Cloud Run task sees
(EXPORT_JOB_ID, CLOUD_RUN_JOB, CLOUD_RUN_EXECUTION, CLOUD_RUN_TASK_INDEX/COUNT/ATTEMPT;
https://cloud.google.com/run/docs/container-contract#jobs-env-vars) and, like Cloud Run, runs the
task again after a non-zero exit, up to `max_retries` more times. With an `image`, each task is
that image run by podman instead (its own entry point and user, host network for the loopback
stack, read-only root with a tmpfs /tmp), given the task's settings (container_env). Each task runs in its own process
group; with a log_dir, `{log_dir}/{execution}.pgid` holds that group's id while the task runs, so
whoever owns the folder (infra/local/tasks.py, on a local stack's stop) can stop every task even
when the launcher's process is already gone.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from shared import logs
from shared.ports import ExecutionStatus


NOT_STARTED = 127  # an attempt's exit code when its command could not be run (as a shell reports it)
TASK_GROUP_SUFFIX = ".pgid"  # {log_dir}/{execution}.pgid: the running task's process group id
# what a container task is given: the settings a Cloud Run task has (shared.config names, the emulator
# host), never this machine's paths or interpreter
CONTAINER_ENV_PREFIXES = ("EXPORT_", "RENDER_", "CLOUD_RUN_", "GOOGLE_", "FFMPEG_THREADS", "STORAGE_EMULATOR_HOST")
CONTAINER_NPROC = 4096  # processes and threads of the task's user: FFmpeg's threads and the job's pools
HOST_ONLY_ENV = frozenset({"RENDER_PYTHON", "RENDER_WORKDIR", "RENDER_CONTAINER_IMAGE", "FFMPEG_BINARY",
                           "GOOGLE_APPLICATION_CREDENTIALS", "EXPORT_LOCAL_STORAGE_DIR",
                           "EXPORT_CLIENT_TOKEN"})  # the functions' caller token: no task has it


def container_env(env: dict[str, str]) -> list[str]:
    """Names of the variables of `env` a container task gets (CONTAINER_ENV_PREFIXES, not HOST_ONLY_ENV)."""
    return sorted(k for k in env if k.startswith(CONTAINER_ENV_PREFIXES) and k not in HOST_ONLY_ENV)


def container_argv(image: str, name: str, env: dict[str, str], engine: str = "podman") -> list[str]:
    """`podman run` of one task: the image's entry point and USER, host network (the local stack
    listens on loopback), read-only root with a tmpfs /tmp (the job's only scratch space, in memory
    as on Cloud Run), the launcher's own open-file limits and CONTAINER_NPROC (podman's defaults
    exceed some hosts' hard limits: runc then refuses to start), each variable of
    container_env(env) passed by name and no other (--http-proxy=false: podman would copy the
    host's proxy variables)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limits = [f"--ulimit=nofile={soft}:{hard}"] if hard != resource.RLIM_INFINITY else []
    limits.append(f"--ulimit=nproc={CONTAINER_NPROC}:{CONTAINER_NPROC}")
    runtime = ["--runtime", "runc"] if engine.endswith("podman") and shutil.which("runc") else []
    return [engine, *runtime, "run", "--rm", f"--name={name}", "--network=host", "--http-proxy=false", "--read-only",
            "--read-only-tmpfs=false", "--tmpfs=/tmp:rw,mode=1777", *limits,
            *(f"--env={k}" for k in container_env(env)), image]


class SubprocessLauncher:
    """Starts each execution in a background thread; `launch` returns its name at once."""

    def __init__(self, job: str, max_retries: int = 3, python: str | None = None,
                 workdir: str | None = None, env: dict[str, str] | None = None, log_dir: str | None = None,
                 image: str | None = None) -> None:
        self.job, self.max_retries = job, max_retries
        self.python = python or sys.executable
        self.image = image
        self.workdir = workdir
        self.extra_env = env or {}
        self.log_dir = Path(log_dir) if log_dir else None
        self.executions: dict[str, threading.Thread] = {}
        self.exit_codes: dict[str, list[int]] = {}
        self._states: dict[str, ExecutionStatus] = {}
        self._procs: dict[str, subprocess.Popen] = {}
        self._containers: dict[str, str] = {}  # execution -> the container of its current attempt
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
            container = self._containers.get(execution_name)
        if container and proc is not None and proc.poll() is None:
            # podman's client forwards SIGTERM, but a SIGKILL of it would leave the container running
            subprocess.run(["podman", "rm", "--force", "--time=10", container], capture_output=True, timeout=60)
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
                argv = [self.python, "-m", "render_job"]
                if self.image:
                    self._containers[execution] = f"{execution}-{attempt}"
                    argv = container_argv(self.image, self._containers[execution], env)
                try:
                    proc = subprocess.Popen(argv, env=env, cwd=self.workdir or repo_root,
                                            stdout=out or None, stderr=subprocess.STDOUT if out else None,
                                            start_new_session=True)
                except OSError as exc:  # no such interpreter or podman: a failed attempt, never a stuck execution
                    logs.error("render task could not start", job_id=job_id, execution=execution, attempt=attempt,
                               command=argv[0], error=str(exc))
                    if out:
                        out.close()
                    self.exit_codes[execution].append(NOT_STARTED)
                    continue
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
                if self.image:  # a client stopped before its container started can leave it "Created"
                    subprocess.run(["podman", "rm", "--force", "--ignore", self._containers[execution]],
                                   capture_output=True, timeout=60)
            self.exit_codes[execution].append(code)
            logs.info("render task exited", job_id=job_id, execution=execution, attempt=attempt, exitCode=code,
                      wallS=round(time.monotonic() - started, 3))  # process start to exit, seconds
            if code == 0 and execution not in self._cancelled:  # a cancelled client may still exit 0
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

