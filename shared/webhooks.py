"""Signed webhooks, delivered by Pub/Sub (DESIGN §4 "Webhooks"). Mixed into shared.service.ExportService
(it uses the service's repo, settings and the ports `events`, `webhooks`, `resolver`, `sender`).

1. Events. Every applied transition of a job with a webhook to a PUBLISHED status (queued, running,
   succeeded, failed, canceled: shared.webhook_store) is written to export_job_events with
   publish_pending in the transition's own transaction (the outbox). After the use case, `_events`
   publishes the job's pending rows to EXPORT_EVENTS_TOPIC and marks them; rows a crash left
   pending are published by reconcile_exports (`republish_events`). Progress is best-effort: at most
   one `export.progress` per job per EXPORT_WEBHOOK_PROGRESS_INTERVAL_S, never retried from the outbox.
2. Body (Standard Webhooks' recommended shape): {type: "export.<status>" | "export.progress",
   timestamp (ISO 8601), data: {jobId, owner, status, stage, progress, error?, output?}}.
3. Delivery (`deliver_webhook`, the events subscription's function): the URL is checked again now
   (shared.webhook_url: resolved now, every address must be public; then the connection goes to the
   checked address), the body POSTed, signed with the owner's secret (shared.webhook_signing), within
   EXPORT_WEBHOOK_TIMEOUT_S, redirects not followed. Every attempt is recorded (status shows the
   last ones). A 2xx acknowledges; anything else raises TransientError, so Pub/Sub redelivers with
   the subscription's backoff and dead-letters after its max attempts. A refused URL is recorded and
   acknowledged (retrying cannot make it allowed).
"""
from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from shared import logs
from shared.clock import iso, utcnow
from shared.config import ConfigError
from shared.errors import Forbidden, InvalidRequest, TransientError
from shared.identity import Caller
from shared.ports import JobRecord
from shared.states import JobStatus
from shared.webhook_signing import headers as signed_headers
from shared.webhook_url import RefusedUrl, check

USER_AGENT = "SceneFlow-Webhooks/1"


def event_id(job_id: str, suffix: str) -> str:
    """A webhook-id: "evt_" + the job id's hex + "_" + the outbox row id (or "p" + ms for progress)."""
    return f"evt_{job_id.replace('-', '')}_{suffix}"


def event_body(job: JobRecord, status: str, at: datetime, *, progress_event: bool = False) -> dict[str, Any]:
    """The JSON body of one event (see the module docstring). Stage and progress are the job's now
    when it is still in `status` (a late-published running event shows its latest progress)."""
    current = job.status.value == status
    data: dict[str, Any] = {"jobId": job.id, "owner": job.owner, "labels": dict(sorted(job.labels.items())),
                            "externalRef": job.external_ref, "status": status,
                            "stage": job.stage if current else None,
                            "progress": round(float(job.progress), 4) if current else None}
    if status in (JobStatus.FAILED, JobStatus.CANCELED) and job.error_code:
        data["error"] = {"code": job.error_code, "message": job.error_message}
    if status == JobStatus.SUCCEEDED and job.output:
        out = job.output  # minimal: where the video is; export_status signs a download URL
        data["output"] = {k: out.get(k) for k in ("object", "filename", "durationS", "sizeBytes")}
    return {"type": "export.progress" if progress_event else f"export.{status}", "timestamp": iso(at),
            "data": data}


