# ruff: noqa: E501  (a decision table reads best with one row per line)
"""Which running attempts a waiting job preempts (`portal.jobs.victims`), as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from portal.jobs.victims import Holder, Waiting, choose_victims, may_preempt

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
MIN_RUN_S = 300.0


def holder(
    attempt: int,
    *,
    priority: int = 0,
    preemptible: bool = True,
    ran_s: float = 600,
    held: dict[int, int] | None = None,
) -> Holder:
    return Holder(
        attempt_id=attempt,
        job_id=attempt * 10,
        priority=priority,
        preemptible=preemptible,
        started_at=NOW - timedelta(seconds=ran_s),
        held=held or {1: 4},
    )


@pytest.mark.parametrize(
    ("h", "expected"),
    [
        (holder(1, priority=4), True),
        # Not opted in.
        (holder(1, priority=4, preemptible=False), False),
        # Equal or higher priority is never preempted.
        (holder(1, priority=5), False),
        (holder(1, priority=9), False),
        # The current attempt has not run the minimum time yet (exactly the minimum is enough).
        (holder(1, priority=0, ran_s=299), False),
        (holder(1, priority=0, ran_s=300), True),
        (Holder(attempt_id=1, job_id=10, priority=0, preemptible=True, started_at=None, held={1: 4}), False),
    ],
)  # fmt: skip
def test_who_may_be_preempted(h, expected):
    waiting = Waiting(priority=5, nodes=1, need=4, free={1: 0})
    assert may_preempt(h, waiting, now=NOW, min_run_s=MIN_RUN_S) is expected


@pytest.mark.parametrize(
    ("waiting", "holders", "expected"),
    [
        # One node of 4 GPUs, all held by one low-priority job: it is stopped.
        (Waiting(5, 1, 4, {1: 0}), [holder(1, held={1: 4})], [1]),
        # It fits already: nobody is preempted.
        (Waiting(5, 1, 4, {1: 4}), [holder(1, held={1: 4})], None),
        # Fewest victims: the one holder of 4 rather than the two holders of 2.
        (Waiting(5, 1, 4, {1: 0, 2: 0}), [holder(1, priority=0, held={1: 2}), holder(2, priority=0, held={1: 2}), holder(3, priority=3, held={2: 4})], [3]),
        # Among equals, the lowest priority.
        (Waiting(5, 1, 4, {1: 0, 2: 0}), [holder(1, priority=3, held={1: 4}), holder(2, priority=1, held={2: 4})], [2]),
        # Among equal priority, the most recently started.
        (Waiting(5, 1, 4, {1: 0, 2: 0}), [holder(1, ran_s=900, held={1: 4}), holder(2, ran_s=400, held={2: 4})], [2]),
        # Free room counts: 2 free plus a holder of 2 makes 4 (a holder of 1 would not do).
        (Waiting(5, 1, 4, {1: 2, 2: 0}), [holder(1, priority=2, held={1: 2}), holder(2, priority=3, held={2: 4}), holder(3, priority=2, held={1: 1})], [1]),
        # A gang of 2 nodes: one 2-node victim frees both, fewer than two 1-node victims.
        (Waiting(5, 2, 4, {1: 0, 2: 0, 3: 0}), [holder(1, held={1: 4}), holder(2, held={3: 4}), holder(3, priority=2, held={1: 4, 2: 4})], [3]),
        # A gang of 2: one node free already, one victim for the second.
        (Waiting(5, 2, 4, {1: 4, 2: 0}), [holder(1, held={2: 4})], [1]),
        # Never for a job that still could not start: the gang needs 2 nodes, only 1 can be freed.
        (Waiting(5, 2, 4, {1: 0, 2: 0}), [holder(1, held={1: 4}), holder(2, preemptible=False, held={2: 4})], None),
        # ...nor when stopping every candidate frees too little on the node.
        (Waiting(5, 1, 4, {1: 0}), [holder(1, held={1: 2}), holder(2, priority=5, held={1: 2})], None),
        # Nothing preemptible or lower: nobody is stopped.
        (Waiting(5, 1, 4, {1: 0}), [holder(1, priority=5, held={1: 4})], None),
        (Waiting(5, 1, 4, {1: 0}), [holder(1, preemptible=False, held={1: 4})], None),
        (Waiting(5, 1, 4, {1: 0}), [holder(1, ran_s=10, held={1: 4})], None),
        # Room held on a node the job may not use (not in `free`) does not help.
        (Waiting(5, 1, 4, {1: 0}), [holder(1, held={9: 4})], None),
        # Only as many as needed: the second, older holder on another node keeps running.
        (Waiting(5, 1, 2, {1: 0, 2: 0}), [holder(1, ran_s=400, held={1: 2}), holder(2, ran_s=4000, held={2: 2})], [1]),
    ],
)  # fmt: skip
def test_choosing_victims(waiting, holders, expected):
    chosen = choose_victims(waiting, holders, now=NOW, min_run_s=MIN_RUN_S)
    assert (None if chosen is None else sorted(h.attempt_id for h in chosen)) == expected
