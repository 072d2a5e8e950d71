"""Each setting's environment variable and rule (shared.config reads them): NUMBERS (a number's
unit, range and what 0 means), CHOICES (allowed values), VARIABLES (the rest), the client API's
authentication methods and ID token algorithms. Pure: no I/O; messages name the variable.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from pydantic import AliasChoices

from shared.limits import MAX_UPLOADS
from shared.ports import MAX_OBJECT_BYTES
from shared.spec import MAX_CAPTION_CHARS, MAX_SCENES

MAX_SIGNED_URL_S = 604800  # a V4 signed URL is valid for at most 7 days (GCS)
MAX_TASK_TIMEOUT_S = 604800  # Cloud Run's longest task timeout (7 days)
MAX_TASK_RETRIES = 10  # Cloud Run's most task retries
_INT_RE = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}
BACKENDS = ("google", "local")


@dataclass(frozen=True)
class Number:
    """The rule of one numeric setting: its variable, type, unit (for messages) and range.

    low: the smallest value allowed (inclusive; exclusive when low_open); zero: what 0 means when
    low is 0 (a documented mode, e.g. "auto"); high: the largest value allowed, when a cap elsewhere
    (high_why) makes a larger one meaningless: the setting can only lower that cap.
    """

    env: str
    kind: type  # int or float
    unit: str
    low: float = 1
    low_open: bool = False
    zero: str = ""
    high: float | None = None
    high_why: str = ""

    def expected(self, default: float) -> str:
        """What a valid value looks like: "a whole number of bytes, at least 1, e.g. 8589934592"."""
        what = f"a whole number of {self.unit}" if self.kind is int else f"a number of {self.unit}"
        low = f"greater than {_num(self.low)}" if self.low_open else f"at least {_num(self.low)}"
        if self.zero:
            low += f" (0 = {self.zero})"
        high = (f" and at most {_num(self.high)}, {self.high_why} (the setting can only lower it)"
                if self.high is not None else "")
        return f"{what}, {low}{high}, e.g. {_num(default)}"

    def parse(self, raw: str) -> float | None:
        """The value of `raw`, or None when it is not a finite number of this kind."""
        text = raw.strip()
        if not (_INT_RE if self.kind is int else _FLOAT_RE).fullmatch(text):
            return None
        value = self.kind(text)
        return value if math.isfinite(value) else None

    def allows(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and (self.high is None or value <= self.high)


_POSITIVE_S = {"kind": float, "unit": "seconds", "low": 0, "low_open": True}
# waits compared with timestamps: `now - wait` must stay in the datetime range (1e11 s: every reconcile a 500)
_AT_MOST_100_YEARS = {"high": 100 * 365 * 86400, "high_why": "100 years"}
MIN_TASK_MEMORY_BYTES = 512 * 2**20  # Cloud Run's smallest task memory; a number below it is a unit slip
# Settings field -> its rule. Limits are positive: 0 is refused, never "no limit".
NUMBERS: dict[str, Number] = {
    "max_body_bytes": Number("EXPORT_MAX_BODY_BYTES", int, "bytes"),
    "max_scenes": Number("EXPORT_MAX_SCENES", int, "scenes", high=MAX_SCENES, high_why="the spec's MAX_SCENES"),
    "max_total_s": Number("EXPORT_MAX_TOTAL_S", **_POSITIVE_S),
    "max_assets": Number("EXPORT_MAX_ASSETS", int, "uploads", high=MAX_UPLOADS,
                         high_why="the start request's ceiling on uploads"),
    "max_asset_bytes": Number("EXPORT_MAX_ASSET_BYTES", int, "bytes", high=MAX_OBJECT_BYTES,
                              high_why="Cloud Storage's largest object"),
    "max_job_bytes": Number("EXPORT_MAX_JOB_BYTES", int, "bytes"),
    "max_caption_chars": Number("EXPORT_MAX_CAPTION_CHARS", int, "characters", high=MAX_CAPTION_CHARS,
                                high_why="the spec's longest caption text"),
    "max_output_bytes": Number("EXPORT_MAX_OUTPUT_BYTES", int, "bytes", high=MAX_OBJECT_BYTES,
                               high_why="Cloud Storage's largest object (the MP4 is one)"),
    "reconcile_queued_after_s": Number("RECONCILE_QUEUED_AFTER_S", float, "seconds", low=0, zero="at once", **_AT_MOST_100_YEARS),
    "reconcile_stale_after_s": Number("RECONCILE_STALE_AFTER_S", float, "seconds", low=0, zero="at once", **_AT_MOST_100_YEARS),
    "upload_ttl_s": Number("EXPORT_UPLOAD_TTL_S", **_POSITIVE_S, **_AT_MOST_100_YEARS),
    "upload_url_ttl_s": Number("EXPORT_UPLOAD_URL_TTL_S", int, "seconds", high=MAX_SIGNED_URL_S,
                               high_why="a signed URL's longest life (7 days)"),
    "download_url_ttl_s": Number("EXPORT_DOWNLOAD_URL_TTL_S", int, "seconds", high=MAX_SIGNED_URL_S,
                                 high_why="a signed URL's longest life (7 days)"),
    "render_task_timeout_s": Number("RENDER_TASK_TIMEOUT_S", int, "seconds", high=MAX_TASK_TIMEOUT_S,
                                    high_why="Cloud Run's longest task timeout (7 days)"),
    "render_memory_bytes": Number("RENDER_MEMORY_BYTES", int, "bytes", low=MIN_TASK_MEMORY_BYTES),
    "render_max_retries": Number("RENDER_MAX_RETRIES", int, "retries", low=0, zero="none",
                                 high=MAX_TASK_RETRIES, high_why="Cloud Run's most task retries"),
    "render_report_interval_s": Number("RENDER_REPORT_INTERVAL_S", float, "seconds", low=0,
                                       zero="every progress update"),
    "ffmpeg_threads": Number("FFMPEG_THREADS", int, "threads", low=0, zero="auto"),
    "render_max_image_pixels": Number("RENDER_MAX_IMAGE_PIXELS", int, "pixels"),
    "render_max_decode_pixels": Number("RENDER_MAX_DECODE_PIXELS", int, "pixels"),
    "render_max_media_s": Number("RENDER_MAX_MEDIA_S", **_POSITIVE_S),
    "render_stall_s": Number("RENDER_STALL_S", **_POSITIVE_S),
    "render_timeout_base_s": Number("RENDER_TIMEOUT_BASE_S", float, "seconds", low=0),
    "render_timeout_per_output_s": Number("RENDER_TIMEOUT_PER_OUTPUT_S", **_POSITIVE_S),
    "render_segment_scenes": Number("RENDER_SEGMENT_SCENES", int, "scenes", low=0, zero="never segment"),
    "render_max_parts": Number("RENDER_MAX_PARTS", int, "parts", high=MAX_SCENES,
                               high_why="the spec's MAX_SCENES (a part holds at least one whole scene)"),
    "render_parallel_after_s": Number("RENDER_PARALLEL_AFTER_S", float, "seconds", low=0,
                                      zero="every export long enough for two parts"),
    "render_min_part_s": Number("RENDER_MIN_PART_S", float, "seconds", low=1),
    "render_stitch_task_timeout_s": Number("RENDER_STITCH_TASK_TIMEOUT_S", int, "seconds", high=MAX_TASK_TIMEOUT_S,
                                           high_why="Cloud Run's longest task timeout (7 days)"),
    "local_task_parallelism": Number("EXPORT_LOCAL_TASK_PARALLELISM", int, "tasks"),
    "oidc_clock_skew_s": Number("EXPORT_OIDC_CLOCK_SKEW_S", int, "seconds", low=0, zero="none", high=600,
                                high_why="10 minutes (a clock further off is broken, not skewed)"),
    "render_vcpus": Number("RENDER_VCPUS", float, "vCPUs", low=0, zero="the CPUs this process may use",
                           high=1024, high_why="the most a report may name (shared.worker_report.ReportUsage)"),
    "price_vcpu_second_usd": Number("EXPORT_PRICE_VCPU_SECOND_USD", float, "US dollars", low=0, zero="free"),
    "price_gib_second_usd": Number("EXPORT_PRICE_GIB_SECOND_USD", float, "US dollars", low=0, zero="free"),
    "webhook_timeout_s": Number("EXPORT_WEBHOOK_TIMEOUT_S", **_POSITIVE_S, high=60, high_why="a push's ack deadline"),
    "webhook_progress_interval_s": Number("EXPORT_WEBHOOK_PROGRESS_INTERVAL_S", float, "seconds", low=0,
                                          zero="every applied progress report"),
    "local_push_max_attempts": Number("EXPORT_LOCAL_PUSH_MAX_ATTEMPTS", int, "attempts", high=100,
                                      high_why="Pub/Sub's most delivery attempts"),
    "local_push_backoff_s": Number("EXPORT_LOCAL_PUSH_BACKOFF_S", **_POSITIVE_S),
}
# Settings field -> (variable, allowed values): anything else is refused, not taken as the default
CHOICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "storage_backend": ("EXPORT_STORAGE_BACKEND", BACKENDS),
    "publisher_backend": ("EXPORT_PUBLISHER_BACKEND", BACKENDS),
    "launcher_backend": ("EXPORT_LAUNCHER_BACKEND", BACKENDS),
}
# Settings field -> its variable, for the settings that are neither NUMBERS nor CHOICES
VARIABLES: dict[str, str | AliasChoices] = {
    "project": AliasChoices("GOOGLE_CLOUD_PROJECT", "GCP_PROJECT"),  # the first one set and not empty
    "region": "GOOGLE_CLOUD_REGION", "credentials_json": "GOOGLE_APPLICATION_CREDENTIALS_JSON",
    "input_bucket": "EXPORT_INPUT_BUCKET", "output_bucket": "EXPORT_OUTPUT_BUCKET", "jobs_topic": "EXPORT_JOBS_TOPIC",
    "worker_token": "EXPORT_WORKER_TOKEN", "api_base": "EXPORT_API_BASE", "status_url_base": "EXPORT_STATUS_URL_BASE",
    "complete_url_override": "EXPORT_COMPLETE_URL", "status_url_override": "EXPORT_STATUS_URL",
    "client_token": "EXPORT_CLIENT_TOKEN", "database_url": "DATABASE_URL",
    "instance_connection_name": "INSTANCE_CONNECTION_NAME", "db_user": "DB_USER", "db_password": "DB_PASSWORD",
    "db_name": "DB_NAME", "db_iam_auth": "DB_IAM_AUTH", "auto_migrate": "EXPORT_AUTO_MIGRATE",
    "local_storage_dir": "EXPORT_LOCAL_STORAGE_DIR", "local_push_url": "EXPORT_LOCAL_PUSH_URL",
    "render_job_name": "RENDER_JOB_NAME", "render_stitch_job_name": "RENDER_STITCH_JOB_NAME",
    "render_python": "RENDER_PYTHON",
    "render_container_image": "RENDER_CONTAINER_IMAGE", "render_workdir": "RENDER_WORKDIR",
    "render_log_dir": "RENDER_LOG_DIR", "ffmpeg_binary": "FFMPEG_BINARY",
    "auth": "EXPORT_AUTH", "oidc_issuer": "EXPORT_OIDC_ISSUER", "oidc_audience": "EXPORT_OIDC_AUDIENCE",
    "oidc_jwks_url": "EXPORT_OIDC_JWKS_URL", "oidc_algorithms": "EXPORT_OIDC_ALGORITHMS",
    "deployed_service": "K_SERVICE", "cors_origins": "EXPORT_CORS_ORIGINS",
    "price_source": "EXPORT_PRICE_SOURCE",
    "events_topic": "EXPORT_EVENTS_TOPIC", "webhook_default_url": "EXPORT_WEBHOOK_DEFAULT_URL",
    "webhook_allow_http": "EXPORT_WEBHOOK_ALLOW_HTTP", "webhook_allow_private_hosts": "EXPORT_WEBHOOK_ALLOW_PRIVATE_HOSTS",
    "webhook_ca_file": "EXPORT_WEBHOOK_CA_FILE", "local_events_push_url": "EXPORT_LOCAL_EVENTS_PUSH_URL",
    "local_dead_letter_file": "EXPORT_LOCAL_DEAD_LETTER_FILE",
}
# EXPORT_AUTH: the client API's methods (shared/auth.py); "open" stands alone
AUTH_METHODS = ("server_key", "id_token", "client_token", "open")
# ID token algorithms a deployment may allow: asymmetric only (an HMAC "key" would be the public JWKS)
OIDC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


def variable(field: str) -> str | AliasChoices:
    """The environment variable of a Settings field (NUMBERS, CHOICES or VARIABLES)."""
    if field in NUMBERS:
        return NUMBERS[field].env
    return CHOICES[field][0] if field in CHOICES else VARIABLES[field]


def _num(value: float) -> str:
    """1800.0 -> "1800", 1.5 -> "1.5", 8589934592 -> "8589934592" (never 8.59e+09)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _shown(name: str, raw: object) -> str:
    """NAME='value' for a message (the value cut at 40 characters)."""
    text = str(raw)
    text = text if len(text) <= 40 else text[:40] + "..."
    return f"{name}={text!r}"
