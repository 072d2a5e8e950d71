"""The service layer: one method per use case, called by the thin entry points in functions/.

It talks to the outside only through the ports (shared.ports: job repository, storage, publisher,
launcher), so tests run it on local adapters or in-memory fakes. Every operation is idempotent under
at-least-once delivery: transitions are conditional (JobRepository.transition) and duplicates are
no-ops. Requests are validated by shared.api; results are domain values (dicts of the public views,
Started, outcome strings), which the entry points map to HTTP or to ack/redeliver.

Errors raised: shared.errors.InvalidRequest (with details), Unauthorized, Forbidden, NotFound,
Conflict, TransientError (a dependency failed; may pass on retry).
"""
from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

from shared import api, cost, logs
from shared.api import StartRequest, UploadDecl
from shared.artifacts import (INPUT_ASSET_RE, OUTPUT_VIDEO_RE, OutputRecord, asset_object, event_generation,
                              object_not_current, parse_part_object, spec_object, video_not_ours)
from shared.auth import Authenticator
from shared.clock import iso, utcnow
from shared.config import Settings
from shared.errors import Conflict, InvalidRequest, NotFound, TransientError
from shared.finite import check_metadata_numbers
from shared.identity import DEFAULT_CALLER, Caller
from shared.limits import JOB_TOO_LARGE
from shared.listing import Listing
from shared.parallel import in_parallel
from shared.part_lifecycle import PartLifecycle
from shared.ports import EventPublisher, JobLauncher, JobRecord, JobRepository, ObjectStorage, Publisher, WebhookSender
from shared.reconcile import Reconcile
from shared.report_output import checked_output
from shared.webhook_url import system_resolver
from shared.webhooks import Webhooks
from shared.worker_report import ErrorBody, parse_report
from shared.states import JobStatus, is_terminal

# URLs signed at once for one response: keyless signing costs one IAM signBlob round trip per URL
# (401 of them at MAX_SCENES); a small pool keeps the start quick without flooding IAM's quota.
SIGN_WORKERS = 16


