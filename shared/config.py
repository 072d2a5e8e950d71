"""Settings, read from the environment when asked (never at import), with pydantic-settings.

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
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping, Sequence

from pydantic import AliasChoices, AliasGenerator, ValidationError, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

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
    "oidc_clock_skew_s": Number("EXPORT_OIDC_CLOCK_SKEW_S", int, "seconds", low=0, zero="none", high=600,
                                high_why="10 minutes (a clock further off is broken, not skewed)"),
    "render_vcpus": Number("RENDER_VCPUS", float, "vCPUs", low=0, zero="the CPUs this process may use",
                           high=1024, high_why="the most a report may name (shared.api.ReportUsage)"),
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
    "render_job_name": "RENDER_JOB_NAME", "render_python": "RENDER_PYTHON",
    "render_container_image": "RENDER_CONTAINER_IMAGE", "render_workdir": "RENDER_WORKDIR",
    "render_log_dir": "RENDER_LOG_DIR", "ffmpeg_binary": "FFMPEG_BINARY",
    "auth": "EXPORT_AUTH", "oidc_issuer": "EXPORT_OIDC_ISSUER", "oidc_audience": "EXPORT_OIDC_AUDIENCE",
    "oidc_jwks_url": "EXPORT_OIDC_JWKS_URL", "oidc_algorithms": "EXPORT_OIDC_ALGORITHMS",
    "deployed_service": "K_SERVICE",
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


class Settings(BaseSettings):
    """All configuration of SceneFlow Export. Units are in the field names (seconds, bytes).

    Settings(field=value, ...) takes its arguments only (tests and tools); Settings.from_env() reads
    the environment (variable(field) names each variable). Either raises ConfigError, never ValidationError.
    """

    model_config = SettingsConfigDict(frozen=True, case_sensitive=True, extra="forbid", validate_by_name=True,
                                      alias_generator=AliasGenerator(validation_alias=variable))

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
    client_token: str = ""  # EXPORT_CLIENT_TOKEN: the single trusted client's bearer token (EXPORT_AUTH)
    # Client authentication (shared/auth.py): OpenID Connect ID tokens of end users
    oidc_issuer: str = ""  # EXPORT_OIDC_ISSUER, e.g. https://securetoken.google.com/PROJECT (Firebase Auth)
    oidc_audience: str = ""  # EXPORT_OIDC_AUDIENCE: a list (words); a token's aud must be one of them
    oidc_jwks_url: str = ""  # EXPORT_OIDC_JWKS_URL; empty: jwks_uri of {issuer}/.well-known/openid-configuration
    oidc_algorithms: str = "RS256"  # EXPORT_OIDC_ALGORITHMS: a list (words) of OIDC_ALGORITHMS
    oidc_clock_skew_s: int = 60  # leeway on exp, iat and nbf, seconds
    deployed_service: str | None = None  # K_SERVICE, set by Cloud Run and Cloud Functions gen2 (not by us)
    auth: str = ""  # EXPORT_AUTH: enabled methods, a list (words; after the fields its check reads)
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
    auto_migrate: bool = False  # EXPORT_AUTO_MIGRATE: on only when exactly "1" (local modes)
    # Adapters: "google" talks to Google APIs (or their emulators); "local" uses loopback stand-ins.
    storage_backend: str = "google"
    publisher_backend: str = "google"
    launcher_backend: str = "google"
    local_storage_dir: str = ".local/storage"  # local storage: one folder per bucket
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
    render_vcpus: float = 0.0  # the task's vCPUs (= Cloud Run --cpu); 0: the CPUs this process may use
    # Cost estimate (shared.cost): Cloud Run jobs, Tier 1 list prices (source and date: env.example)
    price_vcpu_second_usd: float = 0.000018
    price_gib_second_usd: float = 0.000002
    price_source: str = "https://cloud.google.com/run/pricing (jobs, Tier 1, read 2026-12-05)"
    # Webhooks (shared.webhooks; env.example): the events topic, SSRF rules, delivery
    events_topic: str = "export-events"
    webhook_default_url: str | None = None  # used when a start names no webhookUrl
    webhook_allow_http: bool = False  # local stacks only: deployed webhooks are https
    webhook_allow_private_hosts: str = ""  # local only (deploy.sh refuses it): "host:port" or CIDR, comma-separated
    webhook_ca_file: str | None = None  # local only: a CA bundle trusted for webhook receivers (the tests' own)
    webhook_timeout_s: float = 5.0
    webhook_progress_interval_s: float = 5.0  # at most one progress event per job per this many seconds
    local_events_push_url: str | None = None  # local publisher: URL of deliver_webhook
    local_push_max_attempts: int = 8  # local publisher: attempts before giving up (events: then dead-lettered)
    local_push_backoff_s: float = 0.2  # local publisher: first wait between attempts, doubling to 10 s
    local_dead_letter_file: str | None = None  # local publisher: JSON lines of dead-lettered events

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:  # one line per bad variable, as ConfigError promises
            unknown = [e["loc"][0] for e in exc.errors() if e["type"] == "extra_forbidden"]
            if unknown:  # a caller's mistake, not a setting's
                raise TypeError(f"Settings() got unexpected keyword arguments {unknown}") from None
            raise ConfigError(_problems(exc)) from None

    def replace(self, **changes: Any) -> Settings:
        """A copy with `changes`, checked like any Settings."""
        return Settings(**{**self.model_dump(), **changes})

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **_sources):
        return (init_settings,)  # the environment only through from_env(), never by surprise in Settings()

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from os.environ; an unset variable keeps the field's default (see _Environment)."""
        return cls(**_Environment(cls)())

    @field_validator(*NUMBERS, mode="before")
    @classmethod
    def _number(cls, value: Any, info) -> Any:
        """A variable's text is parsed by its rule (plain digits; seconds may have decimals); any
        number must be in the rule's range."""
        rule = NUMBERS[info.field_name]
        if isinstance(value, str):
            value = rule.parse(value)
        if value is None or not rule.allows(value):
            raise ValueError("out of range")  # the message is rule.expected (_problems)
        return value

    @field_validator(*CHOICES)
    @classmethod
    def _choice(cls, value: str, info) -> str:
        if value not in CHOICES[info.field_name][1]:
            raise ValueError("not a choice")
        return value

    @field_validator("oidc_algorithms")
    @classmethod
    def _algorithms(cls, value: str) -> str:
        names = words(value)
        if not names or any(a not in OIDC_ALGORITHMS for a in names):
            raise ValueError(f"expected a comma-separated list of {', '.join(OIDC_ALGORITHMS)} (no HS*, no none)")
        return ",".join(names)

    @field_validator("auth")
    @classmethod
    def _auth(cls, value: str, info) -> str:
        """Known methods only; "open" alone; each method's own settings present; and never left unset
        on a deployed function (K_SERVICE), so that a deployment is not open by accident."""
        names = words(value)
        data = info.data
        if not names:
            if data.get("deployed_service"):
                raise ValueError("must be set on a deployed function (K_SERVICE is set): name the methods, "
                                 "e.g. server_key,id_token (or open, when IAM alone guards the functions)")
            return ""
        unknown = [m for m in names if m not in AUTH_METHODS]
        if unknown:
            raise ValueError(f"expected a comma-separated list of {', '.join(AUTH_METHODS)}")
        if "open" in names and len(names) > 1:
            raise ValueError("open cannot be combined with other methods")
        if "id_token" in names and not (data.get("oidc_issuer") and data.get("oidc_audience")):
            raise ValueError("id_token needs EXPORT_OIDC_ISSUER and EXPORT_OIDC_AUDIENCE")
        if "client_token" in names and not data.get("client_token"):
            raise ValueError("client_token needs EXPORT_CLIENT_TOKEN")
        return ",".join(dict.fromkeys(names))

    @field_validator("db_iam_auth", "webhook_allow_http", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        """1/true/yes/on or 0/false/no/off, in any case, around spaces; nothing else."""
        if isinstance(value, str):
            if value.strip().lower() not in _TRUE | _FALSE:
                raise ValueError("not a switch")
            return value.strip().lower() in _TRUE
        return value

    @field_validator("auto_migrate", mode="before")
    @classmethod
    def _exactly_one(cls, value: Any) -> Any:
        return value == "1" if isinstance(value, str) else value

    @property
    def oidc_audiences(self) -> list[str]:
        return words(self.oidc_audience)

    @property
    def auth_methods(self) -> tuple[str, ...]:
        """The client API's enabled methods (shared/auth.py): EXPORT_AUTH; unset (local development
        only, see _auth): ("client_token",) when EXPORT_CLIENT_TOKEN is set, else ("open",)."""
        if self.auth:
            return tuple(self.auth.split(","))
        return ("client_token",) if self.client_token else ("open",)

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

    @property
    def webhook_allow(self) -> tuple[str, ...]:
        """EXPORT_WEBHOOK_ALLOW_PRIVATE_HOSTS as entries ("host:port" or a CIDR), lower case."""
        return tuple(e.strip().lower() for e in self.webhook_allow_private_hosts.split(",") if e.strip())

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


def words(value: str) -> list[str]:
    """The items of a list setting, separated by commas or spaces (gcloud's --set-env-vars splits
    at commas, so infra/deploy.sh writes lists with spaces): "a, b c" -> ["a", "b", "c"]."""
    return [w for w in re.split(r"[,\s]+", value) if w]


def complete_url(api_base: str, override: str | None) -> str:
    """EXPORT_COMPLETE_URL (`override`) when set, else {EXPORT_API_BASE}/export_complete."""
    return override or api_base.rstrip("/") + "/export_complete"


def report_target(environ: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """(export_complete URL, worker token) read straight from `environ`: both are strings, never
    invalid, so the render task can still report its job failed when the other settings are."""
    api_base = environ.get("EXPORT_API_BASE", Settings.model_fields["api_base"].default)
    return complete_url(api_base, environ.get("EXPORT_COMPLETE_URL") or None), environ.get("EXPORT_WORKER_TOKEN", "")


class _Environment(EnvSettingsSource):
    """os.environ as Settings.from_env reads it: the settings' variables only (not the fields' names;
    case-sensitive, so lower-case names are not read). An empty variable counts as unset, except a
    plain string's of VARIABLES with one variable, which keeps "" (as os.environ.get(NAME, default) did)."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        fields = Settings.model_fields
        names = {n for field in fields for n in _names(variable(field))}
        keep = {env for field, env in VARIABLES.items() if fields[field].annotation is str and isinstance(env, str)}
        return {name: value for name, value in super()._load_env_vars().items()
                if name in names and (value != "" or name in keep)}


def _names(env: str | AliasChoices) -> list[str]:
    return [env] if isinstance(env, str) else [str(choice) for choice in env.choices]


def _problems(exc: ValidationError) -> list[str]:
    """pydantic's errors as ConfigError lines, one per bad variable ("NAME='value': expected ..."),
    in the order NUMBERS, CHOICES, then the fields'."""
    fields = Settings.model_fields
    field_of = {name: name for name in fields}
    for name in fields:
        field_of[_names(variable(name))[0]] = name
    order = list(dict.fromkeys([*NUMBERS, *CHOICES, *fields]))
    lines: dict[str, str] = {}
    for error in exc.errors():
        name = field_of.get(error["loc"][0]) if error["loc"] else None
        if name is None or name in lines:
            continue
        shown = _shown(_names(variable(name))[0], error["input"])
        if name in NUMBERS:
            lines[name] = f"{shown}: expected {NUMBERS[name].expected(fields[name].default)}"
        elif name in CHOICES:
            lines[name] = f"{shown}: expected one of {', '.join(CHOICES[name][1])}"
        elif name in ("db_iam_auth", "webhook_allow_http"):
            lines[name] = f"{shown}: expected true or false"
        else:
            lines[name] = f"{shown}: {error['msg'].removeprefix('Value error, ')}"
    return [lines[name] for name in sorted(lines, key=order.index)]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read Settings from os.environ once per process (see env.example for each variable).

    Raises:
        ConfigError: a number does not parse or is out of its range (NUMBERS), a backend or
            DB_IAM_AUTH is not one of its values; every bad variable is named (not cached: the next
            call reads the environment again).
    """
    return Settings.from_env()
