"""Process and readiness helpers every local stand-in shares.

`Service` is the base of every stand-in: `start()` blocks until it answers (else `ServiceError`
with the tail of its log), `stop()` ends it, and it is a context manager. `ProcessService` runs a
subprocess in its own session (`kill_group` ends it and all it spawned), logging to
`run_dir/NAME.log`; run folders are `.local/runs/PREFIX-TIMESTAMP-XXXX` (`make_run_dir`).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]


def is_root() -> bool:
    return getattr(os, "geteuid", lambda: -1)() == 0


class ServiceError(RuntimeError):
    """A local service could not be started (the message carries the tail of its log)."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: Path | None, lines: int = 30) -> str:
    if not path or not Path(path).exists():
        return ""
    text = Path(path).read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def wait_until(check: Callable[[], bool], timeout_s: float, what: str,
               proc: subprocess.Popen | None = None, log: Path | None = None,
               interval_s: float = 0.1) -> None:
    """Poll `check()` until it returns True; raise ServiceError on timeout or if `proc` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"{what} exited with code {proc.returncode} while starting\n{log_tail(log)}")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(interval_s)
    raise ServiceError(f"{what} not ready after {timeout_s:.0f} s\n{log_tail(log)}")


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    try:
        return requests.get(url, timeout=timeout_s).status_code < 500
    except requests.RequestException:
        return False


def kill_group(proc: subprocess.Popen | None, timeout_s: float = 10.0) -> None:
    """Stop a process started with start_new_session=True and everything it spawned."""
    if proc is None or proc.poll() is not None:
        return
    if not hasattr(os, "killpg"):  # Windows: no process groups; terminate the leader
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        return
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        return
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    # children (e.g. java under gcloud) may outlive the leader for a moment
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def make_run_dir(prefix: str = "run", base: str | os.PathLike | None = None) -> Path:
    """A fresh folder for logs and data: .local/runs/PREFIX-TIMESTAMP-XXXX under the repo."""
    base = Path(base) if base else REPO_ROOT / ".local" / "runs"
    base.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-{stamp}-", dir=base))


class Service:
    """Base: context manager calling start()/stop()."""

    name = "service"

    def start(self):  # pragma: no cover - overridden
        return self

    def stop(self) -> None:  # pragma: no cover - overridden
        pass

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


class ProcessService(Service):
    """A subprocess in its own session, output to `run_dir/NAME.log`."""

    def __init__(self, run_dir: str | os.PathLike | None = None) -> None:
        self.run_dir = Path(run_dir) if run_dir else make_run_dir(self.name)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.run_dir / f"{self.name}.log"
        self.proc: subprocess.Popen | None = None
        self._log = None

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None,
               cwd: str | os.PathLike | None = None) -> subprocess.Popen:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                     start_new_session=True)
        return self.proc

    def stop(self) -> None:
        kill_group(self.proc)
        if self._log:
            self._log.close()
            self._log = None
