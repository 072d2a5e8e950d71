"""The HTTP API's wire shapes and request validation (DESIGN §4): the start request, bearer tokens,
job ids, and every check of a request that needs no stored state (the render job's report to
export_complete: shared.worker_report).

Validation is strict JSON (no bool->number or str->number coercion, no NaN/Infinity) and lists every
problem at once: InvalidRequest with details [{path, message}] (400); tokens raise Unauthorized
(401) or Forbidden (403). Pure: no I/O.
"""
from __future__ import annotations

import hmac
import json
import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from shared.assets import AssetRef, check_upload_name
from shared.config import Settings
from shared.errors import MESSAGE_MAX_CHARS, Forbidden, InvalidRequest, Unauthorized
from shared.finite import nonfinite_problem
from shared.identity import OWNER_HEADER, OWNER_PATTERN
from shared.labels import (CONTROL_CHARS, LABEL_KEY, LABEL_VALUE, MAX_EXTERNAL_REF, MAX_LABELS,
                           external_ref_problems, label_problems)
from shared.limits import MAX_UPLOADS, scene_label, scenes_problem, total_problem
from shared.messages import shown
from shared.spec import ExportSpec, parse_spec
from shared.spec_details import errors_to_details
from shared.timeline import least_grid

ALLOWED_UPLOAD_TYPES = re.compile(r"^(image|audio|video)/[A-Za-z0-9.+-]{1,60}$")
REFUSED_UPLOAD_TYPES = frozenset({"image/svg+xml"})  # vector images are not decodable as frames
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


# -- export_start -----------------------------------------------------------------------------------------
class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class UploadDecl(_Wire):
    name: str = Field(min_length=1, max_length=200)
    content_type: str = Field(min_length=3, max_length=100)

    @field_validator("content_type")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.lower()  # media types are case-insensitive (RFC 2045): Image/PNG is image/png


def _object_documented_as(model: type[BaseModel]) -> BeforeValidator:
    """A field validated as a plain JSON object here (its own parser gives the error paths) and
    published with `model`'s JSON Schema (a $ref in the OpenAPI document)."""
    return BeforeValidator(lambda value: value, json_schema_input_type=model)


class StartRequest(_Wire):
    spec: Annotated[dict, _object_documented_as(ExportSpec)]  # parse_spec validates it, paths under spec.
    # a ceiling for the body's sake, above EXPORT_MAX_ASSETS (401), whose own message names the setting
    uploads: list[UploadDecl] = Field(default_factory=list, max_length=MAX_UPLOADS)
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)
    # the app's own names for the job (label_problems, external_ref_problems): shown, listed, filtered
    labels: dict[str, str] = Field(default_factory=dict, max_length=MAX_LABELS, json_schema_extra={
        "propertyNames": {"pattern": f"^{LABEL_KEY.pattern}$"},  # published; checked by label_problems
        "additionalProperties": {"type": "string", "pattern": f"^{LABEL_VALUE.pattern}$"}})
    external_ref: str | None = Field(None, min_length=1, max_length=MAX_EXTERNAL_REF)
    # where the job's events are POSTed, signed (shared.webhooks); checked by shared.webhook_url
    webhook_url: str | None = Field(None, min_length=1, max_length=2000)


class ClientHeaders(BaseModel):
    """The request headers of every client operation (shared.auth checks them)."""

    owner: str | None = Field(None, alias=OWNER_HEADER, min_length=1, max_length=128, pattern=OWNER_PATTERN,
                              description="with a server key: the owner (author) the key acts for; default: "
                                          "`key:` + the key's name. A 400 with an ID token or the client token.")


class StartHeaders(ClientHeaders):
    """export_start's request headers (parse_start checks them)."""

    idempotency_key: str | None = Field(None, alias="Idempotency-Key", min_length=1, max_length=200,
                                        description="the same as the body's idempotencyKey (either, or both equal)")


# -- export_status, export_cancel ---------------------------------------------------------------------------
# a UUID; job_id also takes one in upper case or with surrounding blanks
_JOB_ID_DOC = {"description": "the job id (a UUID)", "json_schema_extra": {"format": "uuid"}}