def spec_digest(spec: dict) -> str:
    """SHA-256 of the spec's canonical JSON (sorted keys), to compare idempotent retries."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class Started(NamedTuple):
    """What start() did: created a job (False: an idempotent replay of an earlier start), and the
    response {jobId, status, statusUrl, uploads}."""

    created: bool
    body: dict


@dataclass
class ExportService(Reconcile, Listing, Webhooks, PartLifecycle):
    """Use cases of SceneFlow Export (reconcile_exports: shared.reconcile; export_list: shared.listing;
    webhooks: shared.webhooks; parallel renders: shared.part_lifecycle). Built by shared.bootstrap."""

    settings: Settings
    repo: JobRepository
    storage: ObjectStorage
    publisher: Publisher
    launcher: JobLauncher
    authenticator: Authenticator | None = None
    events: EventPublisher | None = None  # None: no job events are published (webhooks off)
    webhooks: Any = None  # shared.webhook_store.SqlWebhookStore (with `events`)
    resolver: Callable[[str, int], list[str]] = system_resolver  # shared.webhook_url.Resolver
    sender: WebhookSender | None = None
    parts: Any = None  # shared.part_store.SqlPartStore; None: every export renders as one task

    # -- export_start --------------------------------------------------------------------------
    def start(self, body: Any, idempotency_key: str | None = None, caller: Caller = DEFAULT_CALLER) -> Started:
        """Create an export job owned by `caller.owner`. Returns Started(created=True, response), or
        created=False for an idempotent replay (same owner and key, same spec and uploads).

        body: {spec, uploads?: [{name, contentType}], idempotencyKey?, labels?, externalRef?, webhookUrl?}.
        Raises InvalidRequest (every problem at once, api.parse_start; webhookUrl refused by
        shared.webhook_url), Conflict (same key, other spec), TransientError.
        """
        req, spec = api.parse_start(body, idempotency_key, self.settings)
        webhook_url = self._webhook_url(req.webhook_url)
        names = [up.name for up in req.uploads]
        key = idempotency_key or req.idempotency_key
        canonical = spec.model_dump(mode="json", by_alias=True)
        # a replay must match the spec and the declared uploads (their content types are signed);
        # the same uploads in another order are the same request (content types already lower-case);
        # labels and externalRef count when given (so a start without them keeps its earlier digest)
        digest = spec_digest({"spec": canonical, "uploads": sorted(
            (u.model_dump(by_alias=True) for u in req.uploads), key=lambda u: u["name"])}
            | ({"labels": req.labels} if req.labels else {})
            | ({"externalRef": req.external_ref} if req.external_ref is not None else {})
            | ({"webhookUrl": webhook_url} if webhook_url else {}))  # without them: digests as before
        if key:
            existing = self.repo.get_by_idempotency_key(key, caller.owner)
            if existing:
                return self._replay(existing, digest, req)
        job_id = str(uuid.uuid4())
        spec_name = spec_object(job_id)
        spec_bytes = json.dumps(canonical, ensure_ascii=False, allow_nan=False).encode()  # strict JSON
        self.storage.upload_bytes(self.settings.input_bucket, spec_name, spec_bytes,
                                  "application/json", if_generation_match=0)
        status = JobStatus.AWAITING_UPLOAD if names else JobStatus.QUEUED
        try:
            job, created = self.repo.create(spec=canonical, spec_sha256=digest, status=status,
                                            uploads_expected=names, idempotency_key=key, job_id=job_id,
                                            owner=caller.owner, labels=req.labels, external_ref=req.external_ref,
                                            webhook_url=webhook_url)
        except BaseException:  # no row names this job id: nobody will read its spec.json
            self._delete_quietly(self.settings.input_bucket, spec_name)
            raise
        if not created:  # a concurrent start with this key won: our job id is unused, so is its spec
            self._delete_quietly(self.settings.input_bucket, spec_name)
            return self._replay(job, digest, req)
        logs.info("export created", job_id=job.id, status=job.status.value, uploads=len(names))
        if status == JobStatus.QUEUED:
            self._publish(job.id)
            self._events(job.id)
        return Started(True, self._start_response(job, req))

    def _replay(self, job: JobRecord, digest: str, req: StartRequest) -> Started:
        if job.spec_sha256 != digest:
            raise Conflict("this idempotency key was used with a different spec, uploads, labels or externalRef")
        return Started(False, self._start_response(job, req))

    def _delete_quietly(self, bucket: str, name: str) -> None:
        """Delete an object nobody will read; a failure only leaves it to the bucket's lifecycle rule."""
        try:
            self.storage.delete(bucket, name)
        except Exception as exc:  # noqa: BLE001 - the request itself succeeded
            logs.warning("could not delete an unused object", object=name, error=type(exc).__name__)

    def _start_response(self, job: JobRecord, req: StartRequest) -> dict:
        """{jobId, status, statusUrl, uploads}: a signed PUT per upload still missing, none once the
        job left awaiting_upload (a replay of a canceled or expired job gets no fresh URLs)."""
        received = set(job.uploads_received)
        missing = ([up for up in req.uploads if up.name not in received]
                   if job.status == JobStatus.AWAITING_UPLOAD else [])

        def signed_put(up: UploadDecl) -> dict:
            signed = self.storage.signed_upload_url(
                self.settings.input_bucket, asset_object(job.id, up.name), up.content_type,
                self.settings.upload_url_ttl_s, max_bytes=self.settings.max_asset_bytes)
            return {"name": up.name, "url": signed.url, "method": signed.method,
                    "headers": signed.headers, "expiresAt": iso(signed.expires_at)}

        uploads = in_parallel(signed_put, missing, SIGN_WORKERS)
        return {"jobId": job.id, "status": job.status.value,
                "statusUrl": f"{self.settings.status_url}?jobId={job.id}",
                "uploads": uploads}

    def _publish(self, job_id: str) -> None:
        try:
            message_id = self.publisher.publish(job_id)
            logs.info("export published", job_id=job_id, messageId=message_id)
        except TransientError as exc:
            # The row is committed and stays queued; reconcile_exports re-publishes stale queued jobs.
            logs.error("publish failed; job stays queued", job_id=job_id, reason=exc.message)

    # -- export_status -------------------------------------------------------------------------
    def status(self, job_id: str | None, caller: Caller = DEFAULT_CALLER) -> dict:
        """The caller's job's public view (DESIGN §4): {jobId, owner, status, stage, progress (4 decimals), createdAt,
        updatedAt, startedAt, finishedAt, attempts, executionName, executionLogUri, labels, externalRef,
        history [{status, at}], uploads? (awaiting_upload), error? {code, message}, cost (shared.cost.Cost),
        output? (succeeded, with signed URLs)}. Raises InvalidRequest for a malformed id, NotFound (also for another owner's
        job: its existence is not revealed), TransientError."""
        job_id = api.job_id(job_id)
        # on PostgreSQL one prepared statement (status_view.py)
        body = self.repo.status_view(job_id, caller.owner)
        if body is None:
            raise NotFound(f"no export job {job_id}")
        if body["status"] == JobStatus.AWAITING_UPLOAD.value and self._expire_if_due(job_id, body):
            body = self.repo.status_view(job_id, caller.owner) or body  # never shown waiting past its expiry
        body["progress"] = round(float(body["progress"]), 4)
        for key in ("uploads", "error", "webhook", "parts"):
            if body[key] is None:
                del body[key]
        s = self.settings
        body["cost"] = cost.cost_view(body["cost"], s.price_vcpu_second_usd, s.price_gib_second_usd, s.price_source)
        output = body.pop("output")
        if output:
            bucket, ttl = self.settings.output_bucket, self.settings.download_url_ttl_s
            body["output"] = OutputRecord.from_row(output).public_view(
                bucket, lambda name, filename: self.storage.signed_download_url(bucket, name, ttl, filename))
        return body

    def _execution_log_uri(self, execution_name: str) -> str | None:
        """The execution's ExecutionStatus.log_uri, asked once at dispatch (status polls never call
        Cloud Run); None when it cannot be asked."""
        try:
            return getattr(self.launcher.status(execution_name), "log_uri", None)
        except Exception:  # noqa: BLE001 - TransientError or a stand-in's failure: leave it out
            return None

    def _get(self, job_id: str | None, *, with_spec: bool = True, owner: str | None = None) -> JobRecord:
        """The job (with `owner`: only that owner's). Raises InvalidRequest (not a UUID), NotFound."""
        job_id = api.job_id(job_id)
        job = self.repo.get(job_id, with_spec=with_spec, owner=owner)
        if job is None:
            raise NotFound(f"no export job {job_id}")
        return job

    def authenticate(self, authorization: str | None, owner: str | None = None) -> Caller:
        """The caller of a client request, from its Authorization and X-SceneFlow-Owner headers, by
        EXPORT_AUTH (shared.auth.Authenticator). Raises Unauthorized, InvalidRequest, TransientError."""
        if self.authenticator is None:  # a service built without bootstrap (tests): no key store
            self.authenticator = Authenticator(self.settings)
        return self.authenticator.authenticate(authorization, owner)

    # -- export_cancel -------------------------------------------------------------------------
    def cancel(self, body: Any, caller: Caller = DEFAULT_CALLER) -> dict:
        """Cancel the caller's non-terminal job: {jobId} -> {jobId, status: "canceled"}. Idempotent
        for a canceled job; Conflict (409) for a succeeded or failed one; NotFound for another owner's. The Cloud Run execution is
        asked to stop; the render job sees 409 on its next report and publishes no output."""
        job = self._get(api.parse_cancel(body), with_spec=False, owner=caller.owner)
        if job.status == JobStatus.CANCELED:
            return {"jobId": job.id, "status": job.status.value}
        if not self.repo.transition(job.id, JobStatus.CANCELED, finished_at=utcnow(), stage=None,
                                    error_code="canceled", error_message="canceled by the client"):
            current = self.repo.get(job.id)
            if current and current.status == JobStatus.CANCELED:
                return {"jobId": job.id, "status": "canceled"}
            raise Conflict(f"export {job.id} is already {current.status.value if current else 'gone'}")
        logs.info("export canceled", job_id=job.id)
        self._events(job.id)
        current = self.repo.get(job.id)
        self._cancel_executions(job.id, current and current.execution_name)  # parts and stitch too
        return {"jobId": job.id, "status": "canceled"}

    # -- export_complete -----------------------------------------------------------------------
    def check_worker_token(self, authorization: str | None) -> None:
        """Require EXPORT_WORKER_TOKEN as a bearer token (api.check_bearer). Raises Unauthorized, Forbidden."""
        api.check_bearer(authorization, self.settings.worker_token, "invalid worker token")

    def complete(self, body: Any) -> dict:
        """Apply a worker report. Duplicated, late or out-of-order reports never change a terminal
        state, and progress never falls. Returns {jobId, status, applied}.

        A report is tied to the job's current attempt: `attempts` is 1 + the highest `attempt` any
        report carried (CLOUD_RUN_TASK_ATTEMPT, 0-based; Cloud Run runs a task's attempts one after
        another); a parallel render task's report (`task`) to its task's (shared.part_lifecycle). A whole-export
        task's `handoff` hands the export to a K-part render, once; after that its reports get 409 (_handoff). `usage` is
        recorded per task attempt (shared.cost) once dispatched, also when the report is refused. Raises
        InvalidRequest (400: a malformed report; a succeeded report whose
        output.uri is not this job's non-empty video in the output bucket), NotFound, Conflict
        (409, the worker stops: a running report for a terminal job, a report for a job never
        dispatched, a report from an attempt older than the current one).
        """
        report, output = parse_report(body)
        job = self._get(report.job_id, with_spec=False)  # the most frequent write: never decode the storyboard
        if job.status in (JobStatus.AWAITING_UPLOAD, JobStatus.QUEUED):
            raise Conflict(f"export {job.id} is {job.status.value}: it was never dispatched, so no render "
                           "task may report on it")
        if report.task is not None and not job.part_count:
            raise Conflict(f"export {job.id} is rendered by one task: no {report.task.role} task may report on it")
        if report.usage is not None:  # counted whatever follows: a canceled or older attempt cost too
            self._record_task_usage(job.id, report)
        if is_terminal(job.status):
            if report.status == "running":
                raise Conflict(f"export {job.id} is {job.status.value}; stop rendering")
            return {"jobId": job.id, "status": job.status.value, "applied": False}  # a late duplicate
        if report.task is not None:  # a parallel render's task: its own attempts (shared.part_lifecycle)
            return self._task_report(job, report, output)
        if report.attempt + 1 < job.attempts:
            raise Conflict(f"this report is from attempt {report.attempt} but export {job.id} is at attempt "
                           f"{job.attempts - 1}; stop rendering")
        if report.handoff is not None or job.part_count:  # handing over to a parallel render (shared.part_lifecycle)
            return self._handoff(job, report)
        if report.status == "running":
            started = self.repo.transition(job.id, JobStatus.RUNNING, attempt=report.attempt, started_at=utcnow())
            applied = self.repo.report_progress(job.id, stage=report.stage, progress=report.progress,
                                                attempt=report.attempt) or started
            if applied and not started:
                self._progress_event(job.id)
        elif report.status == "succeeded":
            if output is None:
                raise InvalidRequest("a succeeded report needs output",
                                     details=[{"path": "output", "message": "required when status is succeeded"}])
            applied = self._succeed(job.id, checked_output(self.storage, self.settings, job.id, output), report.attempt)
        else:
            err = report.error or ErrorBody(code="render_failed", message="render failed")
            applied = self.repo.transition(job.id, JobStatus.FAILED, attempt=report.attempt,
                                           sources=frozenset({JobStatus.DISPATCHED, JobStatus.RUNNING}),
                                           error_code=api.clean_text(err.code, 64),
                                           error_message=api.clean_text(err.message), finished_at=utcnow(), stage=None)
            if applied:
                logs.warning("export failed", job_id=job.id, code=err.code, reason=err.message)
        self._events(job.id)
        current = self.repo.get(job.id, with_spec=False)
        return {"jobId": job.id, "status": current.status.value if current else None, "applied": applied}

    def _succeed(self, job_id: str, output: dict, attempt: int | None = None) -> bool:
        values: dict[str, Any] = {"output": output, "progress": 1.0, "stage": None, "finished_at": utcnow()}
        applied = self.repo.transition(job_id, JobStatus.SUCCEEDED, attempt=attempt, **values)
        if applied:
            logs.info("export succeeded", job_id=job_id, object=output.get("object"))
            self._events(job_id)
            self._delete_pieces(job_id)  # a parallel render's temporary pieces
        return applied

    # -- dispatch_export -----------------------------------------------------------------------
    def dispatch(self, job_id: str) -> str | None:
        """Claim a queued job and start one render execution (of K parts if long: _dispatch_parts). Returns
        its name, or None when the claim was lost (duplicate delivery, job not queued). Raises
        TransientError when the launch fails; the claim is released so the redelivery can retry."""
        if not api.is_job_id(job_id):
            raise InvalidRequest(f"jobId {str(job_id)[:60]!r} is not a UUID")
        if not self.repo.transition(job_id, JobStatus.DISPATCHED):
            job = self.repo.get(job_id)
            logs.info("dispatch skipped: job not queued", job_id=job_id,
                      status=job.status.value if job else "unknown")
            return None
        try:
            execution = self._launch_render(job_id, self._dispatch_parts(job_id))
        except TransientError:
            self.repo.transition(job_id, JobStatus.QUEUED, sources=frozenset({JobStatus.DISPATCHED}))
            raise
        self.repo.set_execution(job_id, execution, self._execution_log_uri(execution))
        logs.info("render execution started", job_id=job_id, execution=execution)
        return execution

    # -- on_object_finalized -------------------------------------------------------------------
    def object_finalized(self, bucket: str, name: str, generation: str | int | None, size: int | None,
                         metadata: dict | None = None) -> str:
        """Handle a Cloud Storage finalize. Returns what it did (for logs and tests):
        "upload", "queued", "failed" (the uploads so far exceed EXPORT_MAX_JOB_BYTES), "succeeded",
        "duplicate" or "ignored".

        The event itself is not trusted: the object is stat'd now. An input upload counts only when
        the object exists at `generation` or newer (its own generation and size are recorded); an
        output video completes its job only when it is this job's video (artifacts.video_not_ours),
        and the output is built from the object's own metadata, never from the event's `metadata`.
        Anything else is acknowledged with a log line.
        """
        if bucket == self.settings.input_bucket:
            m = INPUT_ASSET_RE.match(name)
            if not m:
                return "ignored"
            job = self.repo.get(m.group(1), with_spec=False)
            info = None
            if job is not None and m.group(2) in job.uploads_expected:
                info = self.storage.stat(bucket, name)  # asked only for a declared upload of a known job
                if why := object_not_current(info, event_generation(generation)):
                    logs.warning("input finalize ignored: no such upload", job_id=m.group(1), object=name,
                                 generation=str(generation or ""), reason=why)
                    return "ignored"
            known, queued, too_large = (
                self.repo.record_upload(m.group(1), m.group(2), str(info.generation), info.size,
                                        max_job_bytes=self.settings.max_job_bytes)
                if info is not None else (False, False, None))
            if not known:
                logs.warning("finalize for an unknown job or undeclared upload", bucket=bucket, object=name)
                return "ignored"
            if too_large:  # failed now, not left awaiting the rest: the render could not hold them
                logs.warning("export failed", job_id=m.group(1), code=JOB_TOO_LARGE, reason=too_large)
                self._events(m.group(1))
                return "failed"
            if queued:
                logs.info("all uploads in; export queued", job_id=m.group(1))
                self._publish(m.group(1))
                self._events(m.group(1))
                return "queued"
            return "upload"
        if bucket == self.settings.output_bucket:
            if parse_part_object(name):  # a parallel render's piece
                return self._piece_finalized(bucket, name, generation)
            m = OUTPUT_VIDEO_RE.match(name)
            if not m:
                return "ignored"
            job_id = m.group(1)
            job = self.repo.get(job_id, with_spec=False)
            if job is None:
                logs.warning("finalize of an output for an unknown job", bucket=bucket, object=name)
                return "ignored"
            if job.status not in (JobStatus.DISPATCHED, JobStatus.RUNNING):
                return "duplicate"  # terminal, or not dispatched yet: nothing to complete
            # the event's metadata is not trusted: the object itself must be this job's video
            info = self.storage.stat(bucket, name)
            why = video_not_ours(info, job_id, event_generation(generation))
            if why:
                logs.warning("output finalize ignored: not this job's video", job_id=job_id, object=name,
                             generation=str(generation or ""), reason=why)
                return "ignored"
            check_metadata_numbers(info.metadata)  # "nan", "inf": refused (InvalidRequest), never stored
            record, dropped = OutputRecord.from_object(info, self.settings.max_scenes)
            if dropped:
                logs.warning("unsafe names in the video's metadata were dropped", job_id=job_id, object=name,
                             fields=dropped)
            return "succeeded" if self._succeed(job_id, record.to_row()) else "duplicate"
        logs.warning("finalize from an unexpected bucket", bucket=bucket, object=name)
        return "ignored"
