"""Start each entry point of a functions bundle and read its first answer (tests/static/
test_static_bundle.py from the dev venv, tests/image/test_functions_bundle.py from a container with
only the bundle's requirements installed, as Cloud Functions builds it)."""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Callable

import requests

from infra.local.process import free_port

ENTRY = re.compile(r"@functions_framework\.(http|cloud_event)\ndef (\w+)")
NOT_A_CLOUDEVENT = {"acknowledged": True, "dropped": "the request is not a readable CloudEvent"}


def entry_points(bundle: Path) -> list[tuple[str, str]]:
    """[(kind "http" | "cloud_event", function name)] of the bundle's main.py."""
    return ENTRY.findall((bundle / "main.py").read_text())


def signature_args(name: str) -> list[str]:
    # dispatch-export and deliver-webhook are deployed with --trigger-http (our push subscriptions
    # feed them): the decorator, not the deploy's signature type, must decide that they take CloudEvents
    return ["--signature-type", "http"] if name in ("dispatch_export", "deliver_webhook") else []


def expected(kind: str):
    """An HTTP function answers a wrong method with our 405 without touching the database; a
    CloudEvent function acknowledges a body that is not a CloudEvent (shared/framing.py)."""
    return 405 if kind == "http" else (200, NOT_A_CLOUDEVENT)


def first_answers(entries: list[tuple[str, str]], start: Callable[[str, int], Callable[[], str | None]],
                  timeout_s: float = 90) -> dict[str, object]:
    """{name: answer} once every entry point answers; start(name, port) starts one on the port and
    returns a check that gives its log tail when it has died (else None)."""
    running = {name: (kind, port, start(name, port)) for kind, name in entries for port in [free_port()]}
    deadline = time.monotonic() + timeout_s
    answers: dict[str, object] = {}
    for name, (kind, port, died) in running.items():
        while name not in answers:
            log = died()
            assert log is None, f"{name} exited:\n{log}"
            try:
                if kind == "http":
                    answers[name] = requests.request("PUT", f"http://127.0.0.1:{port}/", timeout=2).status_code
                else:
                    r = requests.post(f"http://127.0.0.1:{port}/", data=b"{}", timeout=2,
                                      headers={"Content-Type": "application/json"})
                    answers[name] = (r.status_code, r.json())
            except requests.ConnectionError:
                assert time.monotonic() < deadline, f"{name} did not start"
                time.sleep(0.1)
    return answers
