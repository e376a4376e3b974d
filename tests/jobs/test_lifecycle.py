# ruff: noqa: E501  (a decision table reads best with one row per line)
"""The job state machine's decisions as tables, and the move helper that performs them."""

from __future__ import annotations

import pytest

from portal.jobs import lifecycle
from portal.jobs.lifecycle import Move
from portal.jobs.models import Attempt, Job
from portal.jobs.transitions import job_move
from tests.factories import make_job

S = Job.State
A = Attempt.State


@pytest.mark.parametrize(
    ("state", "outcome", "restarts", "max_restarts", "retryable", "expected"),
    [
        # Success ends the job, whatever restarts remain.
        (S.RUNNING, A.SUCCEEDED, 0, 2, True, Move(S.SUCCEEDED, "Attempt 3 succeeded.", finished=True)),
        (S.SCHEDULED, A.SUCCEEDED, 0, 0, True, Move(S.SUCCEEDED, "Attempt 3 succeeded.", finished=True)),
        # A failure, loss or stop requeues while restarts remain...
        (
            S.RUNNING, A.FAILED, 0, 2, True,
            Move(
                S.QUEUED,
                "Attempt 3 failed: boom. Requeued (restart 1 of 2); it resumes from its latest checkpoint.",
                restart=True,
            ),
        ),
        (
            S.SCHEDULED, A.LOST, 1, 2, True,
            Move(
                S.QUEUED,
                "Attempt 3 was lost: boom. Requeued (restart 2 of 2); it resumes from its latest checkpoint.",
                restart=True,
            ),
        ),
        # ...and fails the job once they are spent...
        (S.RUNNING, A.FAILED, 2, 2, True, Move(S.FAILED, "Attempt 3 failed after 2 restarts: boom.", finished=True)),
        (S.RUNNING, A.CANCELLED, 1, 1, True, Move(S.FAILED, "Attempt 3 was stopped after 1 restart: boom.", finished=True)),
        (S.RUNNING, A.FAILED, 0, 0, True, Move(S.FAILED, "Attempt 3 failed: boom.", finished=True)),
        # ...or at once when the node says another attempt would fail the same way.
        (
            S.RUNNING, A.FAILED, 0, 2, False,
            Move(S.FAILED, "Attempt 3 failed: boom. Not retried: another attempt would fail the same way.", finished=True),
        ),
        # A preemption requeues without using up a restart, even when none are left.
        (
            S.RUNNING, A.PREEMPTED, 0, 0, True,
            Move(
                S.QUEUED,
                "Attempt 3 was boom. Requeued (a preemption uses up no restart); it resumes from its latest checkpoint.",
                preempted=True,
            ),
        ),
        (
            S.SCHEDULED, A.PREEMPTED, 2, 2, False,
            Move(
                S.QUEUED,
                "Attempt 3 was boom. Requeued (a preemption uses up no restart); it resumes from its latest checkpoint.",
                preempted=True,
            ),
        ),
        (S.CANCELLING, A.PREEMPTED, 0, 0, True, Move(S.CANCELLED, "Cancelled.", finished=True)),
        # A cancelling job is cancelled, whatever the attempt did.
        (S.CANCELLING, A.SUCCEEDED, 0, 2, True, Move(S.CANCELLED, "Cancelled.", finished=True)),
        (S.CANCELLING, A.LOST, 0, 2, False, Move(S.CANCELLED, "Cancelled.", finished=True)),
        # A job that is not placed has no attempt to end.
        (S.QUEUED, A.FAILED, 0, 2, True, None),
        (S.SUCCEEDED, A.LOST, 0, 2, True, None),
        (S.CANCELLED, A.FAILED, 0, 0, True, None),
    ],
)  # fmt: skip
def test_after_an_attempt(state, outcome, restarts, max_restarts, retryable, expected):
    move = lifecycle.after_attempt(
        state=state,
        outcome=outcome,
        number=3,
        reason="boom",
        restarts=restarts,
        max_restarts=max_restarts,
        retryable=retryable,
    )
    assert move == expected