class StatusQuery(_Wire):
    """export_status's query: ?jobId= (checked by job_id)."""

    job_id: str = Field(**_JOB_ID_DOC)


class CancelRequest(_Wire):
    """export_cancel's body (parse_cancel)."""

    job_id: str = Field(**_JOB_ID_DOC)


# -- validation helpers ---------------------------------------------------------------------------------------
def strict(model: type[BaseModel], data: Any, prefix: str = "") -> Any:
    """Validate decoded JSON strictly (no bool->number, no str->number coercion). A non-finite number
    (an overflowing literal such as 1e999 decodes to inf) is an InvalidRequest naming its path."""
    problem = nonfinite_problem(data, prefix)
    if problem:
        raise InvalidRequest(f"{problem['path']} is not a finite number", details=[problem])
    return model.model_validate_json(json.dumps(data, allow_nan=False), strict=True)


def details(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    """A request's validation errors as [{path, message}], paths under `prefix`."""
    # paths echo the client's keys: capped, so an answer stays small whatever was sent
    return [{"path": ((prefix + d["path"]) if d["path"] != "$" else (prefix.rstrip(".") or "$"))[:200],
             "message": d["message"]} for d in errors_to_details(exc)]


def clean_text(text: str, limit: int = MESSAGE_MAX_CHARS) -> str:
    """Text safe to store and show: control characters (NUL included) removed, length capped."""
    return _CONTROL.sub("", text)[:limit]


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def check_bearer(authorization: str | None, expected: str | None, refused: str = "invalid token") -> None:
    """Require `Authorization: Bearer <expected>` (constant-time compare). Raises Unauthorized when no
    bearer token is given, Forbidden(`refused`) when it is not `expected` (always when that is empty)."""
    given = bearer(authorization)
    if given is None:
        raise Unauthorized("missing bearer token")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Forbidden(refused)


def is_job_id(value: Any) -> bool:
    """True for a job id: a lowercase UUID string."""
    return isinstance(value, str) and _UUID_RE.fullmatch(value) is not None


def job_id(value: Any) -> str:
    """The canonical (stripped, lowercase) job id. Raises InvalidRequest unless it is a UUID."""
    if isinstance(value, str):
        value = value.strip().lower()
    if not value or not is_job_id(value):
        raise InvalidRequest("jobId must be a job id (a UUID)",
                             details=[{"path": "jobId", "message": "must be a UUID"}])
    return value


# -- export_start ------------------------------------------------------------------------------------------
def _under_spec(problems: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"path": "spec." + d["path"] if d["path"] != "$" else "spec", "message": d["message"]} for d in problems]


def parse_start(body: Any, header_key: str | None, settings: Settings) -> tuple[StartRequest, ExportSpec]:
    """Validate a start request {spec, uploads?: [{name, contentType}], idempotencyKey?, labels?,
    externalRef?} and its
    Idempotency-Key header against the spec rules and the configured limits. Returns (request, spec).
    Raises InvalidRequest listing every problem at once."""
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object",
                             details=[{"path": "$", "message": "must be a JSON object"}])
    problems: list[dict[str, str]] = []
    try:
        req = strict(StartRequest, body)
    except ValidationError as exc:
        problems = details(exc)
        if isinstance(body.get("spec"), dict):  # list the spec's own problems too
            try:
                parse_spec(body["spec"])
            except InvalidRequest as spec_exc:
                problems += _under_spec(spec_exc.details)
        raise InvalidRequest(f"request is invalid: {len(problems)} problem(s)", details=problems) from None
    if header_key is not None and (len(header_key) > 200 or CONTROL_CHARS.search(header_key)):
        raise InvalidRequest("Idempotency-Key header is invalid", details=[
            {"path": "Idempotency-Key", "message": "at most 200 printable characters"}])
    if req.idempotency_key is not None and CONTROL_CHARS.search(req.idempotency_key):
        problems.append({"path": "idempotencyKey", "message": "must not contain control characters"})
    if header_key and req.idempotency_key and header_key != req.idempotency_key:
        problems.append({"path": "idempotencyKey", "message": "differs from the Idempotency-Key header"})
    problems += label_problems(req.labels) + external_ref_problems(req.external_ref)
    spec = None
    try:
        spec = parse_spec(req.spec)
    except InvalidRequest as exc:
        problems += _under_spec(exc.details)
    problems += _upload_problems(req.uploads, settings.max_assets)
    if spec is not None:
        problems += _limit_problems(spec, settings)
        problems += _reference_problems(spec, req.uploads, settings.input_bucket)
    if problems:
        raise InvalidRequest(f"request is invalid: {len(problems)} problem(s)", details=problems)
    assert spec is not None
    return req, spec


