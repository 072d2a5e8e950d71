"""Adapter construction without any network: lazy clients, the Cloud Run request shape, and
the Cloud SQL connector created only at first connection."""
from shared import db
from shared.adapters.google_run import CloudRunLauncher
from shared.config import Settings


def test_run_job_request_carries_job_id_task_count_and_timeout():
    launcher = CloudRunLauncher("proj", "europe-west1", "sceneflow-render", task_timeout_s=1800)
    req = launcher.build_request("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
    assert req.name == "projects/proj/locations/europe-west1/jobs/sceneflow-render"
    env = req.overrides.container_overrides[0].env
    assert [(e.name, e.value) for e in env] == [("EXPORT_JOB_ID", "1b4e28ba-2fa1-11d2-883f-0016d3cca427")]
    assert req.overrides.task_count == 1
    assert req.overrides.timeout.total_seconds() == 1800  # proto-plus maps Duration to timedelta
    assert launcher._client is None  # no client until the first launch


def test_cloud_sql_connector_is_lazy():
    db._connector = None
    engine = db.make_engine(Settings(instance_connection_name="proj:europe-west1:sceneflow", db_user="svc",
                                     db_name="sceneflow"))
    assert engine.dialect.name == "postgresql" and engine.dialect.driver == "pg8000"
    assert db._connector is None  # Connector() needs credentials: never built before a connection
    engine.dispose()
