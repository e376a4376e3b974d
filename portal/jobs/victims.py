"""Which running attempts a waiting job may preempt: a pure decision, tested as a table.

`choose_victims` takes what the scheduler pass knows (the waiting job's gang, the free room on
each node that meets its constraints, and the running attempts that hold room there) and
answers with the attempts to stop, or None. `portal.jobs.preemption` reads those facts from
the database and performs the stop. See docs/scheduling.md, *Preemption*.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Waiting:
    """A queued job that cannot start for lack of free room."""

    priority: int
    nodes: int  # the gang: this many distinct nodes...
    need: int  # ...each with this much free (GPUs for a GPU job, CPU slots otherwise)
    # node id -> room free now, for every schedulable node that meets the job's constraints.
    free: Mapping[int, int]


@dataclass(frozen=True)
class Holder:
    """A running attempt that holds room the waiting job could use."""

    attempt_id: int
    job_id: int
    priority: int
    preemptible: bool
    started_at: datetime | None  # when the attempt started running (None: not yet)
    # node id -> room of the waiting job's kind its unfinished placements hold there.
    held: Mapping[int, int] = field(default_factory=dict)


def may_preempt(holder: Holder, waiting: Waiting, *, now: datetime, min_run_s: float) -> bool:
    """The holder opted in, has strictly lower priority, and its attempt ran long enough."""
    return (
        holder.preemptible
        and holder.priority < waiting.priority
        and holder.started_at is not None
        and (now - holder.started_at).total_seconds() >= min_run_s
    )


def _preference(holder: Holder) -> tuple[int, float, int]:
    # Lowest priority first, then the most recently started (it loses the least work).
    assert holder.started_at is not None
    return (holder.priority, -holder.started_at.timestamp(), -holder.attempt_id)


def _fits(waiting: Waiting, free: Mapping[int, int]) -> int:
    return sum(1 for room in free.values() if room >= waiting.need)


def _freed(free: Mapping[int, int], chosen: Sequence[Holder]) -> dict[int, int]:
    room = dict(free)
    for holder in chosen:
        for node, amount in holder.held.items():
            if node in room:
                room[node] += amount
    return room


def _victims_on_node(
    node: int, room: int, need: int, candidates: Sequence[Holder]
) -> list[Holder] | None:
    """The fewest candidates (by preference among equals) whose room on `node` lifts it to
    `need`, or None when all of them together cannot."""
    on_node = [h for h in candidates if h.held.get(node, 0) > 0]
    # The largest holders first: fewest victims; the preference breaks ties.
    on_node.sort(key=lambda h: (-h.held[node], _preference(h)))
    chosen: list[Holder] = []
    for holder in on_node:
        if room >= need:
            break
        chosen.append(holder)
        room += holder.held[node]
    return chosen if room >= need else None


def choose_victims(
    waiting: Waiting, holders: Sequence[Holder], *, now: datetime, min_run_s: float
) -> list[Holder] | None:
    """The attempts to stop so that `waiting` can start, or None: it fits already, or no
    choice of the attempts it may preempt would make it fit (it is never preempted for).

    Greedy, node by node: each round frees the node that costs the fewest further victims per
    node gained (a gang victim on several nodes frees them all at once), preferring
    lower-priority and more recently started victims among equals, until `waiting.nodes`
    nodes have `waiting.need` free."""
    if _fits(waiting, waiting.free) >= waiting.nodes:
        return None
    candidates = sorted(
        (h for h in holders if may_preempt(h, waiting, now=now, min_run_s=min_run_s)),
        key=_preference,
    )
    if _fits(waiting, _freed(waiting.free, candidates)) < waiting.nodes:
        return None  # even stopping every one of them would not let it start
    chosen: list[Holder] = []
    while True:
        room = _freed(waiting.free, chosen)
        if _fits(waiting, room) >= waiting.nodes:
            return chosen
        fitting = _fits(waiting, room)
        short = waiting.nodes - fitting
        left = [h for h in candidates if h not in chosen]
        options = []
        for node, free in room.items():
            if free >= waiting.need:
                continue
            extra = _victims_on_node(node, free, waiting.need, left)
            if extra is None:
                continue
            # Victims per node gained: a gang victim may free several of the nodes needed.
            gained = min(short, _fits(waiting, _freed(waiting.free, chosen + extra)) - fitting)
            worst = max(_preference(h) for h in extra)
            options.append((len(extra) / gained, worst, node, extra))
        if not options:
            return None  # unreachable: all candidates together fit
        _, _, _, extra = min(options, key=lambda option: option[:3])
        chosen.extend(extra)
