"""The service layer: one function per use case, called by the thin entry points in functions/.

It talks to the outside only through the repository and the ports (storage, publisher,
launcher), so tests run it with local adapters. Every operation is idempotent under at-least-once
delivery: transitions are conditional (see repository.py) and duplicates are no-ops.

Errors raised: shared.errors.InvalidRequest (400, with details), Unauthorized (401), Forbidden
(403), NotFound (404), Conflict (409), TransientError (503 / event redelivered).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from shared import logs
from shared.config import Settings
from shared.finite import check_metadata_numbers, nonfinite_problem
from shared.limits import JOB_TOO_LARGE, MAX_UPLOADS, scene_label, scenes_problem, total_problem
from shared.parallel import in_parallel
from shared.outputs import clean_warnings, video_object
from shared.errors import (MESSAGE_MAX_CHARS, Conflict, Forbidden, InvalidRequest, NotFound, TransientError,
                           Unauthorized)
from shared.ports import JobLauncher, ObjectStorage, Publisher
from shared.repository import JobRecord, JobRepository, iso, utcnow
from shared.assets import check_upload_name
from shared.messages import bounded, listing, shown
from shared.spec import parse_spec
from shared.spec_details import errors_to_details
from shared.states import JobStatus, is_terminal
from shared.timeline import least_grid
from shared.video_output import (ReportOutput, event_generation, object_not_current, output_from_object, own_object,
                                 video_not_ours)

# URLs signed at once for one response: keyless signing costs one IAM signBlob round trip per URL
# (401 of them at MAX_SCENES); a small pool keeps the start quick without flooding IAM's quota.
SIGN_WORKERS = 16
ALLOWED_UPLOAD_TYPES = re.compile(r"^(image|audio|video)/[A-Za-z0-9.+-]{1,60}$")
REFUSED_UPLOAD_TYPES = frozenset({"image/svg+xml"})  # vector images are not decodable as frames


# the media types an upload may have, by the spec field that uses it (shared.assets.AssetRef)
_ROLE_TYPES = {"visual": lambda ref: {"image": ("image",), "video": ("video",)}.get(ref.media, ()),
               "narration": lambda ref: ("audio", "video"), "music": lambda ref: ("audio", "video")}


def _bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
ASSET_PREFIX = "jobs/{job_id}/assets/"
SPEC_OBJECT = "jobs/{job_id}/spec.json"
_INPUT_ASSET_RE = re.compile(r"^jobs/([0-9a-f-]{36})/assets/(.+)$")
_OUTPUT_VIDEO_RE = re.compile(r"^exports/([0-9a-f-]{36})/([^/]+\.mp4)$")
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def spec_digest(spec: dict) -> str:
    """SHA-256 of the spec's canonical JSON (sorted keys), to compare idempotent retries."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class UploadDecl(_Wire):
    name: str = Field(min_length=1, max_length=200)
    content_type: str = Field(min_length=3, max_length=100)

    @field_validator("content_type")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.lower()  # media types are case-insensitive (RFC 2045): Image/PNG is image/png


class StartRequest(_Wire):
    spec: dict
    # a ceiling for the body's sake, above EXPORT_MAX_ASSETS (401), whose own message names the setting
    uploads: list[UploadDecl] = Field(default_factory=list, max_length=MAX_UPLOADS)
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)


class ErrorBody(_Wire):
    code: str = Field(min_length=1, max_length=64)
    message: str = Field(min_length=1, max_length=MESSAGE_MAX_CHARS)


class CompleteReport(_Wire):
    """What the render job sends to export_complete (DESIGN §4)."""

    job_id: str
    status: Literal["running", "succeeded", "failed"]
    stage: Literal["preparing", "rendering", "uploading"] | None = None
    progress: float | None = Field(None, ge=0, le=1)
    output: dict[str, Any] | None = None
    error: ErrorBody | None = None
    attempt: int = Field(0, ge=0, le=100)


