"""The command lines an app developer uses (README "For app developers"): the local stack with
authentication on (`python -m infra.local.stack embedded --auth`), and the server key CLI
(`python -m infra.api_keys create/list/revoke`), run as a user runs them."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_the_stack_cli_with_auth_prints_credentials_that_work(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "infra.local.stack", "embedded", "--auth", "--author", "alice",
                             "--set", "EXPORT_WEBHOOK_ALLOW_PRIVATE_HOSTS=127.0.0.1:9"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            # Ctrl-C as at a terminal: a suite started in the background inherits
                            # SIGINT ignored, and Python then installs no KeyboardInterrupt for it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while not any(line.startswith("functions at ") for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, lines
            lines.append(proc.stdout.readline())
        base = lines[-1].split()[2].split("/{")[0]
        key = next(line.split()[-1] for line in lines if line.startswith("server key"))
        token = next(line.split()[-1] for line in lines if line.startswith("ID token of alice"))
        assert key.startswith("sfk_") and token.count(".") == 2
        assert requests.get(f"{base}/export_list", timeout=30).status_code == 401
        as_alice = [{"Authorization": f"Bearer {token}"},
                    {"Authorization": f"Bearer {key}", "X-SceneFlow-Owner": "alice"}]
        spec = {"scenes": [{"id": "a", "visual": {"type": "color"}, "duration": 1}]}
        r = requests.post(f"{base}/export_start", json={"spec": spec, "webhookUrl": "http://127.0.0.1:9/hook"},
                          headers=as_alice[0], timeout=30)
        assert r.status_code == 202, r.text  # --set reached the functions: the loopback receiver is allowed
        for headers in as_alice:
            listed = requests.get(f"{base}/export_list", headers=headers, timeout=30).json()["exports"]
            assert [e["jobId"] for e in listed] == [r.json()["jobId"]]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:  # show where the stop hung, then clean up
            proc.kill()
            raise AssertionError("the stack did not stop within 60 s of Ctrl-C:\n"
                                 + "".join(lines[-20:]) + proc.stdout.read()[-4000:]) from None


def test_the_key_cli_creates_lists_and_revokes_and_names_an_unreachable_database(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/keys.db", "EXPORT_AUTO_MIGRATE": "1"}
    made = _cli("infra.api_keys", "create", "--name", "storyapp", "--json", env=env)
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["name"] == "storyapp" and key["key"].startswith(f"sfk_{key['keyId']}_")
    again = _cli("infra.api_keys", "create", "--name", "storyapp", env=env)
    assert again.returncode == 1 and "storyapp" in again.stderr and "Traceback" not in again.stderr
    listed = json.loads(_cli("infra.api_keys", "list", "--json", env=env).stdout)
    assert [(k["keyId"], k["name"], k["revokedAt"]) for k in listed] == [(key["keyId"], "storyapp", None)]
    assert key["key"] not in json.dumps(listed)  # never the secret
    revoked = _cli("infra.api_keys", "revoke", key["keyId"], env=env)
    assert revoked.returncode == 0 and key["keyId"] in revoked.stdout
    assert json.loads(_cli("infra.api_keys", "list", "--json", env=env).stdout)[0]["revokedAt"]
    down = _cli("infra.api_keys", "list", env={"DATABASE_URL": "postgresql+pg8000://u:p@127.0.0.1:1/none"})
    assert down.returncode == 2 and "DATABASE_URL" in down.stderr and "Traceback" not in down.stderr
