"""The planner as tables: order (priority, fair share, age), backfill around a reservation,
quotas, and the why-pending facts, over plain data (no database: tests/jobs/test_backfill.py
runs the same rules through PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from portal.jobs.planning import Ask, NodeState, Release, plan
from portal.jobs.quotas import QuotaVerdict

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOUR = 3600


def gpu_node(
    name: str, *, free: int = 8, pool: str = "a", busy_until: Sequence[int] = ()
) -> NodeState:
    """An 8-GPU node with `free` GPUs free; each entry of `busy_until` is one GPU-holding
    attempt ending that many hours from now."""
    held = 8 - free
    assert held == len(busy_until)
    return NodeState(
        id=abs(hash(name)) % 10**9,
        name=name,
        pool=pool,
        gpu_model="H200",
        gpu_count=8,
        free_gpus=list(range(held, 8)),
        releases=sorted(
            (Release(NOW + timedelta(hours=h), gpus=1) for h in busy_until), key=lambda r: r.at
        ),
    )


def ask(
    id: int,
    *,
    gpus: int = 1,
    nodes: int = 1,
    priority: int = 0,
    owner: int = 1,
    age_s: int = 0,
    hours: float = 24,
    pool: str = "",
) -> Ask:
    return Ask(
        id=id,
        owner=owner,
        priority=priority,
        created_at=NOW - timedelta(seconds=1000 - id + age_s),
        nodes=nodes,
        per_node=gpus,
        gpu=True,
        max_run_time_s=int(hours * HOUR),
        pool=pool,
    )


def started(decided) -> list[int]:
    return [start.ask.id for start in decided.starts]


@pytest.mark.parametrize(
    ("asks", "usage", "free", "starts"),
    [
        # Priority first: the urgent newer job takes the one free GPU.
        pytest.param([ask(1), ask(2, priority=5)], {}, 1, [2], id="priority"),
        # Same priority: the owner with less recent use goes first, however old the other.
        pytest.param(
            [ask(1, owner=1, age_s=500), ask(2, owner=2)],
            {1: (40.0, 0.0), 2: (3.0, 0.0)},
            1,
            [2],
            id="fair-share",
        ),
        # GPU-hours decide before CPU-slot-hours.
        pytest.param(
            [ask(1, owner=1), ask(2, owner=2)],
            {1: (1.0, 0.0), 2: (0.5, 900.0)},
            1,
            [2],
            id="gpu-hours-before-slot-hours",
        ),
        # Same priority and use: the oldest.
        pytest.param([ask(2), ask(1, age_s=60)], {}, 1, [1], id="age"),
        # Priority beats fair share.
        pytest.param(
            [ask(1, owner=1, priority=1), ask(2, owner=2)],
            {1: (999.0, 0.0)},
            1,
            [1],
            id="priority-beats-fair-share",
        ),
    ],
)
def test_the_order_is_priority_then_fair_share_then_age(asks, usage, free, starts):
    decided = plan(
        nodes=[gpu_node("n1", free=free, busy_until=[1] * (8 - free))],
        asks=asks,
        now=NOW,
        usage=usage,
    )
    assert started(decided) == starts


# Two 8-GPU nodes in pool a: n1 has 4 GPUs held until +2 h, n2 has 6 held until +3 h.
def busy_pool() -> list[NodeState]:
    return [gpu_node("n1", free=4, busy_until=[2] * 4), gpu_node("n2", free=2, busy_until=[3] * 6)]


@pytest.mark.parametrize(
    ("later", "starts_now"),
    [
        # Ends (1 h) before the gang's reservation (+3 h): it may use the reserved nodes.
        pytest.param(ask(2, gpus=4, hours=1), True, id="ends-before-the-reservation"),
        # Would still run at +3 h on a reserved node, with no spare GPU there: it waits.
        pytest.param(ask(2, gpus=2, hours=5), False, id="would-delay-the-reservation"),
        # Ends exactly at the reservation: allowed.
        pytest.param(ask(2, gpus=2, hours=3), True, id="ends-at-the-reservation"),
        # Higher priority than the gang: it is ahead, so nothing is reserved against it.
        pytest.param(ask(2, gpus=2, hours=5, priority=9), True, id="ahead-of-the-gang"),
    ],
)
def test_backfill_starts_a_later_job_only_if_it_leaves_the_reservation_whole(later, starts_now):
    gang = ask(1, gpus=8, nodes=2)
    decided = plan(nodes=busy_pool(), asks=[gang, later], now=NOW)
    assert (2 in started(decided)) is starts_now
    reservations = [r for r in decided.reservations if r.ask_id == 1]
    if later.priority <= gang.priority:
        # The gang's reservation: both nodes, when the last of them is free.
        [reservation] = reservations
        assert (reservation.start, reservation.nodes) == (NOW + timedelta(hours=3), ("n1", "n2"))


def test_a_job_that_leaves_a_reserved_nodes_capacity_untouched_may_run_past_it():
    # The head needs 4 GPUs on one node: n1 frees 4 at +2 h, so 0 spare there; n3 is its own.
    nodes = [gpu_node("n1", free=0, busy_until=[2] * 4 + [9] * 4), gpu_node("n3", pool="b")]
    head = ask(1, gpus=4, pool="a")
    other_pool = ask(2, gpus=8, hours=48, pool="b")
    decided = plan(nodes=nodes, asks=[head, other_pool], now=NOW)
    assert started(decided) == [2]
    [reservation] = decided.reservations
    assert (reservation.start, reservation.nodes) == (NOW + timedelta(hours=2), ("n1",))


def test_a_reserved_node_with_spare_capacity_at_the_start_takes_a_long_job_beside_it():
    # n1: 6 GPUs held, 2 free now; 4 come back at +1 h (2 stay till +9 h). The head needs 4
    # at +1 h, when 6 are free: 2 spare, so the 2 free now may run a long job meanwhile.
    nodes = [gpu_node("n1", free=2, busy_until=[1] * 4 + [9] * 2)]
    decided = plan(nodes=nodes, asks=[ask(1, gpus=4), ask(2, gpus=2, hours=48)], now=NOW)
    assert started(decided) == [2]
    assert decided.reservations[0].start == NOW + timedelta(hours=1)
    # A second long job would take the head's own GPUs: it waits.
    again = plan(
        nodes=[gpu_node("n1", free=2, busy_until=[1] * 4 + [9] * 2)],
        asks=[ask(1, gpus=6), ask(2, gpus=2, hours=48)],
        now=NOW,
    )
    assert started(again) == []


def test_a_big_gang_starts_at_its_reservation_while_small_jobs_keep_arriving():
    """Simulated hours: every hour small 1-GPU jobs arrive (some short, some long); the gang of
    two whole nodes, submitted first, starts the moment its reservation begins."""
    nodes = [gpu_node(f"n{i}", free=4, busy_until=[3] * 4) for i in (1, 2)]
    gang = ask(1, gpus=8, nodes=2, age_s=3600)
    queued = [gang]
    reserved_at = None
    gang_started = None
    next_id = 2
    for hour in range(6):
        now = NOW + timedelta(hours=hour)
        # Time passes: attempts past their end give their GPUs back.
        for node in nodes:
            node.releases = [r for r in node.releases if r.at > now]
            node.free_gpus = list(range(sum(r.gpus for r in node.releases), 8))
        for long in (True, False, True):
            queued.append(
                Ask(
                    id=next_id,
                    owner=2,
                    priority=0,
                    created_at=now,
                    nodes=1,
                    per_node=1,
                    gpu=True,
                    max_run_time_s=(10 if long else 1) * HOUR,
                )
            )
            next_id += 1
        decided = plan(nodes=nodes, asks=queued, now=now)
        started_ids = set(started(decided))
        for wait in decided.waits:
            if wait.ask.id == 1 and wait.reservation is not None and reserved_at is None:
                reserved_at = wait.reservation.start
        if 1 in started_ids:
            gang_started = now
            break
        queued = [a for a in queued if a.id not in started_ids]
        # No small job ever runs past the reservation on its nodes.
        for start in decided.starts:
            assert reserved_at is not None
            assert now + timedelta(seconds=start.ask.max_run_time_s) <= reserved_at
    assert reserved_at == NOW + timedelta(hours=3)
    assert gang_started == reserved_at


def test_a_job_the_quota_holds_back_waits_without_a_reservation_and_says_why():
    verdict = QuotaVerdict("team", "vision", "gpus", allowed=8, used=6, asked=4)
    decided = plan(
        nodes=[gpu_node("n1")],
        asks=[ask(1, gpus=4, owner=7), ask(2, gpus=4, owner=8)],
        now=NOW,
        blocked=lambda a: verdict if a.owner == 7 else None,
    )
    assert started(decided) == [2]
    [wait] = decided.waits
    assert (wait.kind, wait.quota, wait.reservation, wait.estimated_start) == (
        "quota",
        verdict,
        None,
        None,
    )
    assert decided.reservations == []


def test_a_quota_blocked_head_leaves_the_reservation_to_the_next_job():
    verdict = QuotaVerdict("user", "ann", "gpus", allowed=4, used=4, asked=8)
    decided = plan(
        nodes=[gpu_node("n1", free=0, busy_until=[2] * 8)],
        asks=[ask(1, gpus=8, owner=7), ask(2, gpus=8, owner=8)],
        now=NOW,
        blocked=lambda a: verdict if a.owner == 7 else None,
    )
    assert [(w.ask.id, w.kind) for w in decided.waits] == [(1, "quota"), (2, "reservation")]
    assert decided.reservations[0].ask_id == 2


def test_each_waiting_job_knows_its_position_the_jobs_ahead_and_the_failing_nodes():
    nodes = [
        gpu_node("a1", free=0, busy_until=[1] * 8),
        gpu_node("a2", free=2, busy_until=[2] * 6),
        gpu_node("b1", pool="b"),
        NodeState(id=99, name="a3", pool="a", gpu_count=8, schedulable=False, status="draining"),
    ]
    asks = [ask(1, gpus=4, pool="a"), ask(2, gpus=6, pool="a")]
    asks += [ask(i, gpus=4, pool="a") for i in (3, 4)]
    decided = plan(nodes=nodes, asks=asks, now=NOW)
    assert started(decided) == []
    waits = {w.ask.id: w for w in decided.waits}
    assert [waits[i].position for i in (1, 2, 3, 4)] == [1, 2, 3, 4]
    assert waits[4].ahead == [1, 2, 3] and waits[4].queue_length == 4
    assert waits[1].queue == "a"
    counts = {c.constraint: c.nodes for c in waits[3].constraints}
    assert counts == {"pool": 1, "node_state": 1, "size": 0, "free": 2, "reservation": 0}
    # The head reserves a1 at +1 h. The 6-GPU job does not fit beside it there (4 spare), so
    # its earliest start is a2's at +2 h; a 4-GPU job fits beside the reservation at +1 h.
    assert waits[1].reservation is not None
    assert waits[1].reservation.start == NOW + timedelta(hours=1)
    assert waits[1].estimated_start == NOW + timedelta(hours=1)
    assert waits[2].estimated_start == NOW + timedelta(hours=2)
    assert waits[3].estimated_start == NOW + timedelta(hours=1)


def test_a_job_without_a_pool_competes_in_the_pool_of_the_nodes_it_can_use():
    nodes = [
        gpu_node("a1", free=0, busy_until=[1] * 8),
        gpu_node("b1", pool="b", free=0, busy_until=[1] * 8),
    ]
    nodes[1].gpu_model = "A100"
    h200 = Ask(1, 1, 0, NOW, 1, 1, True, HOUR, gpu_model="h200")
    anywhere = Ask(2, 1, 0, NOW, 1, 1, True, HOUR)
    decided = plan(nodes=nodes, asks=[h200, anywhere], now=NOW)
    assert {w.ask.id: w.queue for w in decided.waits} == {1: "a", 2: "a+b"}
