"""A throwaway PostgreSQL cluster (initdb + pg_ctl) on a free loopback port, database `sceneflow`.

`Postgres(...).start()` sets `.url` (postgresql+pg8000://postgres@127.0.0.1:PORT/sceneflow);
`stop_server`/`start_server`/`restart` take the server down and up on the same data (fault tests).
Errors: `ServiceError` with initdb's or pg_ctl's output. As root the tools run as user `postgres`.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from infra.local.process import Service, ServiceError, free_port, is_root, log_tail


def postgres_bindir() -> Path | None:
    """The folder holding initdb/pg_ctl/postgres of one PostgreSQL version, or None."""
    candidates: list[Path] = []
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                    key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
                    reverse=True):
        candidates.append(Path(d))
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))
    except (OSError, subprocess.SubprocessError):
        pass
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for d in candidates:
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    return None


def postgres_available() -> bool:
    bindir = postgres_bindir()
    if bindir is None:
        return False
    if is_root():
        import pwd
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return False
        return shutil.which("runuser") is not None
    return True


class Postgres(Service):
    """A throwaway PostgreSQL cluster on 127.0.0.1:PORT with database `sceneflow`, trust auth.

    As root, initdb/pg_ctl run as the `postgres` user (initdb refuses root). The cluster lives in
    a temp folder owned by that user; `stop()` shuts it down and removes it (the server log is
    copied to `run_dir/postgres.log` first).
    """

    name = "postgres"

    def __init__(self, run_dir: str | os.PathLike | None = None, port: int | None = None,
                 database: str = "sceneflow", base_dir: str | os.PathLike | None = None,
                 keep: bool = False) -> None:
        self.run_dir = Path(run_dir) if run_dir else None
        self.port = port or free_port()
        self.database = database
        self.keep = keep
        self.bindir = postgres_bindir()
        self.dir = Path(base_dir) if base_dir else None
        self.url: str | None = None
        self._started = False

    # run a postgres tool, as the postgres user when we are root
    def _run(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        if is_root():
            argv = ["runuser", "-u", "postgres", "--", *argv]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd="/")

    @property
    def data_dir(self) -> Path:
        assert self.dir is not None
        return self.dir / "data"

    @property
    def server_log(self) -> Path:
        assert self.dir is not None
        return self.dir / "server.log"

    def start(self) -> "Postgres":
        if self.bindir is None:
            raise ServiceError("PostgreSQL not found (no initdb in /usr/lib/postgresql/*/bin, "
                               "pg_config --bindir or PATH)")
        if self.dir is None:
            self.dir = Path(tempfile.mkdtemp(prefix="sceneflow-pg-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        if is_root():
            shutil.chown(self.dir, "postgres", "postgres")
            os.chmod(self.dir, 0o700)
        r = self._run([str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                       "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"])
        if r.returncode != 0:
            raise ServiceError(f"initdb failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
        self._started = True
        self.start_server()
        self._create_database()
        self.url = f"postgresql+pg8000://postgres@127.0.0.1:{self.port}/{self.database}"
        return self

    def start_server(self) -> None:
        """Start the (initialised) cluster's server and wait until it accepts connections."""
        # 300 connections: the suite's stacks each keep a pool beside a race test's 50 requests at once
        # (a refused connection there would break the race, not show a defect)
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=300")
        r = self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-l",
                       str(self.server_log), "-o", opts, "-w", "-t", "60", "start"])
        if r.returncode != 0:
            raise ServiceError(f"pg_ctl start failed ({r.returncode}):\n{r.stdout[-2000:]}\n"
                               f"{r.stderr[-2000:]}\n{log_tail(self.server_log)}")

    def stop_server(self, mode: str = "fast") -> None:
        """Stop the server but keep the cluster (fault tests): `fast` ends every session with
        FATAL 57P01, `immediate` drops them like a crash. Undo with start_server()."""
        r = self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode,
                       "-w", "-t", "60", "stop"])
        if r.returncode != 0:
            raise ServiceError(f"pg_ctl stop failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")

    def restart(self, mode: str = "fast", down_s: float = 0.0) -> None:
        """Stop the server, stay down for `down_s` seconds, start it again (same port and data)."""
        self.stop_server(mode)
        if down_s > 0:
            time.sleep(down_s)
        self.start_server()

    def _create_database(self) -> None:
        import pg8000.native

        deadline = time.monotonic() + 30
        while True:
            try:
                conn = pg8000.native.Connection("postgres", host="127.0.0.1", port=self.port,
                                                database="postgres")
                break
            except Exception:  # noqa: BLE001 - still starting
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        try:
            exists = conn.run("SELECT 1 FROM pg_database WHERE datname = :d", d=self.database)
            if not exists:
                conn.run(f'CREATE DATABASE "{self.database}"')
        finally:
            conn.close()

    def stop(self) -> None:
        if self.dir is None:
            return
        if self._started and self.data_dir.exists():
            self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate",
                       "-w", "-t", "30", "stop"])
            self._started = False
        if self.run_dir and self.server_log.exists():
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.server_log, self.run_dir / "postgres.log")
            except OSError:
                pass
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
