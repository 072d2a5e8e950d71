"""JobLauncher on Cloud Run Jobs through google-cloud-run (run_v2).

Sends RunJobRequest(name=projects/P/locations/R/jobs/J, overrides={container_overrides=[{env:
[EXPORT_JOB_ID=...]}], task_count=1, timeout=...}) and returns the execution name from the
long-running operation's metadata (an Execution) without waiting for the operation: it lasts the
whole render (https://cloud.google.com/run/docs/execute/jobs#override-job-configuration).
"""
from __future__ import annotations

import threading

from shared.errors import TransientError


class CloudRunLauncher:
    def __init__(self, project: str, region: str, job: str, task_timeout_s: int) -> None:
        self.job_name = f"projects/{project}/locations/{region}/jobs/{job}"
        self._task_timeout_s = task_timeout_s
        self._client = None
        self._lock = threading.Lock()

    def _get(self):
        with self._lock:
            if self._client is None:
                from google.cloud import run_v2

                self._client = run_v2.JobsClient()
            return self._client

    def build_request(self, job_id: str):
        """The RunJobRequest for one export (separate so tests can inspect it)."""
        from google.cloud import run_v2
        from google.protobuf import duration_pb2

        Overrides = run_v2.RunJobRequest.Overrides
        return run_v2.RunJobRequest(
            name=self.job_name,
            overrides=Overrides(
                container_overrides=[Overrides.ContainerOverride(
                    env=[run_v2.EnvVar(name="EXPORT_JOB_ID", value=job_id)])],
                task_count=1,
                timeout=duration_pb2.Duration(seconds=self._task_timeout_s),
            ),
        )

    def launch(self, job_id: str) -> str:
        try:
            operation = self._get().run_job(request=self.build_request(job_id))
            return operation.metadata.name
        except Exception as exc:
            raise TransientError(f"Cloud Run run_job failed: {type(exc).__name__}: {exc}"[:300]) from None
