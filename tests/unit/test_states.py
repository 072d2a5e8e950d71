"""Job state machine (DESIGN §3)."""
import pytest

from shared.states import NON_TERMINAL, TERMINAL, JobStatus, can_transition, is_terminal

S = JobStatus


@pytest.mark.parametrize("a,b", [(S.AWAITING_UPLOAD, S.QUEUED), (S.QUEUED, S.DISPATCHED), (S.DISPATCHED, S.RUNNING),
                                 (S.RUNNING, S.SUCCEEDED), (S.DISPATCHED, S.SUCCEEDED), (S.RUNNING, S.FAILED),
                                 (S.AWAITING_UPLOAD, S.CANCELED), (S.DISPATCHED, S.QUEUED)])
def test_allowed(a, b):
    assert can_transition(a, b)


@pytest.mark.parametrize("a,b", [(S.QUEUED, S.RUNNING), (S.AWAITING_UPLOAD, S.DISPATCHED), (S.RUNNING, S.QUEUED),
                                 (S.QUEUED, S.SUCCEEDED), (S.RUNNING, S.RUNNING)])
def test_refused(a, b):
    assert not can_transition(a, b)


def test_terminal_states_never_change():
    for t in TERMINAL:
        assert is_terminal(t)
        assert not any(can_transition(t, x) for x in JobStatus)
    assert len(NON_TERMINAL) == 4
