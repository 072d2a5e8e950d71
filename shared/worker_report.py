"""export_complete's request: the render job's report (DESIGN §4) and its checks. A task reports
`running` (stage, its own progress, usage), `succeeded` (with `output`: artifacts.OutputRecord.to_report)
or `failed` (error); a parallel render's task names itself (`task`), a whole-export task may ask for
a `handoff`. Validation as shared.api's: strict JSON, every problem at once (InvalidRequest, 400).
Pure: no I/O.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.api import _JOB_ID_DOC, _object_documented_as, _Wire, details, strict
from shared.artifacts import MAX_DURATION_S, MAX_SIDE_PX, OUTPUT_NAME, own_object
from shared.errors import MESSAGE_MAX_CHARS, InvalidRequest


class ErrorBody(_Wire):
    code: str = Field(min_length=1, max_length=64)
    message: str = Field(min_length=1, max_length=MESSAGE_MAX_CHARS)


MAX_USAGE_S = 8 * 86400.0  # above Cloud Run's longest task (7 days): a larger figure is a bug, refused


class ReportUsage(_Wire):
    """A render task attempt's usage so far, cumulative from the task's start (shared.cost): wallS
    (seconds since the process started), cpuS (user + sys seconds of the task and the FFmpeg runs it
    has waited for), vcpu and memoryGib (what the task is allocated: RENDER_VCPUS, RENDER_MEMORY_BYTES)."""

    wall_s: float = Field(ge=0, le=MAX_USAGE_S, allow_inf_nan=False)
    cpu_s: float = Field(ge=0, le=MAX_USAGE_S * 1024, allow_inf_nan=False)
    vcpu: float = Field(gt=0, le=1024, allow_inf_nan=False)
    memory_gib: float = Field(gt=0, le=1024, allow_inf_nan=False)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimelineEntry(_Strict):
    startS: float = Field(ge=0, le=MAX_DURATION_S, allow_inf_nan=False)
    durationS: float = Field(ge=0, le=MAX_DURATION_S, allow_inf_nan=False)


class Loudness(_Strict):
    integratedLufs: float | None = Field(None, ge=-1000, le=1000, allow_inf_nan=False)
    truePeakDb: float | None = Field(None, ge=-1000, le=1000, allow_inf_nan=False)
    lra: float | None = Field(None, ge=-1000, le=1000, allow_inf_nan=False)


_OBJECT_NAME = rf"^exports/[0-9a-f-]{{36}}/{OUTPUT_NAME}$"


class ReportCaptions(_Strict):
    srt: str | None = Field(None, max_length=300, pattern=_OBJECT_NAME)
    vtt: str | None = Field(None, max_length=300, pattern=_OBJECT_NAME)


class ReportOutput(BaseModel):
    """The `output` of a succeeded report (artifacts.OutputRecord.to_report): numbers finite and in
    range, names OUTPUT_NAME, every field bounded (report_video_name checks the job's folder)."""

    model_config = ConfigDict(extra="ignore")  # ignored fields are never stored
    uri: str = Field(min_length=6, max_length=1100)
    filename: str | None = Field(None, max_length=200, pattern=rf"^{OUTPUT_NAME}$")
    durationS: float | None = Field(None, ge=0, le=MAX_DURATION_S, allow_inf_nan=False)
    sizeBytes: int | None = Field(None, ge=0, lt=2**63)
    width: int | None = Field(None, ge=1, le=MAX_SIDE_PX)
    height: int | None = Field(None, ge=1, le=MAX_SIDE_PX)
    poster: str | None = Field(None, max_length=300, pattern=_OBJECT_NAME)
    captions: ReportCaptions | None = None
    scenes: list[TimelineEntry] | None = Field(None, max_length=1000)
    loudness: Loudness | None = None
    warnings: list[dict[str, Any]] | None = Field(None, max_length=100)  # bounded by clean_warnings


class ReportTask(_Strict):
    """Which task of a parallel render reports (issue 19; shared.executions): role "part" (index: the
    part, 0..K-1), "audio" (index: K; it runs as task 0) or "stitch" (index 0). A
    report without `task` comes from today's single task rendering the whole export. execution: the
    Cloud Run execution the task runs in (its CLOUD_RUN_EXECUTION): attempts count within one execution,
    a relaunched execution's start at 0 again (shared.part_store.report_task)."""

    role: Literal["part", "audio", "stitch"]
    index: int = Field(0, ge=0, le=10_000)
    execution: str | None = Field(None, min_length=1, max_length=200)


class ReportHandoff(_Strict):
    """A whole-export task's request to hand its export over to a parallel render (shared.part_lifecycle):
    parts = K by the count rule (shared.parts.part_count) for the length it measured."""

    parts: int = Field(ge=2, le=10_000)


class CompleteReport(_Wire):
    """What the render job sends to export_complete (DESIGN §4)."""

    job_id: str = Field(**_JOB_ID_DOC)
    status: Literal["running", "succeeded", "failed"]
    stage: Literal["preparing", "rendering", "stitching", "uploading"] | None = None
    progress: float | None = Field(None, ge=0, le=1)  # the reporting task's own progress
    task: ReportTask | None = None
    handoff: ReportHandoff | None = None  # a whole-export task asking for a K-part render (status running)
    output: Annotated[dict[str, Any], _object_documented_as(ReportOutput)] | None = None  # parse_report checks it
    error: ErrorBody | None = None
    attempt: int = Field(0, ge=0, le=100)
    usage: ReportUsage | None = None  # every report of a task that measures it (older tasks: none)


def parse_report(body: Any) -> tuple[CompleteReport, ReportOutput | None]:
    """A worker report and its `output` (when given), strictly validated. Raises InvalidRequest."""
    try:
        report = strict(CompleteReport, body)
    except ValidationError as exc:
        raise InvalidRequest("report is invalid", details=details(exc)) from None
    try:
        output = strict(ReportOutput, report.output, "output.") if report.output is not None else None
    except ValidationError as exc:
        raise InvalidRequest("report output is invalid", details=details(exc, "output.")) from None
    return report, output


def report_video_name(job_id: str, out: ReportOutput, bucket: str, max_scenes: int) -> str:
    """The object name of a succeeded report's video: output.uri must name an .mp4 of the job's
    folder in `bucket`, its poster and sidecars files of that folder, scenes at most max_scenes.
    Raises InvalidRequest."""
    prefix = f"gs://{bucket}/"
    name = out.uri[len(prefix):] if out.uri.startswith(prefix) else ""
    if not (own_object(job_id, name) and name.endswith(".mp4")):
        raise InvalidRequest("output.uri must name an .mp4 in this job's folder of the output bucket",
                             details=[{"path": "output.uri",
                                       "message": f"must look like {prefix}exports/{job_id}/NAME.mp4"}])
    problems = [{"path": f"output.{path}", "message": f"must be a file in exports/{job_id}/"}
                for path, value in (("poster", out.poster), ("captions.srt", out.captions and out.captions.srt),
                                    ("captions.vtt", out.captions and out.captions.vtt))
                if value and not own_object(job_id, value)]
    if out.scenes and len(out.scenes) > max_scenes:
        problems.append({"path": "output.scenes", "message": f"at most {max_scenes} entries (the scene limit)"})
    if problems:
        raise InvalidRequest("report output is invalid", details=problems)
    return name
