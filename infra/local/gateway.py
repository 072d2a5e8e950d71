"""The functions gateway: every Cloud Function of functions/main.py under one loopback base URL.

    python -m infra.local.gateway --port 8080 [--source functions/main.py] [--host 127.0.0.1]

One threaded werkzeug server mounts `functions_framework.create_app(target=NAME, source=...)` at
`/{NAME}` for each function, so `{base}/export_start`, `{base}/export_status?jobId=…`,
`{base}/export_complete`, `{base}/dispatch_export` and `{base}/on_object_finalized` look like the
URLs of deployed gen2 functions. Paths below a function reach it too (functions-framework routes
`/<path>`), which lets a Pub/Sub push endpoint carry `/projects/P/topics/T` for the framework's
Pub/Sub-to-CloudEvent conversion. `GET /healthz` answers 200 once every function is loaded;
`GET /openapi.json` serves the API's OpenAPI 3.1 document (shared/openapi.py, the one committed as
shared/schema/openapi.json).
With `--issuer FILE` (infra/local/issuer.py, LocalIssuer.write_public) the local OpenID Connect
issuer is served under `/issuer` too: `{base}/issuer/.well-known/openid-configuration` and
`{base}/issuer/jwks.json`, so ID tokens are verified over the same loopback base URL.

Settings come from the environment (shared.config), so start it with the stack's env.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

FUNCTION_NAMES = ("export_start", "export_status", "export_complete", "export_cancel", "export_list",
                  "reconcile_exports", "export_webhook_secret", "dispatch_export", "deliver_webhook",
                  "on_object_finalized")


def _root_app(names: list[str]):
    openapi: list[bytes] = []  # built once, from the models the mounted functions use

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/openapi.json" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            if not openapi:
                from shared.openapi import render

                openapi.append(render().encode())
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(openapi[0])))])
            return [openapi[0]]
        if path in ("/healthz", "/"):
            body = json.dumps({"ok": True, "functions": names}).encode()
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        body = json.dumps({"error": {"code": "not_found", "message": f"no function at {path}"}}).encode()
        start_response("404 Not Found", [("Content-Type", "application/json"),
                                         ("Content-Length", str(len(body)))])
        return [body]

    return app


def _slash(app):
    """Serve `/{name}` itself (PATH_INFO "") without Flask's 308 redirect to `/{name}/`:
    Pub/Sub push and Eventarc do not follow redirects."""
    def wrapped(environ, start_response):
        if not environ.get("PATH_INFO"):
            environ["PATH_INFO"] = "/"
        return app(environ, start_response)

    return wrapped


def build_app(source: str, names: tuple[str, ...] = FUNCTION_NAMES, issuer: str | None = None):
    """A WSGI app dispatching `/{name}` to each function's functions-framework app, and `/issuer`
    to the local issuer whose public keys the file `issuer` holds (when given)."""
    import functions_framework
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    mounts = {f"/{name}": _slash(functions_framework.create_app(target=name, source=source))
              for name in names}
    if issuer:
        from infra.local.issuer import MOUNT, public_app

        mounts[MOUNT] = public_app(issuer)
    return DispatcherMiddleware(_root_app(list(names)), mounts)


DEFAULT_SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                              "functions", "main.py")


def warm_up() -> None:
    """Build the process-wide service (settings, database engine and migration, storage client, one
    URL signature) before serving, as a warm function instance has: the first export_start then costs
    what every later one does (about 40 ms instead of about 0.8 s on a 2-core machine). A failure is
    logged and left for the first request to report."""
    try:
        from shared.bootstrap import get_service

        service = get_service()
        service.storage.signed_download_url(service.settings.output_bucket, "warm-up", 60, "warm-up")
    except Exception as exc:  # noqa: BLE001 - the first real request will say what is wrong
        print(json.dumps({"severity": "WARNING", "message": f"gateway warm-up failed: {exc!r}"}), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m infra.local.gateway")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    p.add_argument("--source", default=os.path.join("functions", "main.py"))
    p.add_argument("--functions", default=",".join(FUNCTION_NAMES),
                   help="comma-separated targets to mount (default: all five)")
    p.add_argument("--issuer", help="serve this local issuer's public keys (JSON of LocalIssuer.write_public) at /issuer")
    args = p.parse_args(argv)

    from werkzeug.serving import run_simple

    names = tuple(n for n in args.functions.split(",") if n)
    app = build_app(args.source, names, args.issuer)
    if os.path.realpath(args.source) == os.path.realpath(DEFAULT_SOURCE):
        warm_up()
    print(json.dumps({"severity": "INFO", "message": f"gateway on http://{args.host}:{args.port}",
                      "functions": list(names)}), flush=True)
    run_simple(args.host, args.port, app, threaded=True, use_reloader=False, use_debugger=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
