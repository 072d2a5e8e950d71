"""Settings, read from the environment when asked (never at import).

Every variable is documented in env.example. `get_settings()` is cached per process so warm
Cloud Functions invocations reuse it; tests call `get_settings.cache_clear()` after changing the
environment. Every number, switch and choice is checked when read (NUMBERS: each number's range):
a bad value raises ConfigError naming every bad variable at once, never a bare ValueError later.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping, Sequence

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


class ConfigError(ValueError):
    """Settings that cannot be used: an operator's mistake, never the client's.

    problems: one line per bad variable, "NAME='value': expected ...", e.g. "RENDER_MEMORY_BYTES='8Gi':
    expected a whole number of bytes, at least 1, e.g. 8589934592"; str(error) lists them all.
    The functions answer 503 {"error": {"code": "misconfigured"}}; the render task reports its job
    failed with that code (CODE).
    """

    CODE = "misconfigured"

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("invalid settings: " + "; ".join(self.problems))


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
}
# Settings field -> (variable, allowed values): anything else is refused, not taken as the default
CHOICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "storage_backend": ("EXPORT_STORAGE_BACKEND", BACKENDS),
    "publisher_backend": ("EXPORT_PUBLISHER_BACKEND", BACKENDS),
    "launcher_backend": ("EXPORT_LAUNCHER_BACKEND", BACKENDS),
}


def _num(value: float) -> str:
    """1800.0 -> "1800", 1.5 -> "1.5", 8589934592 -> "8589934592" (never 8.59e+09)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _shown(name: str, raw: object) -> str:
    """NAME='value' for a message (the value cut at 40 characters)."""
    text = str(raw)
    text = text if len(text) <= 40 else text[:40] + "..."
    return f"{name}={text!r}"