def _encode(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


class Webhooks:
    """The webhook use cases of ExportService."""

    # -- the URL at export_start ---------------------------------------------------------------
    def _webhook_url(self, given: str | None) -> str | None:
        """The job's webhook URL: `given` (webhookUrl) or EXPORT_WEBHOOK_DEFAULT_URL, checked now.
        Raises InvalidRequest naming webhookUrl, ConfigError for an unusable default."""
        s = self.settings
        url = given if given is not None else s.webhook_default_url
        if url is None:
            return None
        try:
            check(url, self.resolver, allow_http=s.webhook_allow_http, allow=s.webhook_allow)
        except RefusedUrl as exc:
            if given is None:
                raise ConfigError([f"EXPORT_WEBHOOK_DEFAULT_URL={url[:40]!r}: {exc}"]) from None
            raise InvalidRequest(f"webhookUrl {exc}", details=[{"path": "webhookUrl", "message": str(exc)}]) from None
        return url

    # -- publishing ----------------------------------------------------------------------------
    def _events(self, job_id: str) -> None:
        """Publish the job's outbox rows; a failure leaves them for reconcile (never fails the caller)."""
        if self.events is None or self.webhooks is None:
            return
        try:
            pending = self.webhooks.pending(job_id)
            if pending:
                self._publish_rows(pending)
        except Exception as exc:  # noqa: BLE001 - the transition is committed; reconcile publishes the rest
            logs.warning("job events not published; reconcile will", job_id=job_id, error=type(exc).__name__)

    def _publish_rows(self, rows) -> int:
        jobs: dict[str, JobRecord | None] = {}
        done = 0
        for row in rows:
            if row.job_id not in jobs:
                jobs[row.job_id] = self.repo.get(row.job_id, with_spec=False)
            job = jobs[row.job_id]
            if job is not None:
                eid = event_id(job.id, str(row.seq))
                body = event_body(job, row.status, row.at)
                self.events.publish_event(_encode(body), {"eventId": eid, "jobId": job.id, "type": body["type"]})
            self.webhooks.mark_published(row.seq)
            done += 1
        return done

    def republish_events(self, before: datetime) -> int:
        """Publish outbox rows written before `before` and still pending (a crash between commit and
        publish); returns how many. Raises TransientError (reconcile counts it deferred)."""
        if self.events is None or self.webhooks is None:
            return 0
        return self._publish_rows(self.webhooks.pending(before=before))

    def _progress_event(self, job_id: str) -> None:
        """Best-effort export.progress, at most one per job per EXPORT_WEBHOOK_PROGRESS_INTERVAL_S."""
        if self.events is None or self.webhooks is None:
            return
        try:
            if not self.webhooks.claim_progress_event(job_id, self.settings.webhook_progress_interval_s):
                return
            job = self.repo.get(job_id, with_spec=False)
            now = utcnow()
            body = event_body(job, JobStatus.RUNNING.value, now, progress_event=True)
            eid = event_id(job_id, f"p{int(now.timestamp() * 1000)}")
            self.events.publish_event(_encode(body), {"eventId": eid, "jobId": job_id, "type": body["type"]})
        except Exception as exc:  # noqa: BLE001 - progress events are best-effort
            logs.warning("progress event not published", job_id=job_id, error=type(exc).__name__)

    # -- export_webhook_secret -----------------------------------------------------------------
    def webhook_secret(self, caller: Caller) -> dict:
        """{owner, secret}: the caller's signing secret (whsec_...), created on first need. Raises
        Forbidden for an end user's ID token: whoever holds the secret can sign events the app's
        backend would trust, so it goes to the backend's credentials only (a server key acting for
        the owner, the client token, open)."""
        if caller.via == "id_token":
            raise Forbidden("the webhook secret is for the app's backend: ask with a server key acting for "
                            "this owner (X-SceneFlow-Owner), not with an end user's ID token")
        return {"owner": caller.owner, "secret": self.webhooks.secret(caller.owner)}

    # -- deliver_webhook -----------------------------------------------------------------------
    def deliver(self, event_id_: str, job_id: str, event_type: str, body: bytes) -> str:
        """Deliver one event to its job's webhook (module docstring, step 3). Returns "delivered",
        "refused" (the URL failed the SSRF check now; recorded), "no_webhook" or "unknown_job".
        Raises TransientError for a failed attempt (non-2xx, redirect, timeout, no connection)."""
        job = self.repo.get(job_id, with_spec=False)
        if job is None:
            return "unknown_job"
        if not job.webhook_url:
            return "no_webhook"
        s = self.settings
        secret = self.webhooks.secret(job.owner)
        started = time.monotonic()

        def record(http_status: int | None, error: str | None) -> int:
            return self.webhooks.record_attempt(job_id, event_id_, event_type, http_status=http_status,
                                                error=error, duration_ms=int((time.monotonic() - started) * 1000))

        try:
            target = check(job.webhook_url, self.resolver, allow_http=s.webhook_allow_http, allow=s.webhook_allow)
        except RefusedUrl as exc:
            n = record(None, f"refused: {exc}")
            logs.warning("webhook refused at delivery", job_id=job_id, eventId=event_id_, attempt=n, reason=str(exc))
            return "refused"
        hdrs = {**signed_headers(secret, event_id_, int(time.time()), body), "user-agent": USER_AGENT}
        try:
            status = self.sender.post(target, body, hdrs, s.webhook_timeout_s)
        except OSError as exc:
            reason = f"{type(exc).__name__}: {exc}"[:200]
            n = record(None, reason)
            raise TransientError(f"webhook attempt {n} of {event_id_} failed: {reason}") from None
        error = "redirect not followed" if 300 <= status < 400 else None
        n = record(status, error)
        if 200 <= status < 300:
            logs.info("webhook delivered", job_id=job_id, eventId=event_id_, attempt=n, httpStatus=status)
            return "delivered"
        raise TransientError(f"webhook attempt {n} of {event_id_} answered HTTP {status}")
