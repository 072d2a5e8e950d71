"""CloudRunLauncher with the real google-cloud-run client (run_v2.JobsClient / ExecutionsClient)
against an in-process gRPC stand-in of google.cloud.run.v2: the RunJobRequest recorded at the wire
is the one Cloud Run would receive."""
from __future__ import annotations

import pytest
from google.cloud import run_v2

from shared.adapters.google_run import CloudRunLauncher
from shared.errors import TransientError

from tests.wire.cloud_run_standin import CloudRunStandIn

JOB_ID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"


@pytest.fixture(scope="module")
def cloud_run():
    with CloudRunStandIn() as server:
        yield server


@pytest.fixture
def launcher(cloud_run):
    return CloudRunLauncher("wire-proj", "europe-west1", "sceneflow-render", task_timeout_s=2700,
                            insecure_endpoint=cloud_run.address)


def test_run_job_request_at_the_wire_carries_override_task_count_and_timeout(cloud_run, launcher):
    before = len(cloud_run.run_job_requests)
    name = launcher.launch(JOB_ID)

    req = cloud_run.run_job_requests[before]
    assert isinstance(req, run_v2.RunJobRequest)
    assert req.name == "projects/wire-proj/locations/europe-west1/jobs/sceneflow-render"
    (container,) = req.overrides.container_overrides
    assert [(e.name, e.value) for e in container.env] == [("EXPORT_JOB_ID", JOB_ID)]
    assert not container.args and not container.name  # the job's own container and command
    assert req.overrides.task_count == 1
    assert req.overrides.timeout.total_seconds() == 2700
    assert not req.validate_only
    # the routing header the client derives from the name (Cloud Run routes by location)
    assert cloud_run.metadata[-1].get("x-goog-request-params") == "location=europe-west1"
    # launch() returns operation.metadata.name: the execution's full resource name
    assert name in cloud_run.executions
    assert name.startswith("projects/wire-proj/locations/europe-west1/jobs/sceneflow-render/executions/")


def test_status_maps_the_execution_and_carries_its_log_uri(cloud_run, launcher):
    name = launcher.launch(JOB_ID)
    st = launcher.status(name)
    assert st.state == "running"
    assert st.log_uri == cloud_run.executions[name].log_uri and st.log_uri.startswith("https://console.cloud")
    assert cloud_run.get_requests[-1] == name

    cloud_run.finish(name, succeeded=False, message="Task sceneflow-render-abc failed: exit code 3")
    st = launcher.status(name)
    assert (st.state, st.reason) == ("failed", "Task sceneflow-render-abc failed: exit code 3")
    calls = len(cloud_run.get_requests)
    assert launcher.status(name).state == "failed"  # a finished execution is not asked again
    assert len(cloud_run.get_requests) == calls

    ok = launcher.launch(JOB_ID)
    cloud_run.finish(ok, succeeded=True)
    assert launcher.status(ok).state == "succeeded"


def test_status_of_an_unknown_execution_is_missing(cloud_run, launcher):
    st = launcher.status("projects/wire-proj/locations/europe-west1/jobs/sceneflow-render/executions/gone")
    assert st.state == "missing"


def test_cancel_reaches_cancel_execution_and_is_idempotent(cloud_run, launcher):
    name = launcher.launch(JOB_ID)
    launcher.cancel(name)
    assert cloud_run.cancel_requests[-1] == name
    assert launcher.status(name).state == "cancelled"
    launcher.cancel(name)  # already cancelled: no error
    done = launcher.launch(JOB_ID)
    cloud_run.finish(done, succeeded=True)
    launcher.cancel(done)  # FAILED_PRECONDITION (finished): ignored
    launcher.cancel(name.rsplit("/", 1)[0] + "/unknown")  # NOT_FOUND: ignored


def test_unavailable_api_is_a_transient_error(cloud_run, launcher):
    cloud_run.unavailable = 100  # more than the client's own retries
    try:
        with pytest.raises(TransientError):
            launcher.launch(JOB_ID)
    finally:
        cloud_run.unavailable = 0