def _upload_problems(uploads: list[UploadDecl], max_assets: int) -> list[dict[str, str]]:
    """Each declared upload: a valid name, a raster image/audio/video type, declared once; at most max_assets."""
    problems, names = [], []
    for i, up in enumerate(uploads):
        try:
            check_upload_name(up.name)
        except ValueError as exc:
            problems.append({"path": f"uploads[{i}].name", "message": str(exc)})
        if not ALLOWED_UPLOAD_TYPES.match(up.content_type) or up.content_type in REFUSED_UPLOAD_TYPES:
            # the path indexes the client's upload list: the message names the file too
            problems.append({"path": f"uploads[{i}].contentType",
                             "message": f"{shown(up.name)}: content type {shown(up.content_type)} is not a "
                                        "raster image/*, audio/* or video/* media type"})
        if up.name in names:
            problems.append({"path": f"uploads[{i}].name", "message": f"duplicate upload {up.name!r}"})
        names.append(up.name)
    if len(uploads) > max_assets:
        problems.append({"path": "uploads", "message": f"at most {max_assets} uploads per export"})
    return problems


def _upload_kinds(ref: AssetRef) -> tuple[str, ...]:
    """The media types (image, audio, video) an upload used by `ref` may be declared as."""
    if ref.role == "visual":
        return {"image": ("image",), "video": ("video",)}.get(ref.media, ())
    return ("audio", "video")


def _reference_problems(spec: ExportSpec, uploads: list[UploadDecl], input_bucket: str) -> list[dict[str, str]]:
    """Every src is a declared upload of a type its field can play, or a gs:// URI in the input
    bucket; every upload is used."""
    problems: list[dict[str, str]] = []
    declared = {up.name: up.content_type for up in reversed(uploads)}  # the first declaration wins
    for ref in spec.asset_refs():
        path, src = f"spec.{ref.path}", ref.src
        if not ref.uploaded:
            if src[5:].split("/", 1)[0] != input_bucket:
                problems.append({"path": path, "message": f"gs:// sources must be in the input bucket "
                                                          f"{input_bucket!r}"})
        elif src not in declared:
            problems.append({"path": path, "message": f"{src!r} is not declared in uploads"})
        else:
            kinds = _upload_kinds(ref)
            if kinds and declared[src].split("/", 1)[0] not in kinds:
                problems.append({"path": path, "message": f"{src!r} is declared as {declared[src]}, expected "
                                                          + " or ".join(f"{k}/*" for k in kinds)})
    used = set(spec.bare_asset_names())
    problems += [{"path": f"uploads[{i}].name", "message": f"{up.name!r} is not used by the spec"}
                 for i, up in enumerate(uploads) if up.name not in used]
    return problems


def _limit_problems(spec: ExportSpec, settings: Settings) -> list[dict[str, str]]:
    """Configured limits (settings): scene count, the output's length as far as the spec fixes it
    (the render plan's grid, a scene whose length a probe gives at its least), caption length."""
    s, problems = settings, []
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


# -- export_cancel -------------------------------------------------------------------------------------------
def parse_cancel(body: Any) -> str:
    """The job id of a cancel request {jobId} (canonical, see job_id). Raises InvalidRequest."""
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object",
                             details=[{"path": "$", "message": "must be a JSON object"}])
    try:
        req = strict(CancelRequest, body)
    except ValidationError as exc:
        raise InvalidRequest("request is invalid", details=details(exc)) from None
    return job_id(req.job_id)
