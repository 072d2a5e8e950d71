"""The output of a succeeded report (export_complete from the whole-export task or the stitch),
checked before it is stored: its names (shared.worker_report.report_video_name) and the named video in the
output bucket (shared.artifacts.video_not_ours: the worker token is a credential, not proof).
"""
from __future__ import annotations

from typing import Any

from shared.worker_report import ReportOutput, report_video_name
from shared.artifacts import OutputRecord, video_not_ours
from shared.config import Settings
from shared.errors import InvalidRequest
from shared.outputs import clean_warnings


def checked_output(storage: Any, settings: Settings, job_id: str, out: ReportOutput) -> dict:
    """The stored output (OutputRecord row) of a succeeded report `out` of export `job_id`; storage:
    an ObjectStorage (shared.ports). Raises InvalidRequest naming output.uri when the video is not
    this export's."""
    bucket = settings.output_bucket
    name = report_video_name(job_id, out, bucket, settings.max_scenes)
    info = storage.stat(bucket, name)
    why = video_not_ours(info, job_id)
    if why:
        raise InvalidRequest(f"output.uri is not this export's video: {why}",
                             details=[{"path": "output.uri", "message": f"gs://{bucket}/{name}: {why}"}])
    return OutputRecord.from_report(out, name, info.size, clean_warnings(out.warnings)).to_row()
