"""The example web page (examples/web/) served from an origin of its own, beside a local stack.

    python -m infra.local.web_page [--port N] [--screenshot PATH]    # what `make demo-web` runs
    with web_stack() as (stack, page): ...                           # tests/browser

`WebPage(stack).start()` serves on http://127.0.0.1:PORT, a loopback origin that is not the API's
(`stack.base`) nor the storage stand-in's, so the page's API calls and its signed uploads are real
cross-origin requests with CORS preflights. It answers:
  GET /, /index.html, /app.js, /style.css   the page (the files of examples/web/, nothing else)
  GET /config.json                          {apiBase, issuer, audience, tokenUrl, storyboardUrl,
                                             assetsBase, authRequired}: what the page learns at run time
  GET /example/storyboard.json, /example/storyboard/NAME   the repo's example and its media
  POST /issuer/token {"sub"}                LOCAL ONLY: an ID token of the stack's issuer
                                             (LocalIssuer.token_app): the stand-in for a sign-in;
                                             JSON from the page's own origin only (415 / 403)
It runs in the process that holds the stack (a thread), since only that process has the issuer's
private keys. `web_stack()` starts an embedded stack with authentication on and
EXPORT_CORS_ORIGINS = the page's origin (plus `other_origins`), then the page.
"""
from __future__ import annotations

import json
import mimetypes
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from infra.local.process import REPO_ROOT, Service, free_port
from infra.local.upload_types import MEDIA_TYPES

PAGE_DIR = REPO_ROOT / "examples" / "web"
PAGE_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
              "style.css": "text/css; charset=utf-8"}
EXAMPLE_STORYBOARD = REPO_ROOT / "examples" / "storyboard.json"
EXAMPLE_ASSETS = REPO_ROOT / "examples" / "storyboard"
TOKEN_PATH = "/issuer/token"
CORS_SETTING = "EXPORT_CORS_ORIGINS"


def _media_type(name: str) -> str:
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return MEDIA_TYPES.get(ext) or mimetypes.guess_type(name)[0] or "application/octet-stream"


