"""Settings, read from the environment when asked (never at import), with pydantic-settings.

Every variable is documented in env.example. `get_settings()` is cached per process so warm
Cloud Functions invocations reuse it; tests call `get_settings.cache_clear()` after changing the
environment. Every number, switch and choice is checked when read (shared.setting_rules: each
variable's name and rule):
a bad value raises ConfigError naming every bad variable at once, never a bare ValueError later.
"""
from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from typing import Any, Mapping, Sequence

from pydantic import AliasChoices, AliasGenerator, ValidationError, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from shared.cors import parse_origins
from shared.setting_rules import (_FALSE, _TRUE, AUTH_METHODS, CHOICES, NUMBERS, OIDC_ALGORITHMS, VARIABLES,
                                   _shown, variable)

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
    cors_origins: str = ""  # EXPORT_CORS_ORIGINS: browser origins allowed (shared.cors); "" = none
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
    # Parallel exports (issue 19; shared/executions.py): K part tasks, then the stitch's own job
    render_max_parts: int = 16  # the most parts of one render execution (K; K + 1 tasks with the audio's)
    render_parallel_after_s: float = 120.0  # exports planned at least this long render in parts
    render_min_part_s: float = 10.0  # shortest part, seconds of output (render_job/part_plan.py)
    render_stitch_job_name: str = "sceneflow-stitch"  # the stitch's Cloud Run job
    render_stitch_task_timeout_s: int = 900  # task timeout sent with each stitch RunJobRequest
    local_task_parallelism: int = 2  # local launcher: tasks of one execution running at once
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

    @field_validator("cors_origins")
    @classmethod
    def _cors(cls, value: str) -> str:
        return ",".join(parse_origins(value))  # ValueError names the bad origin

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
    def cors_allowed(self) -> tuple[str, ...]:
        """EXPORT_CORS_ORIGINS as shared.cors takes it: () none, ("*",) any, else exact origins."""
        return parse_origins(self.cors_origins)

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


def cors_origins_alone() -> tuple[str, ...]:
    """EXPORT_CORS_ORIGINS read by itself (shared.cors.parse_origins), for the functions' CORS while
    another setting is broken: their 503 "misconfigured" then stays readable by an allowed page.

    Raises:
        ConfigError: EXPORT_CORS_ORIGINS is malformed, naming it.
    """
    name = VARIABLES["cors_origins"]
    raw = os.environ.get(name, "")
    try:
        return parse_origins(raw)
    except ValueError as exc:
        raise ConfigError([f"{_shown(name, raw)}: {exc}"]) from None