def _strict(model: type[BaseModel], data: Any, prefix: str = "") -> Any:
    """Validate decoded JSON strictly (no bool->number, no str->number coercion). A non-finite number
    (an overflowing literal such as 1e999 decodes to inf) is an InvalidRequest naming its path."""
    problem = nonfinite_problem(data, prefix)
    if problem:
        raise InvalidRequest(f"{problem['path']} is not a finite number", details=[problem])
    return model.model_validate_json(json.dumps(data, allow_nan=False), strict=True)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_KEY_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # every Unicode control character (category Cc)


def _clean_text(text: str, limit: int = MESSAGE_MAX_CHARS) -> str:
    """Text safe to store and show: control characters (NUL included) removed, length capped."""
    return _CONTROL.sub("", text)[:limit]


def _details(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    # paths echo the client's keys: capped, so an answer stays small whatever was sent
    return [{"path": ((prefix + d["path"]) if d["path"] != "$" else (prefix.rstrip(".") or "$"))[:200],
             "message": d["message"]} for d in errors_to_details(exc)]


@dataclass
class ExportService:
    """Use cases of SceneFlow Export. Construct through shared.bootstrap.get_service()."""

    settings: Settings
    repo: JobRepository
    storage: ObjectStorage
    publisher: Publisher
    launcher: JobLauncher

    # -- export_start --------------------------------------------------------------------------
    def start(self, body: Any, idempotency_key: str | None = None) -> tuple[int, dict]:
        """Create an export job. Returns (202, response) or (200, response) for an idempotent replay.

        body: {spec, uploads?: [{name, contentType}], idempotencyKey?}. Raises InvalidRequest
        (every problem at once), Conflict (same key, other spec), TransientError.
        """
        if not isinstance(body, dict):
            raise InvalidRequest("request body must be a JSON object",
                                 details=[{"path": "$", "message": "must be a JSON object"}])
        details: list[dict[str, str]] = []
        try:
            req = _strict(StartRequest, body)
        except ValidationError as exc:
            details = _details(exc)
            if isinstance(body.get("spec"), dict):  # list the spec's own problems too
                try:
                    parse_spec(body["spec"])
                except InvalidRequest as spec_exc:
                    details += [{"path": "spec." + d["path"] if d["path"] != "$" else "spec",
                                 "message": d["message"]} for d in spec_exc.details]
            raise InvalidRequest(f"request is invalid: {len(details)} problem(s)", details=details) from None
        if idempotency_key is not None and (len(idempotency_key) > 200 or _KEY_CONTROL.search(idempotency_key)):
            raise InvalidRequest("Idempotency-Key header is invalid", details=[
                {"path": "Idempotency-Key", "message": "at most 200 printable characters"}])
        if req.idempotency_key is not None and _KEY_CONTROL.search(req.idempotency_key):
            details.append({"path": "idempotencyKey", "message": "must not contain control characters"})
        if idempotency_key and req.idempotency_key and idempotency_key != req.idempotency_key:
            details.append({"path": "idempotencyKey", "message": "differs from the Idempotency-Key header"})
        spec = None
        try:
            spec = parse_spec(req.spec)
        except InvalidRequest as exc:
            details += [{"path": "spec." + d["path"] if d["path"] != "$" else "spec", "message": d["message"]}
                        for d in exc.details]
        names: list[str] = []
        for i, up in enumerate(req.uploads):
            try:
                check_upload_name(up.name)
            except ValueError as exc:
                details.append({"path": f"uploads[{i}].name", "message": str(exc)})
            if not ALLOWED_UPLOAD_TYPES.match(up.content_type) or up.content_type in REFUSED_UPLOAD_TYPES:
                # the path indexes the client's upload list: the message names the file too
                details.append({"path": f"uploads[{i}].contentType",
                                "message": f"{shown(up.name)}: content type {shown(up.content_type)} is not a "
                                           "raster image/*, audio/* or video/* media type"})
            if up.name in names:
                details.append({"path": f"uploads[{i}].name", "message": f"duplicate upload {up.name!r}"})
            names.append(up.name)
        if len(req.uploads) > self.settings.max_assets:
            details.append({"path": "uploads", "message": f"at most {self.settings.max_assets} uploads per export"})
        if spec is not None:
            details += self._limit_problems(spec)
            for ref in spec.asset_refs():
                path, src = ref.path, ref.src
                if not ref.uploaded:
                    bucket = src[5:].split("/", 1)[0]
                    if bucket != self.settings.input_bucket:
                        details.append({"path": f"spec.{path}",
                                        "message": f"gs:// sources must be in the input bucket "
                                                   f"{self.settings.input_bucket!r}"})
                elif src not in names:
                    details.append({"path": f"spec.{path}",
                                    "message": f"{src!r} is not declared in uploads"})
                else:
                    declared = req.uploads[names.index(src)].content_type
                    kinds = _ROLE_TYPES[ref.role](ref)
                    if kinds and declared.split("/", 1)[0] not in kinds:
                        details.append({"path": f"spec.{path}",
                                        "message": f"{src!r} is declared as {declared}, expected "
                                                   + " or ".join(f"{k}/*" for k in kinds)})
            used = set(spec.bare_asset_names())
            for i, n in enumerate(names):
                if n not in used:
                    details.append({"path": f"uploads[{i}].name", "message": f"{n!r} is not used by the spec"})
        if details:
            raise InvalidRequest(f"request is invalid: {len(details)} problem(s)", details=details)
        assert spec is not None

        key = idempotency_key or req.idempotency_key
        canonical = spec.model_dump(mode="json", by_alias=True)
        # a replay must match the spec and the declared uploads (their content types are signed);
        # the same uploads in another order are the same request (content types already lower-case)
        digest = spec_digest({"spec": canonical, "uploads": sorted(
            (u.model_dump(by_alias=True) for u in req.uploads), key=lambda u: u["name"])})
        if key:
            existing = self.repo.get_by_idempotency_key(key)
            if existing:
                return self._replay(existing, digest, req)
        job_id = str(uuid.uuid4())
        spec_object = SPEC_OBJECT.format(job_id=job_id)
        spec_bytes = json.dumps(canonical, ensure_ascii=False, allow_nan=False).encode()  # strict JSON
        self.storage.upload_bytes(self.settings.input_bucket, spec_object, spec_bytes,
                                  "application/json", if_generation_match=0)
        status = JobStatus.AWAITING_UPLOAD if names else JobStatus.QUEUED
        try:
            job, created = self.repo.create(spec=canonical, spec_sha256=digest, status=status,
                                            uploads_expected=names, idempotency_key=key, job_id=job_id)
        except BaseException:  # no row names this job id: nobody will read its spec.json
            self._delete_quietly(self.settings.input_bucket, spec_object)
            raise
        if not created:  # a concurrent start with this key won: our job id is unused, so is its spec
            self._delete_quietly(self.settings.input_bucket, spec_object)
            return self._replay(job, digest, req)
        logs.info("export created", job_id=job.id, status=job.status.value, uploads=len(names))
        if status == JobStatus.QUEUED:
            self._publish(job.id)
        return 202, self._start_response(job, req)

    def _limit_problems(self, spec) -> list[dict[str, str]]:
        """Configured limits (settings): scene count, the output's length as far as the spec fixes it
        (the render plan's grid, a scene whose length a probe gives at its least), caption length."""
        s, problems = self.settings, []
        if len(spec.scenes) > s.max_scenes:
            problems.append({"path": "spec.scenes", "message": scenes_problem(len(spec.scenes), s.max_scenes)})
        fps = int(spec.output.fps)
        grid, known = least_grid(spec.scenes, fps)
        too_long = total_problem(grid.total / fps, [(scene_label(i, sc.id), grid.frames[i] / fps)
                                                    for i, sc in enumerate(spec.scenes)], s.max_total_s,
                                 overlap_s=sum(grid.transitions) / fps, least=not known)
        if too_long:
            problems.append({"path": "spec.scenes", "message": too_long})
        for i, sc in enumerate(spec.scenes):
            for path, text in _caption_texts(sc):
                if len(text) > s.max_caption_chars:
                    problems.append({"path": f"spec.scenes[{i}].{path}",
                                     "message": f"caption has {len(text)} characters; the limit is "
                                                f"{s.max_caption_chars}"})
        return problems

    def _replay(self, job: JobRecord, digest: str, req: StartRequest) -> tuple[int, dict]:
        if job.spec_sha256 != digest:
            raise Conflict("this idempotency key was used with a different spec or uploads")
        return 200, self._start_response(job, req)

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
                self.settings.input_bucket, ASSET_PREFIX.format(job_id=job.id) + up.name, up.content_type,
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
    def status(self, job_id: str | None) -> dict:
        """The job's public view (DESIGN §4): {jobId, status, stage, progress (4 decimals), createdAt,
        updatedAt, startedAt, finishedAt, attempts, executionName, executionLogUri, history
        [{status, at}], uploads? (awaiting_upload), error? {code, message}, output? (succeeded, with
        signed URLs)}. Raises InvalidRequest for a malformed id, NotFound, TransientError."""
        job_id = self._job_id(job_id)
        body = self.repo.status_view(job_id)  # on PostgreSQL one prepared statement (repository.py)
        if body is None:
            raise NotFound(f"no export job {job_id}")
        if body["status"] == JobStatus.AWAITING_UPLOAD.value and self._expire_if_due(job_id, body):
            body = self.repo.status_view(job_id) or body  # never shown waiting past its expiry
        body["progress"] = round(float(body["progress"]), 4)
        for key in ("uploads", "error"):
            if body[key] is None:
                del body[key]
        output = body.pop("output")
        if output:
            body["output"] = self._public_output(output)
        return body

    def _execution_log_uri(self, execution_name: str) -> str | None:
        """Where the execution's logs are (the launcher's ExecutionStatus.log_uri), asked once at
        dispatch and stored, so status polls never call Cloud Run; None when it cannot be asked."""
        try:
            return getattr(self.launcher.status(execution_name), "log_uri", None)
        except Exception:  # noqa: BLE001 - TransientError or a stand-in's failure: leave it out
            return None

    def _public_output(self, out: dict) -> dict:
        bucket, ttl = self.settings.output_bucket, self.settings.download_url_ttl_s
        name = out["object"]
        view = {"uri": f"gs://{bucket}/{name}", "filename": out.get("filename"),
                "url": self.storage.signed_download_url(bucket, name, ttl, out.get("filename")),
                "durationS": out.get("durationS"), "sizeBytes": out.get("sizeBytes"),
                "width": out.get("width"), "height": out.get("height"), "posterUrl": None,
                "captions": {}, "scenes": out.get("scenes") or [], "loudness": out.get("loudness"),
                "warnings": out.get("warnings") or []}
        if out.get("poster"):
            view["posterUrl"] = self.storage.signed_download_url(bucket, out["poster"], ttl, "poster.jpg")
        for kind in ("srt", "vtt"):
            obj = (out.get("captions") or {}).get(kind)
            if obj:
                view["captions"][kind] = self.storage.signed_download_url(bucket, obj, ttl, f"captions.{kind}")
        return view

    @staticmethod
    def _job_id(job_id: Any) -> str:
        """The canonical (stripped, lowercase) job id. Raises InvalidRequest unless it is a UUID."""
        if isinstance(job_id, str):
            job_id = job_id.strip().lower()
        if not job_id or not isinstance(job_id, str) or not _UUID_RE.fullmatch(job_id):
            raise InvalidRequest("jobId must be a job id (a UUID)",
                                 details=[{"path": "jobId", "message": "must be a UUID"}])
        return job_id

    def _get(self, job_id: str | None, *, with_spec: bool = True) -> JobRecord:
        job_id = self._job_id(job_id)
        job = self.repo.get(job_id, with_spec=with_spec)
        if job is None:
            raise NotFound(f"no export job {job_id}")
        return job

    def check_client_token(self, authorization: str | None) -> None:
        """When EXPORT_CLIENT_TOKEN is set, require it as a bearer token (constant-time compare).
        Raises Unauthorized (missing) or Forbidden (wrong). IAM guards the deployed functions too."""
        expected = self.settings.client_token
        if not expected:
            return
        given = _bearer(authorization)
        if given is None:
            raise Unauthorized("missing bearer token")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise Forbidden("invalid token")

    # -- export_cancel -------------------------------------------------------------------------
    def cancel(self, body: Any) -> dict:
        """Cancel a non-terminal job: {jobId} -> {jobId, status: "canceled"}. Idempotent for a
        canceled job; Conflict (409) for a succeeded or failed one. The Cloud Run execution is
        asked to stop; the render job sees 409 on its next report and publishes no output."""
        job_id = body.get("jobId") if isinstance(body, dict) else None
        job = self._get(job_id)
        if job.status == JobStatus.CANCELED:
            return {"jobId": job.id, "status": job.status.value}
        if not self.repo.transition(job.id, JobStatus.CANCELED, finished_at=utcnow(), stage=None,
                                    error_code="canceled", error_message="canceled by the client"):
            current = self.repo.get(job.id)
            if current and current.status == JobStatus.CANCELED:
                return {"jobId": job.id, "status": "canceled"}
            raise Conflict(f"export {job.id} is already {current.status.value if current else 'gone'}")
        logs.info("export canceled", job_id=job.id)
        current = self.repo.get(job.id)
        if current and current.execution_name:
            try:
                self.launcher.cancel(current.execution_name)
            except TransientError as exc:
                logs.warning("could not cancel the execution; it will stop at its next report", job_id=job.id,
                             reason=exc.message)
        return {"jobId": job.id, "status": "canceled"}

    # -- reconcile_exports ---------------------------------------------------------------------
    def reconcile(self, now: datetime | None = None) -> dict:
        """Repair what at-least-once delivery and crashes leave behind (Cloud Scheduler calls it).

        - queued longer than RECONCILE_QUEUED_AFTER_S: published again (a publish lost after commit);
        - dispatched/running with no report for RECONCILE_STALE_AFTER_S: the launcher is asked; a
          failed, cancelled or vanished execution fails the job with its reason; a succeeded one
          whose finalize was lost succeeds the job from the video's metadata, else fails it;
        - awaiting_upload longer than EXPORT_UPLOAD_TTL_S: failed, naming the missing uploads.
        Each job is repaired on its own. One whose repair raises TransientError (e.g. its execution's
        status lookup failed) is logged, counted as deferred and left as it is for the next run; one
        that raises anything else is logged, counted as skipped and touched, so that the next runs
        list the jobs behind it first (list_stale: at most 100, least recently touched first). Only
        a failed listing ends the run with TransientError (503; Cloud Scheduler retries, every step is
        idempotent). Returns counts: {republished, failed, succeeded, checked, skipped, deferred}.
        """
        from datetime import timedelta

        now = now or utcnow()
        s = self.settings
        counts = {"republished": 0, "failed": 0, "succeeded": 0, "checked": 0, "skipped": 0, "deferred": 0}

        def isolated(job_id: str, repair: Callable[[], str | None]) -> None:
            try:
                outcome = repair()
            except TransientError as exc:  # this job's dependency failed: the next run tries it again
                logs.warning("reconcile deferred an export: a dependency failed", job_id=job_id,
                             reason=exc.message[:300])
                counts["deferred"] += 1
                return
            except Exception as exc:  # noqa: BLE001 - one job's permanent problem must not block the rest
                logs.error("reconcile skipped an export it could not repair", job_id=job_id,
                           error=type(exc).__name__, reason=str(exc)[:300])
                counts["skipped"] += 1
                try:
                    self.repo.touch(job_id)  # to the back of the stale list: the jobs behind it get their turn
                except TransientError:
                    pass  # still skipped; it is only looked at again first
                return
            if outcome:
                counts[outcome] += 1

        def republish(job_id: str) -> str:
            self._publish(job_id)
            self.repo.touch(job_id)
            return "republished"

        for job in self.repo.list_stale([JobStatus.QUEUED], now - timedelta(seconds=s.reconcile_queued_after_s)):
            isolated(job.id, lambda job=job: republish(job.id))
        stale = self.repo.list_stale([JobStatus.DISPATCHED, JobStatus.RUNNING],
                                     now - timedelta(seconds=s.reconcile_stale_after_s))
        for job in stale:
            counts["checked"] += 1
            isolated(job.id, lambda job=job: self._repair_stale(job))
        for job in self.repo.list_stale([JobStatus.AWAITING_UPLOAD], now - timedelta(seconds=s.upload_ttl_s)):
            isolated(job.id, lambda job=job: "failed" if self._expire_uploads(
                job.id, job.uploads_expected, job.uploads_received) else None)
        logs.info("reconcile done", **counts)
        return counts

    def _repair_stale(self, job: JobRecord) -> str | None:
        """Ask the launcher about a stale dispatched/running job: "succeeded" or "failed" when it
        was moved there, None when it is still running or another writer got there first."""
        if not job.execution_name:
            reason = "no execution was recorded for this job"
            state = "missing"
        else:
            st = self.launcher.status(job.execution_name)
            state, reason = st.state, st.reason
        if state == "running":
            return None
        if state == "succeeded" and self._succeed_from_storage(job.id):
            return "succeeded"
        message = {"failed": "the render execution failed", "cancelled": "the render execution was cancelled",
                   "missing": "the render execution vanished",
                   "succeeded": "the render execution ended without publishing a video"}.get(state, state)
        if self.repo.transition(job.id, JobStatus.FAILED, error_code=f"execution_{state}",
                                error_message=f"{message}: {reason}" if reason else message,
                                finished_at=utcnow(), stage=None):
            logs.warning("reconcile failed a stale export", job_id=job.id, execution=job.execution_name,
                         state=state, reason=reason and bounded(reason))
            return "failed"
        return None

    def _expire_uploads(self, job_id: str, expected: list[str], received: list[str]) -> bool:
        """Fail an awaiting_upload job whose uploads did not all arrive in time (upload_expired)."""
        missing = [n for n in expected if n not in received]
        return self.repo.transition(job_id, JobStatus.FAILED, error_code="upload_expired",
                                    error_message=listing("uploads never arrived: ", missing),
                                    finished_at=utcnow())

    def _expire_if_due(self, job_id: str, view: dict) -> bool:
        """Expire the awaiting_upload job of status view `view` once EXPORT_UPLOAD_TTL_S has passed
        since its last update (reconcile's rule, applied when it is read)."""
        since = datetime.fromisoformat(view["updatedAt"].replace("Z", "+00:00"))
        if (utcnow() - since).total_seconds() <= self.settings.upload_ttl_s:
            return False
        uploads = view.get("uploads") or {}
        return self._expire_uploads(job_id, uploads.get("expected") or [], uploads.get("received") or [])

    def _succeed_from_storage(self, job_id: str) -> bool:
        """Succeed a job from its video object (uploaded last) when its finalize event was lost."""
        job = self.repo.get(job_id)
        if job is None:
            return False
        name = video_object(job_id, (job.spec or {}).get("title"))
        info = self.storage.stat(self.settings.output_bucket, name)
        if info is None or info.metadata.get("job-id") != job_id:
            return False
        try:
            return self.object_finalized(self.settings.output_bucket, name, info.generation, info.size,
                                         info.metadata) == "succeeded"
        except InvalidRequest as exc:  # e.g. non-finite metadata: the video cannot complete the job
            logs.warning("video found but not usable", job_id=job_id, object=name, reason=exc.message)
            return False

    # -- export_complete -----------------------------------------------------------------------
    def check_worker_token(self, authorization: str | None) -> None:
        """Bearer token check in constant time (hmac.compare_digest). Raises Unauthorized, Forbidden."""
        given = _bearer(authorization)
        if given is None:
            raise Unauthorized("missing bearer token")
        expected = self.settings.worker_token
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise Forbidden("invalid worker token")

    def complete(self, body: Any) -> dict:
        """Apply a worker report. Duplicated, late or out-of-order reports never change a terminal
        state, and progress never falls. Returns {jobId, status, applied}.

        A report is tied to the job's current attempt: `attempts` is 1 + the highest `attempt` any
        report carried (CLOUD_RUN_TASK_ATTEMPT, 0-based; Cloud Run runs a task's attempts one after
        another). Raises InvalidRequest (400: a malformed report; a succeeded report whose
        output.uri is not this job's non-empty video in the output bucket), NotFound, Conflict
        (409, the worker stops: a running report for a terminal job, a report for a job never
        dispatched, a report from an attempt older than the current one).
        """
        try:
            report = _strict(CompleteReport, body)
        except ValidationError as exc:
            raise InvalidRequest("report is invalid", details=_details(exc)) from None
        try:
            output = _strict(ReportOutput, report.output, "output.") if report.output is not None else None
        except ValidationError as exc:
            raise InvalidRequest("report output is invalid", details=_details(exc, "output.")) from None
        job = self._get(report.job_id, with_spec=False)  # the most frequent write: never decode the storyboard
        if job.status in (JobStatus.AWAITING_UPLOAD, JobStatus.QUEUED):
            raise Conflict(f"export {job.id} is {job.status.value}: it was never dispatched, so no render "
                           "task may report on it")
        if is_terminal(job.status):
            if report.status == "running":
                raise Conflict(f"export {job.id} is {job.status.value}; stop rendering")
            return {"jobId": job.id, "status": job.status.value, "applied": False}  # a late duplicate
        if report.attempt + 1 < job.attempts:
            raise Conflict(f"this report is from attempt {report.attempt} but export {job.id} is at attempt "
                           f"{job.attempts - 1}; stop rendering")
        if report.status == "running":
            started = self.repo.transition(job.id, JobStatus.RUNNING, attempt=report.attempt, started_at=utcnow())
            applied = self.repo.report_progress(job.id, stage=report.stage, progress=report.progress,
                                                attempt=report.attempt) or started
        elif report.status == "succeeded":
            if output is None:
                raise InvalidRequest("a succeeded report needs output",
                                     details=[{"path": "output", "message": "required when status is succeeded"}])
            applied = self._succeed(job.id, self._output_from_report(job.id, output), report.attempt)
        else:
            err = report.error or ErrorBody(code="render_failed", message="render failed")
            applied = self.repo.transition(job.id, JobStatus.FAILED, attempt=report.attempt,
                                           sources=frozenset({JobStatus.DISPATCHED, JobStatus.RUNNING}),
                                           error_code=_clean_text(err.code, 64),
                                           error_message=_clean_text(err.message), finished_at=utcnow(), stage=None)
            if applied:
                logs.warning("export failed", job_id=job.id, code=err.code, reason=err.message)
        current = self.repo.get(job.id, with_spec=False)
        return {"jobId": job.id, "status": current.status.value if current else None, "applied": applied}

    def _output_from_report(self, job_id: str, out: ReportOutput) -> dict:
        """The stored output of a succeeded report, after checking the named video in the bucket
        (video_output.video_not_ours: the worker token is a credential, not proof). Raises InvalidRequest."""
        prefix = f"gs://{self.settings.output_bucket}/"
        name = out.uri[len(prefix):] if out.uri.startswith(prefix) else ""
        if not (own_object(job_id, name) and name.endswith(".mp4")):
            raise InvalidRequest("output.uri must name an .mp4 in this job's folder of the output bucket",
                                 details=[{"path": "output.uri",
                                           "message": f"must look like {prefix}exports/{job_id}/NAME.mp4"}])
        problems = [{"path": f"output.{path}", "message": f"must be a file in exports/{job_id}/"}
                    for path, value in (("poster", out.poster), ("captions.srt", out.captions and out.captions.srt),
                                        ("captions.vtt", out.captions and out.captions.vtt))
                    if value and not own_object(job_id, value)]
        if out.scenes and len(out.scenes) > self.settings.max_scenes:
            problems.append({"path": "output.scenes",
                             "message": f"at most {self.settings.max_scenes} entries (the scene limit)"})
        if problems:
            raise InvalidRequest("report output is invalid", details=problems)
        info = self.storage.stat(self.settings.output_bucket, name)
        why = video_not_ours(info, job_id)
        if why:
            raise InvalidRequest(f"output.uri is not this export's video: {why}",
                                 details=[{"path": "output.uri", "message": f"{prefix}{name}: {why}"}])
        captions = out.captions.model_dump(exclude_none=True) if out.captions else {}
        return {"object": name, "filename": out.filename or name.rsplit("/", 1)[-1], "durationS": out.durationS,
                "sizeBytes": info.size,
                "width": out.width, "height": out.height, "poster": out.poster, "captions": captions,
                "scenes": [e.model_dump() for e in out.scenes or []], "warnings": clean_warnings(out.warnings),
                "loudness": out.loudness.model_dump() if out.loudness else None}

    def _succeed(self, job_id: str, output: dict, attempt: int | None = None) -> bool:
        values: dict[str, Any] = {"output": output, "progress": 1.0, "stage": None, "finished_at": utcnow()}
        applied = self.repo.transition(job_id, JobStatus.SUCCEEDED, attempt=attempt, **values)
        if applied:
            logs.info("export succeeded", job_id=job_id, object=output.get("object"))
        return applied

    # -- dispatch_export -----------------------------------------------------------------------
    def dispatch(self, job_id: str) -> str | None:
        """Claim a queued job and start one render execution. Returns the execution name, or None
        when the claim was lost (duplicate delivery, job not queued). Raises TransientError when
        the launch fails; the claim is released so the redelivered message can retry."""
        if not isinstance(job_id, str) or not _UUID_RE.fullmatch(job_id):
            raise InvalidRequest(f"jobId {str(job_id)[:60]!r} is not a UUID")
        if not self.repo.transition(job_id, JobStatus.DISPATCHED):
            job = self.repo.get(job_id)
            logs.info("dispatch skipped: job not queued", job_id=job_id,
                      status=job.status.value if job else "unknown")
            return None
        try:
            execution = self.launcher.launch(job_id)
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
        output video completes its job only when it is this job's video (video_output.video_not_ours),
        and the output is built from the object's own metadata, never from the event's `metadata`.
        Anything else is acknowledged with a log line.
        """
        if bucket == self.settings.input_bucket:
            m = _INPUT_ASSET_RE.match(name)
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
                return "failed"
            if queued:
                logs.info("all uploads in; export queued", job_id=m.group(1))
                self._publish(m.group(1))
                return "queued"
            return "upload"
        if bucket == self.settings.output_bucket:
            m = _OUTPUT_VIDEO_RE.match(name)
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
            output, dropped = output_from_object(info, self.settings.max_scenes)
            if dropped:
                logs.warning("unsafe names in the video's metadata were dropped", job_id=job_id, object=name,
                             fields=dropped)
            return "succeeded" if self._succeed(job_id, output) else "duplicate"
        logs.warning("finalize from an unexpected bucket", bucket=bucket, object=name)
        return "ignored"


def _caption_texts(scene) -> list[tuple[str, str]]:
    """(path, text) of every caption text of a scene (whole-scene text or timed cues)."""
    cap = getattr(scene, "caption", None)
    if cap is None:
        return []
    out = []
    if getattr(cap, "text", None):
        out.append(("caption.text", cap.text))
    for k, cue in enumerate(getattr(cap, "cues", None) or []):
        out.append((f"caption.cues[{k}].text", cue.text))
    return out
