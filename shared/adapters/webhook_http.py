"""The WebhookSender port over urllib3: one POST to the address shared.webhook_url checked, never to
the name again (a DNS rebind cannot swap it), TLS verified for the URL's host (SNI and certificate
name), no redirect followed, no retry (Pub/Sub retries), the answer's body read up to 64 KiB only.

CA bundle: certifi's (what requests trusts), or EXPORT_WEBHOOK_CA_FILE (the local tests' own CA).
"""
from __future__ import annotations

from urllib.parse import urlsplit

import certifi
import urllib3

from shared import logs
from shared.webhook_url import Target

CONNECT_FAILED = "no connection: TCP or TLS failed before an HTTP answer"

MAX_ANSWER_BYTES = 64 * 1024


class HttpsWebhookSender:
    def __init__(self, ca_file: str | None = None) -> None:
        self.ca_file = ca_file or certifi.where()

    def post(self, target: Target, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
        """POST and return the HTTP status. Raises TimeoutError or ConnectionError (OSError)."""
        parts = urlsplit(target.url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        shown = f"[{target.host}]" if ":" in target.host else target.host
        default = 443 if target.scheme == "https" else 80
        host_header = shown if target.port == default else f"{shown}:{target.port}"
        timeout = urllib3.Timeout(total=timeout_s)
        if target.scheme == "https":
            pool = urllib3.HTTPSConnectionPool(target.address, target.port, timeout=timeout, retries=False,
                                               cert_reqs="CERT_REQUIRED", ca_certs=self.ca_file,
                                               server_hostname=target.host, assert_hostname=target.host)
        else:  # EXPORT_WEBHOOK_ALLOW_HTTP (local stacks)
            pool = urllib3.HTTPConnectionPool(target.address, target.port, timeout=timeout, retries=False)
        try:
            with pool:
                r = pool.urlopen("POST", path, body=body, headers={**headers, "host": host_header},
                                 redirect=False, retries=False, preload_content=False, assert_same_host=False)
                try:
                    r.read(MAX_ANSWER_BYTES)
                finally:
                    r.release_conn()
                return r.status
        except urllib3.exceptions.ReadTimeoutError as exc:  # connected, then no answer in time
            raise TimeoutError(f"no answer within {timeout_s:g} s") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # refused, unreachable, connect timeout or TLS: one text for the job's owner (shown in
            # export_status), so a webhook URL is no probe of other hosts' ports; the detail is logged
            logs.warning("webhook connection failed", host=target.address, port=target.port,
                         error=type(exc).__name__, reason=str(getattr(exc, "reason", None) or exc)[:200])
            raise ConnectionError(CONNECT_FAILED) from exc