@pytest.mark.parametrize(
    ("state", "active", "expected"),
    [
        (S.QUEUED, False, Move(S.CANCELLED, "Cancelled by ada before it started.", finished=True, cancel_requested=True)),
        (S.SCHEDULED, True, Move(S.CANCELLING, "Cancelling at ada's request: stopping its nodes.", cancel_requested=True)),
        (S.RUNNING, True, Move(S.CANCELLING, "Cancelling at ada's request: stopping its nodes.", cancel_requested=True)),
        # Already cancelling: nothing moves (the nodes are told again).
        (S.CANCELLING, True, None),
        # Cancelling, and the attempt has ended meanwhile: nothing holds capacity any more.
        (S.CANCELLING, False, Move(S.CANCELLED, "Cancelled by ada.", finished=True)),
        (S.SUCCEEDED, False, None),
        (S.FAILED, False, None),
        (S.CANCELLED, False, None),
    ],
)  # fmt: skip
def test_on_cancel(state, active, expected):
    assert lifecycle.on_cancel(state=state, has_active_attempt=active, who="ada") == expected


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (S.SCHEDULED, Move(S.RUNNING, "Running attempt 2.", started=True)),
        (S.RUNNING, None),
        (S.CANCELLING, None),
        (S.QUEUED, None),
    ],
)
def test_on_start(state, expected):
    assert lifecycle.on_start(state=state, number=2) == expected


def test_on_place_and_on_submit():
    assert lifecycle.on_submit() == Move(S.QUEUED, "Waiting for the scheduler.")
    assert lifecycle.on_place(state=S.QUEUED, nodes=["a", "b"], number=1) == Move(
        S.SCHEDULED, "Scheduled on a, b (attempt 1)."
    )
    assert lifecycle.on_place(state=S.CANCELLED, nodes=["a"], number=1) is None


def test_every_decided_move_is_a_transition_the_table_allows():
    for state in S:
        for outcome in (A.SUCCEEDED, A.FAILED, A.CANCELLED, A.PREEMPTED, A.LOST):
            for retryable in (True, False):
                move = lifecycle.after_attempt(
                    state=state,
                    outcome=outcome,
                    number=1,
                    reason="r",
                    restarts=0,
                    max_restarts=1,
                    retryable=retryable,
                )
                assert move is None or Job.can_transition(state, move.to), (state, move)
        for active in (True, False):
            move = lifecycle.on_cancel(state=state, has_active_attempt=active, who="u")
            assert move is None or Job.can_transition(state, move.to), (state, move)


# ---- job_move ------------------------------------------------------------------------------


def test_a_move_is_a_conditional_update_with_its_event(owner, django_capture_on_commit_callbacks):
    job = make_job(owner, state=S.RUNNING)
    with django_capture_on_commit_callbacks() as callbacks:
        assert job_move(job, Move(S.QUEUED, "again", restart=True), attempt_id=None)
    stored = Job.objects.get(pk=job.pk)
    assert (stored.state, stored.state_reason, stored.restarts) == (S.QUEUED, "again", 1)
    assert (job.state, job.restarts) == (S.QUEUED, 1)
    assert len(callbacks) == 1  # the state event, after the commit


def test_a_preemption_move_counts_a_preemption_and_no_restart(owner):
    job = make_job(owner, state=S.RUNNING)
    assert job_move(job, Move(S.QUEUED, "preempted", preempted=True), attempt_id=None)
    stored = Job.objects.get(pk=job.pk)
    assert (stored.state, stored.restarts, stored.preemptions) == (S.QUEUED, 0, 1)
    assert (job.restarts, job.preemptions) == (0, 1)


def test_a_move_from_a_state_the_row_left_does_nothing(owner, django_capture_on_commit_callbacks):
    job = make_job(owner, state=S.RUNNING)
    stale = Job.objects.get(pk=job.pk)
    Job.objects.filter(pk=job.pk).update(state=S.CANCELLING)
    with django_capture_on_commit_callbacks() as callbacks:
        assert not job_move(stale, Move(S.SUCCEEDED, "done", finished=True))
    assert Job.objects.get(pk=job.pk).state == S.CANCELLING
    assert callbacks == []


def test_a_move_the_table_forbids_is_refused(owner, caplog):
    job = make_job(owner, state=S.SUCCEEDED)
    assert not job_move(job, Move(S.RUNNING, "back to life"))
    assert Job.objects.get(pk=job.pk).state == S.SUCCEEDED
    assert "cannot go from succeeded to running" in caplog.text
