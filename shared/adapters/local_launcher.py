"""The local JobLauncher stand-in (Cloud Run Jobs has no emulator; the in-memory test double,
RecordingLauncher, is in tests/fakes.py).

SubprocessLauncher runs `python -m render_job` with the environment a Cloud Run task sees
(what the execution is told, shared.executions: EXPORT_JOB_ID, ...; CLOUD_RUN_JOB, CLOUD_RUN_EXECUTION,
CLOUD_RUN_TASK_INDEX/COUNT/ATTEMPT; https://cloud.google.com/run/docs/container-contract#jobs-env-vars)
and, like Cloud Run, runs a task again after a non-zero exit, up to `max_retries` more times; an
execution of K tasks runs K such processes, at most `parallelism` at once. With an `image`, each task is
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from shared import logs
from shared.executions import MAX_TASKS, check_parts, render_env, render_task_count, stitch_env
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
    """Starts each execution in a background thread; `launch` returns its name at once.

    An execution of K tasks (launch(parts=P): K = P + 1 for P >= 2; the stitch: launch_stitch) runs them as K
    subprocesses, at most `parallelism` at once (EXPORT_LOCAL_TASK_PARALLELISM), each told its
    CLOUD_RUN_TASK_INDEX (0..K-1) and CLOUD_RUN_TASK_COUNT=K and retried on its own, as Cloud Run
    does; the execution succeeds when every task has, and fails when any task has failed all its
    attempts (the others still run to their end). Every task appends to the execution's one log
    file; a task's process group file is {execution}.pgid for one task, {execution}-t{index}.pgid of K.
    """

    def __init__(self, job: str, max_retries: int = 3, python: str | None = None,
                 workdir: str | None = None, env: dict[str, str] | None = None, log_dir: str | None = None,
                 image: str | None = None, *, stitch_job: str | None = None, parallelism: int = 2,
                 max_parts: int = MAX_TASKS) -> None:
        if parallelism < 1:
            raise ValueError(f"parallelism must be at least 1, not {parallelism}")
        self.job, self.max_retries = job, max_retries
        self.stitch_job, self.parallelism, self.max_parts = stitch_job, parallelism, max_parts
        self.python = python or sys.executable
        self.image = image
        self.workdir = workdir
        self.extra_env = env or {}
        self.log_dir = Path(log_dir) if log_dir else None
        self.executions: dict[str, threading.Thread] = {}
        self.exit_codes: dict[str, list[int]] = {}  # execution -> every attempt's exit code, as they end
        self.task_exit_codes: dict[tuple[str, int], list[int]] = {}  # (execution, task index) -> its attempts'
        self._states: dict[str, ExecutionStatus] = {}
        self._procs: dict[tuple[str, int], subprocess.Popen] = {}  # (execution, task index) -> current attempt
        self._containers: dict[tuple[str, int], str] = {}  # (execution, task index) -> its attempt's container
        self._cancelled: set[str] = set()
        self._lock = threading.RLock()  # _exited is called with it held (a task that could not start)

    def launch(self, job_id: str, *, parts: int = 1, min_part_s: float | None = None) -> str:
        check_parts(parts, self.max_parts)
        return self._start(self.job, job_id, render_env(job_id, parts, min_part_s), render_task_count(parts))

    def launch_stitch(self, job_id: str, part_count: int, min_part_s: float | None = None) -> str:
        if not self.stitch_job:
            raise ValueError("no stitch job configured (RENDER_STITCH_JOB_NAME)")
        return self._start(self.stitch_job, job_id, stitch_env(job_id, part_count, min_part_s), 1)

    def _start(self, job: str, job_id: str, env: list[tuple[str, str]], task_count: int) -> str:
        name = f"{job}-{uuid.uuid4().hex[:8]}"
        t = threading.Thread(target=self._run, args=(job, job_id, name, dict(env), task_count), daemon=True,
                             name=name)
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
        """Stop every running task of the execution (SIGTERM, then SIGKILL after 10 s) and start no
        other task or retry."""
        with self._lock:
            self._cancelled.add(execution_name)
            running = [(key, proc, self._containers.get(key)) for key, proc in self._procs.items()
                       if key[0] == execution_name and proc.poll() is None]
        for _, proc, container in running:
            if container:
                # podman's client forwards SIGTERM, but a SIGKILL of it would leave the container running
                subprocess.run(["podman", "rm", "--force", "--time=10", container], capture_output=True, timeout=60)
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, proc, _ in running:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)

    def _run(self, job: str, job_id: str, execution: str, told: dict[str, str], task_count: int) -> None:
        """Run the execution's tasks, at most `parallelism` at once, then record its state."""
        with ThreadPoolExecutor(max_workers=min(self.parallelism, task_count),
                                thread_name_prefix=execution) as pool:
            done = list(pool.map(lambda index: self._run_task(job, job_id, execution, told, index, task_count),
                                 range(task_count)))
        if execution in self._cancelled:
            self._states[execution] = ExecutionStatus("cancelled", "the execution was cancelled")
            return
        if all(done):
            self._states[execution] = ExecutionStatus("succeeded")
            return
        if task_count == 1:
            codes = self.exit_codes[execution]
            reason = f"task failed {len(codes)} time(s); last exit code {codes[-1] if codes else None}"
        else:
            failed = [i for i, ok in enumerate(done) if not ok]
            last = self.task_exit_codes.get((execution, failed[-1])) or [None]
            reason = (f"{len(failed)} of {task_count} task(s) failed every attempt (tasks "
                      f"{', '.join(map(str, failed))}); last exit code {last[-1]}")
        self._states[execution] = ExecutionStatus("failed", reason)
        logs.error("render execution failed after retries", job_id=job_id, execution=execution)

    def _run_task(self, job: str, job_id: str, execution: str, told: dict[str, str], index: int,
                  task_count: int) -> bool:
        """Run one task's attempts until one exits 0 (True), the retries are spent or the execution
        is cancelled (False)."""
        repo_root = Path(__file__).resolve().parents[2]
        key = (execution, index)
        task = execution if task_count == 1 else f"{execution}-t{index}"  # its pgid file and container
        self.task_exit_codes[key] = []
        for attempt in range(self.max_retries + 1):
            env = dict(os.environ)
            env.update(self.extra_env)
            env.update(told)
            env.update({
                "CLOUD_RUN_JOB": job, "CLOUD_RUN_EXECUTION": execution,
                "CLOUD_RUN_TASK_INDEX": str(index), "CLOUD_RUN_TASK_COUNT": str(task_count),
                "CLOUD_RUN_TASK_ATTEMPT": str(attempt),
                "PYTHONPATH": str(repo_root) + os.pathsep + env.get("PYTHONPATH", ""),
            })
            out = None
            if self.log_dir:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                out = open(self.log_dir / f"{execution}.log", "ab")  # every task's attempts append to one file
            with self._lock:
                if execution in self._cancelled:
                    if out:
                        out.close()
                    return False
                # its own process group, so a cancel also stops the FFmpeg it started
                started = time.monotonic()
                argv = [self.python, "-m", "render_job"]
                if self.image:
                    self._containers[key] = f"{task}-{attempt}"
                    argv = container_argv(self.image, self._containers[key], env)
                try:
                    proc = subprocess.Popen(argv, env=env, cwd=self.workdir or repo_root,
                                            stdout=out or None, stderr=subprocess.STDOUT if out else None,
                                            start_new_session=True)
                except OSError as exc:  # no such interpreter or podman: a failed attempt, never a stuck execution
                    logs.error("render task could not start", job_id=job_id, execution=execution, attempt=attempt,
                               taskIndex=index, command=argv[0], error=str(exc))
                    if out:
                        out.close()
                    self._exited(key, NOT_STARTED)
                    continue
                self._procs[key] = proc
            group_file = self.log_dir / f"{task}{TASK_GROUP_SUFFIX}" if self.log_dir else None
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
                    subprocess.run(["podman", "rm", "--force", "--ignore", self._containers[key]],
                                   capture_output=True, timeout=60)
            self._exited(key, code)
            logs.info("render task exited", job_id=job_id, execution=execution, attempt=attempt, taskIndex=index,
                      exitCode=code, wallS=round(time.monotonic() - started, 3))  # process start to exit, seconds
            if code == 0 and execution not in self._cancelled:  # a cancelled client may still exit 0
                return True
            if execution in self._cancelled:
                return False
        return False

    def _exited(self, key: tuple[str, int], code: int) -> None:
        with self._lock:
            self.task_exit_codes[key].append(code)
            self.exit_codes[key[0]].append(code)

    def wait(self, execution: str, timeout: float | None = None) -> None:
        """Block until the execution's thread ends (tests)."""
        self.executions[execution].join(timeout)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Signal the task's whole process group (render_job and its FFmpeg)."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass

