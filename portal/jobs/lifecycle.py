"""The job state machine's decisions: pure functions from what happened to where a job goes.

Each function takes the facts (the job's state and counters, what happened) and returns a
`Move` — the next state, the reason a person reads, and which timestamps and counters change —
or None when the job stays where it is. Nothing here reads or writes the database:
`portal.jobs.transitions.job_move` performs a move (checking `Job.TRANSITIONS`, with a
conditional update and the state event after the commit), and every service that moves a job
(submit, place, start, finish, cancel, lose) decides here first. The English reasons are built
here, next to the decisions, and tested with them as tables (tests/jobs/test_lifecycle.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from portal.jobs.models import Attempt, Job


@dataclass(frozen=True)
class Move:
    """Where a job goes, and what changes with it."""

    to: Job.State
    reason: str
    finished: bool = False  # sets finished_at
    started: bool = False  # sets started_at, unless an earlier attempt already did
    restart: bool = False  # counts one restart
    preempted: bool = False  # counts one preemption
    cancel_requested: bool = False  # sets cancel_requested_at


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def on_submit() -> Move:
    """A new job waits in the queue."""
    return Move(to=Job.State.QUEUED, reason="Waiting for the scheduler.")


def on_place(*, state: str, nodes: Sequence[str], number: int) -> Move | None:
    """The scheduler chose `nodes` for attempt `number` of a queued job."""
    if state != Job.State.QUEUED:
        return None
    return Move(
        to=Job.State.SCHEDULED, reason=f"Scheduled on {', '.join(nodes)} (attempt {number})."
    )


def on_start(*, state: str, number: int) -> Move | None:
    """A node started its share of attempt `number`: the first such report starts the job."""
    if state != Job.State.SCHEDULED:
        return None
    return Move(to=Job.State.RUNNING, reason=f"Running attempt {number}.", started=True)


def on_cancel(*, state: str, has_active_attempt: bool, who: str) -> Move | None:
    """`who` asked to cancel. A queued job ends at once; a placed one is CANCELLING until its
    nodes report back (or are lost); a CANCELLING job whose attempt already ended is done."""
    if state == Job.State.QUEUED:
        return Move(
            to=Job.State.CANCELLED,
            reason=f"Cancelled by {who} before it started.",
            finished=True,
            cancel_requested=True,
        )
    if state in {Job.State.SCHEDULED, Job.State.RUNNING} and has_active_attempt:
        return Move(
            to=Job.State.CANCELLING,
            reason=f"Cancelling at {who}'s request: stopping its nodes.",
            cancel_requested=True,
        )
    if state == Job.State.CANCELLING and not has_active_attempt:
        # Nothing holds capacity any more (the attempt ended while the job was cancelling).
        return Move(to=Job.State.CANCELLED, reason=f"Cancelled by {who}.", finished=True)
    return None


_OUTCOME_WORDS: dict[str, str] = {
    Attempt.State.FAILED: "failed",
    Attempt.State.LOST: "was lost",
    Attempt.State.CANCELLED: "was stopped",
}


def after_attempt(
    *,
    state: str,
    outcome: str,
    number: int,
    reason: str,
    restarts: int,
    max_restarts: int,
    retryable: bool,
) -> Move | None:
    """Attempt `number` of a placed job ended with `outcome` (an `Attempt.State`) for
    `reason`. A cancelling job is cancelled whatever the outcome; otherwise success ends the
    job, a preemption requeues it without counting a restart (`reason` is then "preempted by
    job #N at ..."), and a failure, cancel or loss requeues it while restarts remain and the
    node did not say another attempt would fail the same way (`retryable`), or else fails it.
    None: the job is not placed (it was never meant to have a running attempt)."""
    if state == Job.State.CANCELLING:
        return Move(to=Job.State.CANCELLED, reason="Cancelled.", finished=True)
    if state not in {Job.State.SCHEDULED, Job.State.RUNNING}:
        return None
    if outcome == Attempt.State.SUCCEEDED:
        return Move(to=Job.State.SUCCEEDED, reason=f"Attempt {number} succeeded.", finished=True)
    if outcome == Attempt.State.PREEMPTED:
        # Not the job's fault: it goes back to the queue whatever its restarts.
        return Move(
            to=Job.State.QUEUED,
            reason=(
                f"Attempt {number} was {reason}. Requeued (a preemption uses up no restart); "
                "it resumes from its latest checkpoint."
            ),
            preempted=True,
        )
    words = _OUTCOME_WORDS[outcome]
    if restarts < max_restarts and retryable:
        return Move(
            to=Job.State.QUEUED,
            reason=(
                f"Attempt {number} {words}: {reason}. Requeued (restart {restarts + 1} of "
                f"{max_restarts}); it resumes from its latest checkpoint."
            ),
            restart=True,
        )
    if restarts < max_restarts:
        # Restarts remain, but the node said another attempt would fail the same way.
        detail = (
            f"Attempt {number} {words}: {reason}. "
            "Not retried: another attempt would fail the same way."
        )
    else:
        spent = f" after {_plural(restarts, 'restart')}" if max_restarts else ""
        detail = f"Attempt {number} {words}{spent}: {reason}."
    return Move(to=Job.State.FAILED, reason=detail, finished=True)