@dataclass(frozen=True)
class Settings:
    """All configuration of SceneFlow Export. Units are in the field names (seconds, bytes)."""

    # Google Cloud
    project: str = "sceneflow-local"
    region: str = "us-central1"
    credentials_json: str | None = None  # GOOGLE_APPLICATION_CREDENTIALS_JSON (a service-account key, optional)
    input_bucket: str = "sceneflow-input"
    output_bucket: str = "sceneflow-output"
    jobs_topic: str = "export-jobs"
    # API
    worker_token: str = ""
    api_base: str = "http://127.0.0.1:8080"  # where the render job reaches export_complete
    status_url_base: str | None = None  # public base for statusUrl; defaults to api_base
    complete_url_override: str | None = None  # EXPORT_COMPLETE_URL
    status_url_override: str | None = None  # EXPORT_STATUS_URL
    max_body_bytes: int = 1_000_000
    client_token: str = ""  # EXPORT_CLIENT_TOKEN: when set, start/status/cancel need this bearer token
    # Limits (each a setting; see env.example)
    max_scenes: int = 200
    max_total_s: float = 1800.0  # output length: the plan as far as the spec fixes it at start; the probed plan in the job
    max_assets: int = 401  # a visual and a narration per scene at max_scenes, plus music
    max_asset_bytes: int = 500 * 1024 * 1024
    max_job_bytes: int = 2 * 1024 * 1024 * 1024  # all of a job's media: they sit in the task's in-memory disk
    max_caption_chars: int = 500
    max_output_bytes: int = 2 * 1024 * 1024 * 1024
    # reconcile_exports thresholds, seconds
    reconcile_queued_after_s: float = 120.0
    reconcile_stale_after_s: float = 600.0
    upload_ttl_s: float = 3600.0
    upload_url_ttl_s: int = 900
    download_url_ttl_s: int = 900
    # Database
    database_url: str = "sqlite:///.local/sceneflow.db"
    instance_connection_name: str | None = None  # Cloud SQL: project:region:instance
    db_user: str = "postgres"
    db_password: str | None = None
    db_name: str = "sceneflow"
    db_iam_auth: bool = False
    # Adapters: "google" talks to Google APIs (or their emulators); "local" uses loopback stand-ins.
    storage_backend: str = "google"
    publisher_backend: str = "google"
    launcher_backend: str = "google"
    local_push_url: str | None = None  # local publisher: URL of dispatch_export
    # Render job (Cloud Run Job)
    render_job_name: str = "sceneflow-render"
    render_task_timeout_s: int = 3600
    render_memory_bytes: int = 8 * 1024 * 1024 * 1024  # the task's memory limit (= Cloud Run --memory 8Gi)
    render_max_retries: int = 3
    render_python: str | None = None  # local launcher: interpreter for `python -m render_job`
    render_container_image: str | None = None  # local launcher: run each task in this image (podman)
    render_workdir: str | None = None
    render_log_dir: str | None = None  # local launcher: one log file per execution (attempts append)
    render_report_interval_s: float = 2.0
    ffmpeg_binary: str | None = None
    ffmpeg_threads: int = 0
    # Render job preflight limits and FFmpeg watchdog (per asset file; see env.example)
    render_max_image_pixels: int = 400_000_000  # any still image, from its header
    render_max_decode_pixels: int = 50_000_000  # non-JPEG stills (decoded at full size)
    render_max_media_s: float = 3600.0  # any clip, narration or music file, seconds
    render_stall_s: float = 60.0  # kill FFmpeg when its output position has not moved for this long
    render_timeout_base_s: float = 60.0  # FFmpeg time limit = base + per_output_s x output seconds
    render_timeout_per_output_s: float = 1.5  # 60 + 1.5 x 1800 s fits the 3600 s task timeout
    render_segment_scenes: int = 24  # scenes per FFmpeg graph; more are rendered in segments (memory)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Raises ConfigError when a number is out of its range (NUMBERS) or a choice unknown (CHOICES),
        however the Settings were made (get_settings, or tests and tools building them directly)."""
        defaults = Settings.__dataclass_fields__
        problems = [f"{_shown(rule.env, getattr(self, name))}: expected {rule.expected(defaults[name].default)}"
                    for name, rule in NUMBERS.items() if not rule.allows(getattr(self, name))]
        problems += [f"{_shown(env, getattr(self, name))}: expected one of {', '.join(allowed)}"
                     for name, (env, allowed) in CHOICES.items() if getattr(self, name) not in allowed]
        if problems:
            raise ConfigError(problems)

    @property
    def public_status_base(self) -> str:
        return (self.status_url_base or self.api_base).rstrip("/")

    @property
    def complete_url(self) -> str:
        """Where the render job POSTs reports: EXPORT_COMPLETE_URL, else {EXPORT_API_BASE}/export_complete."""
        return complete_url(self.api_base, self.complete_url_override)

    @property
    def status_url(self) -> str:
        """Public export_status URL (statusUrl): EXPORT_STATUS_URL, else {base}/export_status."""
        return self.status_url_override or self.public_status_base + "/export_status"

    def credentials_info(self) -> dict | None:
        """The parsed GOOGLE_APPLICATION_CREDENTIALS_JSON, or None when unset.

        Raises:
            ValueError: the variable is set but is not a JSON object.
        """
        if not self.credentials_json:
            return None
        info = json.loads(self.credentials_json)
        if not isinstance(info, dict):
            raise ValueError("GOOGLE_APPLICATION_CREDENTIALS_JSON must be a JSON object")
        return info


def complete_url(api_base: str, override: str | None) -> str:
    """EXPORT_COMPLETE_URL (`override`) when set, else {EXPORT_API_BASE}/export_complete."""
    return override or api_base.rstrip("/") + "/export_complete"


def report_target(environ: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """(export_complete URL, worker token) read straight from `environ`: both are strings, never
    invalid, so the render task can still report its job failed when the other settings are."""
    return (complete_url(environ.get("EXPORT_API_BASE", Settings.api_base), environ.get("EXPORT_COMPLETE_URL") or None),
            environ.get("EXPORT_WORKER_TOKEN", ""))


def _read(environ: Mapping[str, str]) -> tuple[dict, list[str]]:
    """({field: value} of the numbers, switches and choices set in `environ`, [problems]); an unset
    or empty variable keeps the field's default. Ranges are checked too, so that one ConfigError
    names every bad variable, whether it does not parse or is out of range."""
    defaults, values, problems = Settings.__dataclass_fields__, {}, []
    for name, rule in NUMBERS.items():
        raw = environ.get(rule.env)
        if raw in (None, ""):
            continue
        value = rule.parse(raw)
        if value is None or not rule.allows(value):
            problems.append(f"{_shown(rule.env, raw)}: expected {rule.expected(defaults[name].default)}")
        values[name] = value
    for name, (env, allowed) in CHOICES.items():
        raw = environ.get(env)
        if raw not in (None, ""):
            values[name] = raw
            if raw not in allowed:
                problems.append(f"{_shown(env, raw)}: expected one of {', '.join(allowed)}")
    raw = environ.get("DB_IAM_AUTH", "")
    if raw.strip().lower() in _TRUE | _FALSE:
        values["db_iam_auth"] = raw.strip().lower() in _TRUE
    elif raw:
        problems.append(f"{_shown('DB_IAM_AUTH', raw)}: expected true or false")
    return values, problems


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read Settings from os.environ once per process (see env.example for each variable).

    Raises:
        ConfigError: a number does not parse or is out of its range (NUMBERS), a backend or
            DB_IAM_AUTH is not one of its values; every bad variable is named (not cached: the next
            call reads the environment again).
    """
    e = os.environ.get
    values, problems = _read(os.environ)
    if problems:
        raise ConfigError(problems)
    return Settings(
        project=e("GOOGLE_CLOUD_PROJECT") or e("GCP_PROJECT") or "sceneflow-local",
        region=e("GOOGLE_CLOUD_REGION", "us-central1"),
        credentials_json=e("GOOGLE_APPLICATION_CREDENTIALS_JSON") or None,
        input_bucket=e("EXPORT_INPUT_BUCKET", "sceneflow-input"),
        output_bucket=e("EXPORT_OUTPUT_BUCKET", "sceneflow-output"),
        jobs_topic=e("EXPORT_JOBS_TOPIC", "export-jobs"),
        worker_token=e("EXPORT_WORKER_TOKEN", ""),
        api_base=e("EXPORT_API_BASE", "http://127.0.0.1:8080"),
        status_url_base=e("EXPORT_STATUS_URL_BASE") or None,
        complete_url_override=e("EXPORT_COMPLETE_URL") or None,
        status_url_override=e("EXPORT_STATUS_URL") or None,
        client_token=e("EXPORT_CLIENT_TOKEN", ""),
        database_url=e("DATABASE_URL", "sqlite:///.local/sceneflow.db"),
        instance_connection_name=e("INSTANCE_CONNECTION_NAME") or None,
        db_user=e("DB_USER", "postgres"),
        db_password=e("DB_PASSWORD") or None,
        db_name=e("DB_NAME", "sceneflow"),
        local_push_url=e("EXPORT_LOCAL_PUSH_URL") or None,
        render_job_name=e("RENDER_JOB_NAME", "sceneflow-render"),
        render_python=e("RENDER_PYTHON") or None,
        render_container_image=e("RENDER_CONTAINER_IMAGE") or None,
        render_workdir=e("RENDER_WORKDIR") or None,
        render_log_dir=e("RENDER_LOG_DIR") or None,
        ffmpeg_binary=e("FFMPEG_BINARY") or None,
        **values,  # numbers, backends, DB_IAM_AUTH: checked by _read
    )
