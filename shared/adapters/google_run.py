"""JobLauncher on Cloud Run Jobs through google-cloud-run (run_v2).

Sends RunJobRequest(name=projects/P/locations/R/jobs/J, overrides={container_overrides=[{env:
[EXPORT_JOB_ID=...]}], task_count=1, timeout=...}) and returns the execution name from the
long-running operation's metadata (an Execution) without waiting for the operation: it lasts the
whole render (https://cloud.google.com/run/docs/execute/jobs#override-job-configuration). A
parallel render of K parts (issue 19) overrides task_count=K+1 (render_task_count) with the env of
shared.executions.render_env; the
stitch names its own job (S) with task_count=1, its own timeout and shared.executions.stitch_env.
Overrides has no parallelism field (run_v2.RunJobRequest.Overrides: container_overrides,
task_count, timeout), so the jobs are deployed with parallelism 0, "as many as possible"
(DESIGN §9).
"""
from __future__ import annotations

import threading

from shared.errors import TransientError
from shared.executions import MAX_TASKS, check_parts, render_env, render_task_count, stitch_env
from shared.ports import ExecutionStatus


class CloudRunLauncher:
    """`insecure_endpoint` ("host:port"): talk plaintext gRPC to a stand-in of the Cloud Run Admin
    API (the wire tests' in-process server) instead of Google's endpoint with default credentials.
    stitch_job / stitch_timeout_s: the stitch's Cloud Run job and task timeout (RENDER_STITCH_JOB_NAME,
    RENDER_STITCH_TASK_TIMEOUT_S); max_parts: the most tasks of a render execution (RENDER_MAX_PARTS)."""

    def __init__(self, project: str, region: str, job: str, task_timeout_s: int,
                 insecure_endpoint: str | None = None, *, stitch_job: str | None = None,
                 stitch_timeout_s: int | None = None, max_parts: int = MAX_TASKS) -> None:
        self.job_name = f"projects/{project}/locations/{region}/jobs/{job}"
        self.stitch_job_name = f"projects/{project}/locations/{region}/jobs/{stitch_job}" if stitch_job else None
        self._task_timeout_s = task_timeout_s
        self._stitch_timeout_s = stitch_timeout_s or task_timeout_s
        self.max_parts = max_parts
        self._insecure_endpoint = insecure_endpoint
        self._client = None
        self._executions = None
        self._finished: dict[str, ExecutionStatus] = {}  # terminal states never change: ask once
        self._lock = threading.Lock()

    def _transport(self, kind: str):
        if not self._insecure_endpoint:
            return None
        import grpc

        channel = grpc.insecure_channel(self._insecure_endpoint)
        if kind == "jobs":
            from google.cloud.run_v2.services.jobs.transports import JobsGrpcTransport
            return JobsGrpcTransport(channel=channel)
        from google.cloud.run_v2.services.executions.transports import ExecutionsGrpcTransport
        return ExecutionsGrpcTransport(channel=channel)

    def _get(self):
        with self._lock:
            if self._client is None:
                from google.cloud import run_v2

                self._client = run_v2.JobsClient(transport=self._transport("jobs"))
            return self._client

    def _get_executions(self):
        with self._lock:
            if self._executions is None:
                from google.cloud import run_v2

                self._executions = run_v2.ExecutionsClient(transport=self._transport("executions"))
            return self._executions

    def status(self, execution_name: str) -> ExecutionStatus:
        """Map an Execution (run_v2) to ExecutionStatus: completion_time unset means running; then
        succeeded_count / cancelled_count / failed_count decide; the reason is the message of the
        "Completed" condition; log_uri is the execution's Cloud Logging console link. A finished
        execution's status is remembered (it never changes), so export_status polls cost one call."""
        from google.api_core import exceptions as gexc

        if execution_name in self._finished:
            return self._finished[execution_name]
        try:
            ex = self._get_executions().get_execution(name=execution_name)
        except gexc.NotFound:
            return ExecutionStatus("missing", "the execution no longer exists")
        except Exception as exc:
            raise TransientError(f"Cloud Run get_execution failed: {type(exc).__name__}") from None
        result = execution_status(ex)
        if result.state in ("succeeded", "failed", "cancelled"):
            self._finished[execution_name] = result
        return result

    def cancel(self, execution_name: str) -> None:
        from google.api_core import exceptions as gexc

        try:
            self._get_executions().cancel_execution(name=execution_name)
        except (gexc.NotFound, gexc.FailedPrecondition):
            return  # gone or already finished
        except Exception as exc:
            raise TransientError(f"Cloud Run cancel_execution failed: {type(exc).__name__}") from None

    def build_request(self, job_id: str, *, parts: int = 1, min_part_s: float | None = None):
        """The RunJobRequest of a render execution of `parts` parts (render_task_count(parts) tasks;
        separate so tests can inspect it). parts=1 is the request sent before issue 19, field for field."""
        check_parts(parts, self.max_parts)
        return _request(self.job_name, render_env(job_id, parts, min_part_s), render_task_count(parts),
                        self._task_timeout_s)

    def build_stitch_request(self, job_id: str, part_count: int, min_part_s: float | None = None):
        """The RunJobRequest of the stitch execution of `job_id`'s `part_count` parts.

        Raises:
            ValueError: no stitch job was configured, or part_count is below 2.
        """
        if not self.stitch_job_name:
            raise ValueError("no stitch job configured (RENDER_STITCH_JOB_NAME)")
        return _request(self.stitch_job_name, stitch_env(job_id, part_count, min_part_s), 1, self._stitch_timeout_s)

    def launch(self, job_id: str, *, parts: int = 1, min_part_s: float | None = None) -> str:
        return self._run(self.build_request(job_id, parts=parts, min_part_s=min_part_s))

    def launch_stitch(self, job_id: str, part_count: int, min_part_s: float | None = None) -> str:
        return self._run(self.build_stitch_request(job_id, part_count, min_part_s))

    def _run(self, request) -> str:
        try:
            operation = self._get().run_job(request=request)
            return operation.metadata.name
        except Exception as exc:
            raise TransientError(f"Cloud Run run_job failed: {type(exc).__name__}: {exc}"[:300]) from None


def _request(job_name: str, env: list[tuple[str, str]], task_count: int, timeout_s: int):
    """RunJobRequest(name=job_name, overrides={container_overrides=[{env}], task_count, timeout}):
    the job's own container (no name, no args), the env merged into the job's."""
    from google.cloud import run_v2
    from google.protobuf import duration_pb2

    Overrides = run_v2.RunJobRequest.Overrides
    return run_v2.RunJobRequest(
        name=job_name,
        overrides=Overrides(
            container_overrides=[Overrides.ContainerOverride(
                env=[run_v2.EnvVar(name=name, value=value) for name, value in env])],
            task_count=task_count,
            timeout=duration_pb2.Duration(seconds=timeout_s),
        ),
    )


def execution_status(ex) -> ExecutionStatus:
    """ExecutionStatus of a run_v2.Execution (pure; see CloudRunLauncher.status)."""
    reason = None
    for cond in ex.conditions:
        if cond.type_ == "Completed" and cond.message:
            reason = cond.message
    log_uri = ex.log_uri or None
    if not ex.completion_time:
        return ExecutionStatus("running", reason, log_uri)
    if ex.succeeded_count >= max(1, ex.task_count):
        return ExecutionStatus("succeeded", reason, log_uri)
    if ex.cancelled_count:
        return ExecutionStatus("cancelled", reason or "the execution was cancelled", log_uri)
    return ExecutionStatus("failed", reason or f"{ex.failed_count} task(s) failed", log_uri)
