"""The teardown invariant itself (tests/invariants.py): it flags a succeeded job without its own
video, so a test that fabricates one fails instead of hiding a broken promise."""
import pytest

from shared import bootstrap
from shared.states import JobStatus
from tests.integration.functions_env import make_functions_env
from tests.invariants import check_service

SPEC = {"scenes": [{"id": "c", "visual": {"type": "color"}, "duration": 1}]}


@pytest.fixture
def env(tmp_path):
    yield make_functions_env(tmp_path, worker_token="t", input_bucket="in", output_bucket="out")
    bootstrap.use_service(None)


def test_invariant_flags_a_succeeded_job_without_its_own_video(env):
    jid = env.service.start({"spec": SPEC})[1]["jobId"]
    env.service.dispatch(jid)
    video = f"exports/{jid}/export.mp4"
    # fabricated the old way: straight to succeeded, no object behind it
    assert env.service.repo.transition(jid, JobStatus.SUCCEEDED, output={"object": video})
    with pytest.raises(AssertionError, match=f"{jid}.*no video object"):
        check_service(env.service)
    env.storage.upload_bytes("out", video, b"mp4", "video/mp4", metadata={"job-id": "someone-else"})
    with pytest.raises(AssertionError, match="has job-id 'someone-else'"):
        check_service(env.service)
    env.storage.upload_bytes("out", video, b"", "video/mp4", metadata={"job-id": jid})
    with pytest.raises(AssertionError, match="is empty"):
        check_service(env.service)
    env.storage.upload_bytes("out", video, b"mp4", "video/mp4", metadata={"job-id": jid})
    check_service(env.service)  # its own, non-empty video: the invariant holds (and at teardown)
