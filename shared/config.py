"""Settings, read from the environment when asked (never at import).

Every variable is documented in env.example. `get_settings()` is cached per process so warm
Cloud Functions invocations reuse it; tests call `get_settings.cache_clear()` after changing the
environment.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


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
    max_total_s: float = 1800.0  # sum of explicit scene durations at start; the planned total in the job
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

    @property
    def public_status_base(self) -> str:
        return (self.status_url_base or self.api_base).rstrip("/")

    @property
    def complete_url(self) -> str:
        """Where the render job POSTs reports: EXPORT_COMPLETE_URL, else {EXPORT_API_BASE}/export_complete."""
        return self.complete_url_override or self.api_base.rstrip("/") + "/export_complete"

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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read Settings from os.environ once per process (see env.example for each variable)."""
    e = os.environ.get
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
        max_body_bytes=_int("EXPORT_MAX_BODY_BYTES", 1_000_000),
        client_token=e("EXPORT_CLIENT_TOKEN", ""),
        max_scenes=_int("EXPORT_MAX_SCENES", 200),
        max_total_s=_float("EXPORT_MAX_TOTAL_S", 1800.0),
        max_assets=_int("EXPORT_MAX_ASSETS", 401),
        max_asset_bytes=_int("EXPORT_MAX_ASSET_BYTES", 500 * 1024 * 1024),
        max_job_bytes=_int("EXPORT_MAX_JOB_BYTES", 2 * 1024 * 1024 * 1024),
        max_caption_chars=_int("EXPORT_MAX_CAPTION_CHARS", 500),
        max_output_bytes=_int("EXPORT_MAX_OUTPUT_BYTES", 2 * 1024 * 1024 * 1024),
        reconcile_queued_after_s=_float("RECONCILE_QUEUED_AFTER_S", 120.0),
        reconcile_stale_after_s=_float("RECONCILE_STALE_AFTER_S", 600.0),
        upload_ttl_s=_float("EXPORT_UPLOAD_TTL_S", 3600.0),
        upload_url_ttl_s=_int("EXPORT_UPLOAD_URL_TTL_S", 900),
        download_url_ttl_s=_int("EXPORT_DOWNLOAD_URL_TTL_S", 900),
        database_url=e("DATABASE_URL", "sqlite:///.local/sceneflow.db"),
        instance_connection_name=e("INSTANCE_CONNECTION_NAME") or None,
        db_user=e("DB_USER", "postgres"),
        db_password=e("DB_PASSWORD") or None,
        db_name=e("DB_NAME", "sceneflow"),
        db_iam_auth=_bool(e("DB_IAM_AUTH"), False),
        storage_backend=e("EXPORT_STORAGE_BACKEND", "google"),
        publisher_backend=e("EXPORT_PUBLISHER_BACKEND", "google"),
        launcher_backend=e("EXPORT_LAUNCHER_BACKEND", "google"),
        local_push_url=e("EXPORT_LOCAL_PUSH_URL") or None,
        render_job_name=e("RENDER_JOB_NAME", "sceneflow-render"),
        render_task_timeout_s=_int("RENDER_TASK_TIMEOUT_S", 3600),
        render_memory_bytes=_int("RENDER_MEMORY_BYTES", 8 * 1024 * 1024 * 1024),
        render_max_retries=_int("RENDER_MAX_RETRIES", 3),
        render_python=e("RENDER_PYTHON") or None,
        render_workdir=e("RENDER_WORKDIR") or None,
        render_log_dir=e("RENDER_LOG_DIR") or None,
        render_report_interval_s=_float("RENDER_REPORT_INTERVAL_S", 2.0),
        ffmpeg_binary=e("FFMPEG_BINARY") or None,
        ffmpeg_threads=_int("FFMPEG_THREADS", 0),
        render_max_image_pixels=_int("RENDER_MAX_IMAGE_PIXELS", 400_000_000),
        render_max_decode_pixels=_int("RENDER_MAX_DECODE_PIXELS", 50_000_000),
        render_max_media_s=_float("RENDER_MAX_MEDIA_S", 3600.0),
        render_stall_s=_float("RENDER_STALL_S", 60.0),
        render_timeout_base_s=_float("RENDER_TIMEOUT_BASE_S", 60.0),
        render_timeout_per_output_s=_float("RENDER_TIMEOUT_PER_OUTPUT_S", 1.5),
        render_segment_scenes=_int("RENDER_SEGMENT_SCENES", 24),
    )
