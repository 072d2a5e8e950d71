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


STITCH_JOB = "projects/wire-proj/locations/europe-west1/jobs/sceneflow-stitch"


@pytest.fixture
def parallel(cloud_run):
    """A launcher configured for issue 19: the stitch job with its own timeout, at most 16 parts."""
    return CloudRunLauncher("wire-proj", "europe-west1", "sceneflow-render", task_timeout_s=2700,
                            insecure_endpoint=cloud_run.address, stitch_job="sceneflow-stitch",
                            stitch_timeout_s=900, max_parts=16)


def _env(req: run_v2.RunJobRequest) -> list[tuple[str, str]]:
    (container,) = req.overrides.container_overrides
    assert not container.args and not container.name and not container.clear_args  # the job's own command
    return [(e.name, e.value) for e in container.env]


def test_a_one_task_launch_sends_exactly_todays_request(cloud_run, launcher, parallel):
    """parts=1 (what dispatch sends below RENDER_PARALLEL_AFTER_S) is the pre-issue-19 request, byte for byte, whatever the
    launcher's stitch and part settings."""
    expected = run_v2.RunJobRequest(
        name="projects/wire-proj/locations/europe-west1/jobs/sceneflow-render",
        overrides=run_v2.RunJobRequest.Overrides(
            container_overrides=[run_v2.RunJobRequest.Overrides.ContainerOverride(
                env=[run_v2.EnvVar(name="EXPORT_JOB_ID", value=JOB_ID)])],
            task_count=1, timeout={"seconds": 2700}))
    before = len(cloud_run.run_job_requests)
    launcher.launch(JOB_ID)
    parallel.launch(JOB_ID, parts=1)
    a, b = cloud_run.run_job_requests[before:]
    assert run_v2.RunJobRequest.serialize(a) == run_v2.RunJobRequest.serialize(expected)
    assert run_v2.RunJobRequest.serialize(b) == run_v2.RunJobRequest.serialize(expected)


def test_an_eight_part_launch_overrides_task_count_and_tells_every_task_its_parts(cloud_run, parallel):
    before = len(cloud_run.run_job_requests)
    name = parallel.launch(JOB_ID, parts=8)

    (req,) = cloud_run.run_job_requests[before:]
    assert req.name == "projects/wire-proj/locations/europe-west1/jobs/sceneflow-render"
    assert req.overrides.task_count == 9  # 8 parts + the audio task
    assert req.overrides.timeout.total_seconds() == 2700  # per attempt of each task, as today
    assert _env(req) == [("EXPORT_JOB_ID", JOB_ID), ("RENDER_MODE", "part"), ("EXPORT_PART_COUNT", "8")]
    assert cloud_run.metadata[-1].get("x-goog-request-params") == "location=europe-west1"
    assert cloud_run.executions[name].task_count == 9  # the stand-in made the execution Cloud Run would
    # an execution of 9 tasks succeeds only when all 9 have; one failed task fails it
    cloud_run.finish(name, succeeded=False, message="Task sceneflow-render-x-5 failed: exit code 1")
    st = parallel.status(name)
    assert (st.state, st.reason) == ("failed", "Task sceneflow-render-x-5 failed: exit code 1")
    ok = parallel.launch(JOB_ID, parts=8)
    cloud_run.finish(ok, succeeded=True)
    assert parallel.status(ok).state == "succeeded"
    parallel.cancel(name)  # finished: ignored


def test_the_stitch_launch_names_the_stitch_job_with_its_env_and_timeout(cloud_run, parallel):
    before = len(cloud_run.run_job_requests)
    name = parallel.launch_stitch(JOB_ID, part_count=8)

    (req,) = cloud_run.run_job_requests[before:]
    assert req.name == STITCH_JOB
    assert req.overrides.task_count == 1
    assert req.overrides.timeout.total_seconds() == 900  # the stitch's own limit, not the render's 2700
    assert _env(req) == [("EXPORT_JOB_ID", JOB_ID), ("RENDER_MODE", "stitch"), ("EXPORT_PART_COUNT", "8")]
    assert name.startswith(STITCH_JOB + "/executions/sceneflow-stitch-")
    assert parallel.status(name).state == "running"
    parallel.cancel(name)
    assert cloud_run.cancel_requests[-1] == name and parallel.status(name).state == "cancelled"


def test_counts_out_of_range_are_refused_before_any_request(cloud_run, launcher, parallel):
    before = len(cloud_run.run_job_requests)
    for bad in (0, -1, 17):
        with pytest.raises(ValueError):
            parallel.launch(JOB_ID, parts=bad)
    with pytest.raises(ValueError, match="RENDER_MAX_PARTS"):
        parallel.launch(JOB_ID, parts=17)
    with pytest.raises(ValueError):
        parallel.launch_stitch(JOB_ID, part_count=1)  # one part is the whole export: nothing to join
    with pytest.raises(ValueError, match="RENDER_STITCH_JOB_NAME"):
        launcher.launch_stitch(JOB_ID, part_count=8)  # no stitch job configured
    assert len(cloud_run.run_job_requests) == before
    parallel.launch(JOB_ID, parts=16)  # the cap itself: 16 parts + the audio
    assert cloud_run.run_job_requests[-1].overrides.task_count == 17


def test_the_part_floor_travels_with_k_to_the_parts_and_the_stitch(cloud_run, parallel):
    """EXPORT_MIN_PART_S: the floor K was cut with, so every task and the stitch cut the same parts
    whatever their own RENDER_MIN_PART_S (recorded on the job: every relaunch sends the same)."""
    before = len(cloud_run.run_job_requests)
    parallel.launch(JOB_ID, parts=8, min_part_s=12.5)
    parallel.launch_stitch(JOB_ID, part_count=8, min_part_s=12.5)
    parallel.launch(JOB_ID, parts=1, min_part_s=12.5)  # one part: today's request, no floor
    render, stitch, whole = cloud_run.run_job_requests[before:]
    assert _env(render) == [("EXPORT_JOB_ID", JOB_ID), ("RENDER_MODE", "part"), ("EXPORT_PART_COUNT", "8"),
                            ("EXPORT_MIN_PART_S", "12.5")]
    assert _env(stitch) == [("EXPORT_JOB_ID", JOB_ID), ("RENDER_MODE", "stitch"), ("EXPORT_PART_COUNT", "8"),
                            ("EXPORT_MIN_PART_S", "12.5")]
    assert _env(whole) == [("EXPORT_JOB_ID", JOB_ID)]
    with pytest.raises(ValueError, match="min_part_s"):
        parallel.launch(JOB_ID, parts=8, min_part_s=0.0)
    assert len(cloud_run.run_job_requests) == before + 3
