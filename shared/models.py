"""SQLAlchemy 2 models of the job tables. The schema is created by Alembic (shared/migrations),
never by `create_all` on the production path.

- export_jobs: one row per export (DESIGN §3, §4).
- export_job_events: one row per state transition (status, at): the job's history.
- export_job_uploads: one row per declared upload that has arrived (job_id, name, generation).
- api_keys: one row per server key (key id, name, SHA-256 of the secret, created, revoked, last used).
- export_job_usage: one row per render task attempt that reported its usage (shared.cost), keyed by
  the task (role, index: a parallel render's part, audio and stitch tasks each count) and attempt.
- export_job_parts: one row per piece of a parallel render in the output bucket (shared.part_store);
  export_job_tasks: each task's own attempt, stage and progress (issue 19).
- webhook_secrets: one signing secret per owner; webhook_deliveries: one row per delivery attempt
  (shared.webhooks). export_job_events doubles as the webhook outbox (publish_pending).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ExportJob(Base):
    __tablename__ = "export_jobs"
    __table_args__ = (UniqueConstraint("owner", "idempotency_key", name="uq_export_jobs_owner_idempotency_key"),)
    # indexes of export_list (migration 0006) are created by Alembic only

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128), server_default="default")  # shared.identity
    status: Mapped[str] = mapped_column(String(20), index=True)
    stage: Mapped[str | None] = mapped_column(String(20))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    spec: Mapped[dict] = mapped_column(JSON)
    spec_sha256: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))  # unique per owner
    uploads_expected: Mapped[list] = mapped_column(JSON, default=list)
    execution_name: Mapped[str | None] = mapped_column(String(500))
    execution_log_uri: Mapped[str | None] = mapped_column(String(2000))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    output: Mapped[dict | None] = mapped_column(JSON)
    # shared.api.StartRequest's limits; JSONB on PostgreSQL so `labels @> {...}` uses a GIN index
    labels: Mapped[dict] = mapped_column(JSON().with_variant(JSONB(), "postgresql"), default=dict)
    external_ref: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_report_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    webhook_url: Mapped[str | None] = mapped_column(String(2000))  # checked at start (shared.webhook_url)
    webhook_progress_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # last progress event
    # a parallel render (issue 19, shared.part_store): K told to its tasks (NULL: one task), the
    # stitch's claim and execution, and how often reconcile relaunched either execution
    part_count: Mapped[int | None] = mapped_column(Integer)
    min_part_s: Mapped[float | None] = mapped_column(Float)  # the floor K was cut with (EXPORT_MIN_PART_S)
    stitch_claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stitch_execution_name: Mapped[str | None] = mapped_column(String(500))
    part_relaunches: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    stitch_relaunches: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ExportJobEvent(Base):
    __tablename__ = "export_job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("export_jobs.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # the webhook outbox: True until the event reached the events topic (shared.webhooks)
    publish_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0", index=True)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ExportJobUpload(Base):
    __tablename__ = "export_job_uploads"
    __table_args__ = (UniqueConstraint("job_id", "name", name="uq_export_job_uploads_job_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("export_jobs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(300))
    generation: Mapped[str] = mapped_column(String(40))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    """A server key of an app's backend (shared/auth.py): only the SHA-256 of its secret is kept."""

    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("name", name="uq_api_keys_name"),)

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ExportJobUsage(Base):
    """One render task attempt's usage (shared.cost.AttemptUsage), each amount the largest any of the
    attempt's reports carried: wall and CPU seconds, vCPU- and GiB-seconds billed. task_role:
    "whole" (today's single task), "part", "audio" or "stitch"; task_index: the report's task index."""

    __tablename__ = "export_job_usage"

    job_id: Mapped[str] = mapped_column(ForeignKey("export_jobs.id", ondelete="CASCADE"), primary_key=True)
    task_role: Mapped[str] = mapped_column(String(10), primary_key=True, default="whole", server_default="whole")
    task_index: Mapped[int] = mapped_column(Integer, primary_key=True, default=0, server_default="0")
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    wall_s: Mapped[float] = mapped_column(Float)
    cpu_s: Mapped[float] = mapped_column(Float)
    vcpu_s: Mapped[float] = mapped_column(Float)
    gib_s: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ExportJobPart(Base):
    """One piece of a parallel render found in the output bucket (object stat'd): part_index 0..k-1
    (AUDIO_PART = -1: the audio), the object's generation, the part count k of its metadata, its
    frames (video parts)."""

    __tablename__ = "export_job_parts"

    job_id: Mapped[str] = mapped_column(ForeignKey("export_jobs.id", ondelete="CASCADE"), primary_key=True)
    part_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger)
    part_count: Mapped[int] = mapped_column(Integer)
    frames: Mapped[int | None] = mapped_column(Integer)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ExportJobTask(Base):
    """One task of a parallel render as its reports tell it: role ("part", "audio", "stitch"), index,
    the execution it last reported from (attempts count within one execution), its highest attempt
    seen there, its own stage and progress (0..1, the largest reported)."""

    __tablename__ = "export_job_tasks"

    job_id: Mapped[str] = mapped_column(ForeignKey("export_jobs.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(10), primary_key=True)
    task_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer)
    execution: Mapped[str | None] = mapped_column(String(200))
    stage: Mapped[str | None] = mapped_column(String(20))
    progress: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebhookSecret(Base):
    __tablename__ = "webhook_secrets"

    owner: Mapped[str] = mapped_column(String(128), primary_key=True)
    secret: Mapped[str] = mapped_column(String(200))  # whsec_<base64>; HMAC needs it in clear
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("export_jobs.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(100), index=True)
    event_type: Mapped[str] = mapped_column(String(40))
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    http_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(300))
    duration_ms: Mapped[int] = mapped_column(Integer)
