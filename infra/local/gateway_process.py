"""Start the functions gateway (`python -m infra.local.gateway`, gateway.py) as a subprocess.

`Gateway(env).start()` serves the functions under `.base` = http://127.0.0.1:PORT/{name} and blocks
until GET /healthz answers; its output goes to `run_dir/gateway.log` (or NAME.log). Errors:
`ServiceError` with the tail of that log.
"""
from __future__ import annotations

import os
import sys

import requests

from infra.local.process import REPO_ROOT, ProcessService, free_port, wait_until


class Gateway(ProcessService):
    """The five functions under `http://127.0.0.1:PORT/{name}` (python -m infra.local.gateway)."""

    name = "gateway"

    def __init__(self, env: dict[str, str], run_dir=None, port: int | None = None,
                 source: str | os.PathLike | None = None, python: str | None = None,
                 timeout_s: float = 60, functions: list[str] | tuple[str, ...] | None = None,
                 name: str | None = None, issuer: str | os.PathLike | None = None) -> None:
        if name:
            self.name = name  # log file run_dir/NAME.log (several gateways in one run folder)
        super().__init__(run_dir)
        self.env = env
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.source = str(source or REPO_ROOT / "functions" / "main.py")
        self.python = python or sys.executable
        self.timeout_s = timeout_s
        self.functions = list(functions) if functions else None  # None: every function of the gateway
        self.issuer = str(issuer) if issuer else None  # a local issuer's public keys, served at /issuer

    def start(self) -> "Gateway":
        env = dict(self.env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
        env.setdefault("PYTHONUNBUFFERED", "1")
        argv = [self.python, "-m", "infra.local.gateway", "--port", str(self.port), "--source", self.source]
        if self.functions:
            argv += ["--functions", ",".join(self.functions)]
        if self.issuer:
            argv += ["--issuer", self.issuer]
        self._spawn(argv, env=env, cwd=REPO_ROOT)
        wait_until(lambda: requests.get(f"{self.base}/healthz", timeout=1).ok, self.timeout_s,
                   "functions gateway", self.proc, self.log_path)
        return self