class WebPage(Service):
    """The page on its own loopback origin (`.origin`, `.url`) for `stack` (a started infra.local.stack
    Stack: its base URL, issuer and audience go into /config.json)."""

    name = "web-page"

    def __init__(self, stack, port: int | None = None) -> None:
        self.stack = stack
        self.port = port or free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.url = self.origin + "/"
        self._server = None
        self._thread: threading.Thread | None = None
        self._token_app = stack.issuer.token_app(stack.audience)

    def config(self) -> dict:
        """What /config.json answers (URLs on other origins are absolute, the page's own relative)."""
        return {"apiBase": self.stack.base, "issuer": self.stack.issuer.issuer, "audience": self.stack.audience,
                "tokenUrl": TOKEN_PATH, "storyboardUrl": "example/storyboard.json",
                "assetsBase": "example/storyboard/", "authRequired": bool(self.stack.auth)}

    def app(self, environ, start_response):
        path, method = environ.get("PATH_INFO", "/"), environ.get("REQUEST_METHOD", "GET")
        if path == TOKEN_PATH:
            return self._token(environ, start_response)
        if method not in ("GET", "HEAD"):
            return _send(start_response, "405 Method Not Allowed", "text/plain", b"GET only\n")
        name = path.lstrip("/") or "index.html"
        if name in PAGE_FILES:
            return _send(start_response, "200 OK", PAGE_FILES[name], (PAGE_DIR / name).read_bytes())
        if name == "config.json":
            return _send(start_response, "200 OK", "application/json", json.dumps(self.config()).encode())
        if name == "example/storyboard.json":
            return _send(start_response, "200 OK", "application/json", EXAMPLE_STORYBOARD.read_bytes())
        asset = name.removeprefix("example/storyboard/")
        if asset != name and "/" not in asset and not asset.startswith(".") and (EXAMPLE_ASSETS / asset).is_file():
            return _send(start_response, "200 OK", _media_type(asset), (EXAMPLE_ASSETS / asset).read_bytes())
        return _send(start_response, "404 Not Found", "text/plain", f"nothing at {path}\n".encode())

    def _token(self, environ, start_response):
        """POST /issuer/token from this page only: a JSON body (a cross-origin one is then always
        preflighted, and OPTIONS is refused) and no Origin but the page's own (another page, or a
        DNS-rebound host name, would mint a token for whoever it names): 415 / 403 otherwise."""
        if environ.get("REQUEST_METHOD") == "POST":
            origin = environ.get("HTTP_ORIGIN")
            if origin is not None and origin != self.origin:
                return _error(start_response, "403 Forbidden", "origin_not_allowed",
                              f"tokens are handed to the page at {self.origin} only")
            mime = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
            if mime != "application/json":
                return _error(start_response, "415 Unsupported Media Type", "unsupported_media_type",
                              'send {"sub": ...} as application/json')
        return self._token_app(environ, start_response)

    def start(self) -> "WebPage":
        from werkzeug.serving import WSGIRequestHandler, make_server

        class Quiet(WSGIRequestHandler):
            def log_request(self, *args, **kwargs) -> None:  # the page's GETs would drown the stack's output
                pass

        self._server = make_server("127.0.0.1", self.port, self.app, threaded=True, request_handler=Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, name="web-page", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


def _send(start_response, status: str, content_type: str, body: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store")])
    return [body]


def _error(start_response, status: str, code: str, message: str) -> list[bytes]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store")])
    return [body]


@contextmanager
def web_stack(other_origins: tuple[str, ...] = (), port: int | None = None, **stack_kwargs) -> Iterator[tuple]:
    """(stack, page): an embedded stack (authentication on unless auth=False is given) whose
    EXPORT_CORS_ORIGINS is the page's origin (port: the page's, default a free one) plus
    `other_origins`, and the page served for it. Both stop on exit."""
    from infra.local.stack import EmbeddedStack

    port = port or free_port()
    origin = f"http://127.0.0.1:{port}"
    extra = {CORS_SETTING: ",".join((origin, *other_origins)), **stack_kwargs.pop("extra_env", {})}
    stack_kwargs.setdefault("auth", True)
    with EmbeddedStack(extra_env=extra, **stack_kwargs) as stack:
        page = WebPage(stack, port=port).start()
        try:
            yield stack, page
        finally:
            page.stop()


def main(argv: list[str] | None = None) -> int:
    """make demo-web: the stack and the page until Ctrl-C, or with --screenshot PATH one export
    rendered in headless Chromium and the finished page saved as a PNG."""
    import argparse
    import sys
    import time

    p = argparse.ArgumentParser(prog="python -m infra.local.web_page")
    p.add_argument("--screenshot", metavar="PATH",
                   help="drive the page in headless Chromium once (the example export), save the finished page here")
    p.add_argument("--port", type=int, help="the page's port on 127.0.0.1 (default: a free one)")
    args = p.parse_args(argv)
    with web_stack(port=args.port) as (stack, page):
        print(stack.describe(), flush=True)
        if args.screenshot:
            from infra.local.browser import run_example_export

            result = run_example_export(page.url, Path(args.screenshot))
            video = result["video"] or {}
            print(json.dumps({"status": result["status"], "jobId": result["jobId"], "error": result["error"],
                              **{k: video.get(k) for k in ("readyState", "duration", "cues", "posterShown")},
                              "played": result["played"], "screenshot": result["screenshot"]}, indent=2))
            return 0 if result["status"] == "succeeded" else 1
        print(f"\nThe page: {page.url}  (API {stack.base}, {CORS_SETTING}={stack.env[CORS_SETTING]})\n"
              "Open it in a browser, sign in, choose the example (or your storyboard and files), Render.\n"
              "Ctrl-C to stop.", flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            print("stopping", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
