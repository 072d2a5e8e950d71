"""An in-process gRPC stand-in for the Cloud Run Admin API v2 (google.cloud.run.v2), for wire tests.

google-cloud-run ships no servicer base classes, so the methods are served through grpc generic
handlers with the protobuf messages' own (de)serializers, under the exact method paths the GAPIC
transports call ("/google.cloud.run.v2.Jobs/RunJob", ...). It records every request it decodes.

- Jobs.RunJob: records the RunJobRequest; answers a google.longrunning.Operation (not done) whose
  metadata is the new Execution packed in an Any, as Cloud Run does.
- Executions.GetExecution: the Execution (NOT_FOUND for an unknown name); tests can change
  `executions[name]` to simulate completion.
- Executions.CancelExecution: records the request, marks the execution cancelled, answers an
  Operation; FAILED_PRECONDITION for a finished one, NOT_FOUND for an unknown one.
"""
from __future__ import annotations

import threading
import uuid
from concurrent import futures

import grpc
from google.cloud import run_v2
from google.longrunning import operations_pb2
from google.protobuf import any_pb2, timestamp_pb2


class CloudRunStandIn:
    def __init__(self, project: str = "wire-proj", region: str = "europe-west1") -> None:
        self.project, self.region = project, region
        self.run_job_requests: list[run_v2.RunJobRequest] = []
        self.get_requests: list[str] = []
        self.cancel_requests: list[str] = []
        self.metadata: list[dict[str, str]] = []  # request metadata (headers) per call
        self.executions: dict[str, run_v2.Execution] = {}
        self.unavailable = 0  # answer UNAVAILABLE this many times (fault injection)
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None
        self.address: str | None = None

    # -- lifecycle
    def start(self) -> "CloudRunStandIn":
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        unary = grpc.unary_unary_rpc_method_handler
        server.add_generic_rpc_handlers((
            grpc.method_handlers_generic_handler("google.cloud.run.v2.Jobs", {
                "RunJob": unary(self._run_job, request_deserializer=run_v2.RunJobRequest.deserialize,
                                response_serializer=operations_pb2.Operation.SerializeToString)}),
            grpc.method_handlers_generic_handler("google.cloud.run.v2.Executions", {
                "GetExecution": unary(self._get_execution,
                                      request_deserializer=run_v2.GetExecutionRequest.deserialize,
                                      response_serializer=run_v2.Execution.serialize),
                "CancelExecution": unary(self._cancel_execution,
                                         request_deserializer=run_v2.CancelExecutionRequest.deserialize,
                                         response_serializer=operations_pb2.Operation.SerializeToString)}),
        ))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server, self.address = server, f"127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- helpers
    def log_uri(self, job: str, execution: str) -> str:
        return ("https://console.cloud.google.com/logs/viewer?project=" + self.project
                + "&advancedFilter=resource.type%3D%22cloud_run_job%22%0Aresource.labels.job_name%3D%22"
                + job + "%22%0Alabels.%22run.googleapis.com%2Fexecution_name%22%3D%22" + execution + "%22")

    def finish(self, name: str, *, succeeded: bool, message: str = "") -> None:
        """Mark an execution completed: every task succeeded, or one failed (the others succeeded)."""
        ex = self.executions[name]
        ex.completion_time = timestamp_pb2.Timestamp(seconds=1_700_000_000)
        ex.running_count = 0
        if succeeded:
            ex.succeeded_count = ex.task_count
        else:
            ex.failed_count = 1
            ex.succeeded_count = ex.task_count - 1
        ex.conditions = [run_v2.Condition(type_="Completed", message=message,
                                          state=run_v2.Condition.State.CONDITION_SUCCEEDED if succeeded
                                          else run_v2.Condition.State.CONDITION_FAILED)]

    def _record(self, context: grpc.ServicerContext) -> None:
        self.metadata.append({k: v for k, v in context.invocation_metadata() if isinstance(v, str)})
        if self.unavailable > 0:
            self.unavailable -= 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "stand-in: try again")

    @staticmethod
    def _operation(name: str, execution: run_v2.Execution) -> operations_pb2.Operation:
        meta = any_pb2.Any()
        meta.Pack(run_v2.Execution.pb(execution))
        return operations_pb2.Operation(name=name, done=False, metadata=meta)

    # -- methods
    def _run_job(self, request: run_v2.RunJobRequest, context) -> operations_pb2.Operation:
        with self._lock:
            self._record(context)
            self.run_job_requests.append(request)
            job = request.name.rsplit("/", 1)[-1]
            exec_id = f"{job}-{uuid.uuid4().hex[:5]}"
            prefix = request.name.rsplit("/jobs/", 1)[0]
            name = f"{prefix}/jobs/{job}/executions/{exec_id}"
            ov = request.overrides
            execution = run_v2.Execution(
                name=name, uid=str(uuid.uuid4()), job=job, generation=1,
                task_count=ov.task_count or 1, parallelism=1, running_count=0,
                create_time=timestamp_pb2.Timestamp(seconds=1_700_000_000),
                log_uri=self.log_uri(job, exec_id),
                conditions=[run_v2.Condition(type_="Completed",
                                             state=run_v2.Condition.State.CONDITION_PENDING)])
            self.executions[name] = execution
            return self._operation(f"{prefix}/operations/{uuid.uuid4()}", execution)

    def _get_execution(self, request: run_v2.GetExecutionRequest, context) -> run_v2.Execution:
        with self._lock:
            self._record(context)
            self.get_requests.append(request.name)
            ex = self.executions.get(request.name)
        if ex is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Execution {request.name} not found")
        return ex

    def _cancel_execution(self, request: run_v2.CancelExecutionRequest, context) -> operations_pb2.Operation:
        with self._lock:
            self._record(context)
            self.cancel_requests.append(request.name)
            ex = self.executions.get(request.name)
            if ex is not None and ex.completion_time and not ex.cancelled_count:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, "execution already completed")
            if ex is not None:
                ex.cancelled_count = 1
                ex.completion_time = timestamp_pb2.Timestamp(seconds=1_700_000_100)
                ex.conditions = [run_v2.Condition(type_="Completed", message="The execution was cancelled.",
                                                  state=run_v2.Condition.State.CONDITION_FAILED)]
        if ex is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Execution {request.name} not found")
        return self._operation(request.name.rsplit("/jobs/", 1)[0] + f"/operations/{uuid.uuid4()}", ex)
