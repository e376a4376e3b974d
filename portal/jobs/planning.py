"""The scheduler's decisions, over plain data: which queued jobs start now, on which nodes, and
why each other job waits. Nothing here reads or writes the database: `portal.jobs.scheduling`
loads the cluster into these dataclasses, calls `plan`, and performs the plan; the plan preview
(`POST /api/v1/jobs/?dry_run=true`) calls the same `plan` with one hypothetical job more. The
tests drive it as tables (tests/jobs/test_planning.py). See docs/scheduling.md.

The rules, in order:

- **Order**: priority (high first), then fair share (the owner's decayed GPU-hours, then
  CPU-slot-hours: less recent usage first), then submission time, then id.
- **Queues**: a job competes in its pool's queue; a job without a pool competes in the pool of
  the nodes that meet its GPU model and labels, or, where those span several pools, in a
  queue of its own named after all of them (`a+b`).
- **Backfill with a reservation**: the first job of each queue that cannot start (for lack of
  nodes or free capacity, not for a quota) gets a reservation: the earliest time enough nodes
  will be free (from the running attempts' start + maximum run time), on those nodes. A later
  job may take a reserved node's capacity only if it ends (now + its maximum run time) by the
  reservation's start, or leaves the reservation its capacity at that time.
- **Quotas**: a job the `Admission` blocks waits, and gets no reservation.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from portal.jobs.quotas import QuotaVerdict

# How many of the jobs right ahead of a waiting job its why-pending lists by id.
AHEAD_LISTED = 10

Constraint = Literal["pool", "gpu_model", "labels", "node_state", "size", "free", "reservation"]
WaitKind = Literal["unrunnable", "backoff", "quota", "nodes", "capacity", "reservation"]


@dataclass
class Release:
    """Capacity a running attempt gives back on one node at the latest by `at` (its start plus
    its job's maximum run time: past it the attempt is stopped)."""

    at: datetime
    gpus: int = 0
    slots: int = 0


@dataclass
class NodeState:
    """One node as the pass sees it: what it offers, which GPU and CPU-slot indices are free,
    and when the held ones come back (`releases`, sorted by time)."""

    id: int
    name: str
    pool: str = ""
    gpu_model: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    gpu_count: int = 0
    cpu_slots: int = 0
    free_gpus: list[int] = field(default_factory=list)
    free_slots: list[int] = field(default_factory=list)
    schedulable: bool = True
    status: str = "ready"
    releases: list[Release] = field(default_factory=list)
    address: str = ""  # where the other nodes reach it (a gang's rendezvous)

    def total(self, gpu: bool) -> int:
        return self.gpu_count if gpu else self.cpu_slots

    def free(self, gpu: bool) -> int:
        return len(self.free_gpus if gpu else self.free_slots)

    def free_at(self, gpu: bool, when: datetime) -> int:
        """Free units at `when`: free now, plus what the running attempts give back by then."""
        back = sum(r.gpus if gpu else r.slots for r in self.releases if r.at <= when)
        return self.free(gpu) + back

    def fit_time(self, gpu: bool, need: int, now: datetime) -> datetime | None:
        """The earliest time `need` units are free here (None: never, the node is too small)."""
        have = self.free(gpu)
        if have >= need:
            return now
        for release in self.releases:
            have += release.gpus if gpu else release.slots
            if have >= need:
                return max(now, release.at)
        return None

    def take(self, gpu: bool, need: int, until: datetime) -> tuple[list[int], list[int]]:
        """Hand out the lowest free indices (GPU indices, CPU-slot indices) until `until`."""
        if gpu:
            taken, self.free_gpus = self.free_gpus[:need], self.free_gpus[need:]
            bisect.insort(self.releases, Release(until, gpus=need), key=lambda r: r.at)
            return taken, []
        taken, self.free_slots = self.free_slots[:need], self.free_slots[need:]
        bisect.insort(self.releases, Release(until, slots=need), key=lambda r: r.at)
        return [], taken


@dataclass(frozen=True)
class Ask:
    """A queued job, as the planner needs it."""

    id: int
    owner: int
    priority: int
    created_at: datetime
    nodes: int
    per_node: int  # GPUs per node for a GPU job, CPU slots per node otherwise
    gpu: bool
    max_run_time_s: int
    pool: str = ""
    gpu_model: str = ""
    selector: tuple[tuple[str, str], ...] = ()
    # A requeued job's backoff: not placed before this.
    not_before: datetime | None = None

    @property
    def placement_class(self) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        return (self.pool, self.gpu_model.casefold(), self.selector)


@dataclass
class Hold:
    """A reservation's claim on one node: from `start` to `end` it needs `need` units, and
    `spare` units more are free then (a backfilled job may take those past `start`)."""

    ask_id: int
    gpu: bool
    need: int
    start: datetime
    end: datetime
    spare: int


@dataclass(frozen=True)
class Reservation:
    ask_id: int
    start: datetime
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class Share:
    node: NodeState
    gpu_indices: list[int]
    cpu_indices: list[int]


@dataclass(frozen=True)
class Start:
    ask: Ask
    shares: list[Share]


@dataclass(frozen=True)
class ConstraintCount:
    """How many nodes fail one of a job's requirements (each counted on its own, as
    HTCondor's `-better-analyze` does)."""

    constraint: Constraint
    label: str
    nodes: int


@dataclass
class Wait:
    """Why a queued job does not start in this pass, and when it may."""

    ask: Ask
    kind: WaitKind
    queue: str
    position: int = 0  # 1: the next job of its queue
    queue_length: int = 0
    ahead: list[int] = field(default_factory=list)  # the nearest jobs ahead, nearest last
    constraints: list[ConstraintCount] = field(default_factory=list)
    nodes_total: int = 0
    nodes_fit: int = 0  # could take it now
    quota: QuotaVerdict | None = None
    reservation: Reservation | None = None
    estimated_start: datetime | None = None
    detail: str = ""  # the unrunnable job's problem, the backoff's sentence


@dataclass
class Plan:
    starts: list[Start]
    waits: list[Wait]
    reservations: list[Reservation]


Usage = dict[int, tuple[float, float]]  # owner id -> (decayed GPU-hours, CPU-slot-hours)


def order_key(ask: Ask, usage: Usage) -> tuple[int, float, float, datetime, int]:
    gpu_hours, slot_hours = usage.get(ask.owner, (0.0, 0.0))
    return (-ask.priority, gpu_hours, slot_hours, ask.created_at, ask.id)


def misses(node: NodeState, ask: Ask) -> list[Constraint]:
    """Which of the job's placement requirements `node` fails: pool, GPU model, labels."""
    failed: list[Constraint] = []
    if ask.pool and node.pool != ask.pool:
        failed.append("pool")
    if ask.gpu_model and ask.gpu_model.casefold() not in node.gpu_model.casefold():
        failed.append("gpu_model")
    if any(node.labels.get(key) != value for key, value in ask.selector):
        failed.append("labels")
    return failed


class _Cluster:
    """The nodes, with what the pass has decided so far: capacity taken, reservations held.
    Per placement class (pool, GPU model, labels) the eligible nodes are worked out once."""

    def __init__(self, nodes: Sequence[NodeState], now: datetime) -> None:
        self.nodes = list(nodes)
        self.now = now
        self.holds: dict[int, list[Hold]] = {}
        self._eligible: dict[tuple[object, ...], list[NodeState]] = {}
        self._summaries: dict[tuple[object, ...], _ClassSummary] = {}
        self._queues: dict[tuple[object, ...], str] = {}
        # Per placement class and kind: the schedulable eligible nodes that may still have
        # room (in `eligible`'s order). Capacity only shrinks within a pass, so a node found
        # with nothing free is dropped for good and later jobs no longer look at it.
        self._open: dict[tuple[object, ...], list[NodeState]] = {}

    def eligible(self, ask: Ask) -> list[NodeState]:
        key = ask.placement_class
        found = self._eligible.get(key)
        if found is None:
            found = self._eligible[key] = [n for n in self.nodes if not misses(n, ask)]
        return found

    def queue(self, ask: Ask) -> str:
        if ask.pool:
            return ask.pool
        key = ask.placement_class
        found = self._queues.get(key)
        if found is None:
            found = self._queues[key] = "+".join(sorted({n.pool for n in self.eligible(ask)}))
        return found

    def allows(self, node: NodeState, ask: Ask, ends: datetime) -> bool:
        """Whether `ask` may take its share of `node` now without delaying a reservation."""
        return all(
            ends <= h.start or ask.per_node <= h.spare
            for h in self.holds.get(node.id, ())
            if h.gpu == ask.gpu and h.ask_id != ask.id
        )

    def choose(self, ask: Ask) -> list[NodeState] | None:
        """`ask.nodes` distinct nodes with room now that no reservation forbids, tightest fit
        first (then by name), or None: a gang is placed whole or not at all."""
        ends = self.now + timedelta(seconds=ask.max_run_time_s)
        key = (*ask.placement_class, ask.gpu)
        gpu, need = ask.gpu, ask.per_node
        candidates = self._open.get(key) if need > 0 else None
        if candidates is None:
            candidates = [n for n in self.eligible(ask) if n.schedulable]
        still_open = []
        fits = []
        for n in candidates:
            free = len(n.free_gpus if gpu else n.free_slots)
            if free or need <= 0:
                still_open.append(n)
                if free >= need and self.allows(n, ask, ends):
                    fits.append(n)
        if need > 0:
            self._open[key] = still_open
        if len(fits) < ask.nodes:
            return None
        fits.sort(key=lambda n: (n.free(ask.gpu) - ask.per_node, n.name))
        return fits[: ask.nodes]

    def take(self, ask: Ask, chosen: list[NodeState]) -> list[Share]:
        ends = self.now + timedelta(seconds=ask.max_run_time_s)
        shares = []
        for node in chosen:
            for hold in self.holds.get(node.id, ()):
                if hold.gpu == ask.gpu and ends > hold.start:
                    hold.spare -= ask.per_node
            gpus, slots = node.take(ask.gpu, ask.per_node, ends)
            shares.append(Share(node, gpus, slots))
        return shares

    def earliest(self, node: NodeState, ask: Ask) -> datetime | None:
        """The earliest time `ask` could start on `node`, given when its capacity comes back
        and the reservations on it (a reserved node is free again when its reservation ends,
        unless the job fits beside it or ends before it starts)."""
        if not node.schedulable:
            return None
        start = node.fit_time(ask.gpu, ask.per_node, self.now)
        if start is None:
            return None
        run = timedelta(seconds=ask.max_run_time_s)
        for hold in sorted(self.holds.get(node.id, ()), key=lambda h: h.start):
            if hold.gpu != ask.gpu or hold.ask_id == ask.id or ask.per_node <= hold.spare:
                continue
            if start + run > hold.start:
                start = max(start, hold.end)
        return start

    def earliest_gang(self, ask: Ask) -> tuple[datetime, list[NodeState]] | None:
        times = []
        for node in self.eligible(ask):
            when = self.earliest(node, ask)
            if when is not None:
                times.append((when, node.free(ask.gpu) - ask.per_node, node.name, node))
        if len(times) < ask.nodes:
            return None
        times.sort(key=lambda t: t[:3])
        chosen = times[: ask.nodes]
        return chosen[-1][0], [t[3] for t in chosen]

    def reserve(self, ask: Ask) -> Reservation | None:
        found = self.earliest_gang(ask)
        if found is None:
            return None
        start, nodes = found
        end = start + timedelta(seconds=ask.max_run_time_s)
        for node in nodes:
            spare = node.free_at(ask.gpu, start) - ask.per_node
            self.holds.setdefault(node.id, []).append(
                Hold(ask.id, ask.gpu, ask.per_node, start, end, max(0, spare))
            )
        return Reservation(ask.id, start, tuple(n.name for n in nodes))

    def summary(self, ask: Ask) -> _ClassSummary:
        key = (*ask.placement_class, ask.gpu)
        found = self._summaries.get(key)
        if found is None:
            found = self._summaries[key] = _ClassSummary(self, ask)
        return found

    def counts(self, ask: Ask) -> tuple[list[ConstraintCount], int]:
        """For each requirement, how many nodes fail it; and how many could take it now.
        Only after the pass's decisions: the per-class summaries are not updated."""
        summary = self.summary(ask)
        need = ask.per_node
        large = len(summary.totals) - bisect.bisect_left(summary.totals, need)
        free = len(summary.frees) - bisect.bisect_left(summary.frees, need)
        ends = self.now + timedelta(seconds=ask.max_run_time_s)
        reserved = sum(
            1 for n in summary.held if n.free(ask.gpu) >= need and not self.allows(n, ask, ends)
        )
        tally: dict[Constraint, int] = {
            **summary.misses,
            "node_state": summary.unschedulable,
            "size": len(summary.totals) - large,
            "free": large - free,
            "reservation": reserved,
        }
        unit = "GPUs" if ask.gpu else "CPU slots"
        labels: dict[Constraint, str] = {
            "pool": f"not in pool {ask.pool}",
            "gpu_model": f"no {ask.gpu_model} GPUs",
            "labels": "not labelled " + ", ".join(f"{k}={v}" for k, v in ask.selector),
            "node_state": "not schedulable (draining, cordoned, offline or unhealthy)",
            "size": f"fewer than {need} {unit} in all",
            "free": f"fewer than {need} {unit} free now",
            "reservation": "held for a reservation this job would delay",
        }
        return [ConstraintCount(c, labels[c], n) for c, n in tally.items()], free - reserved

    def estimate(self, ask: Ask) -> datetime | None:
        """When `ask` could start at the earliest (`earliest_gang`'s time, from the per-class
        summary: the reserved nodes one by one, the others' sorted fit times)."""
        summary = self.summary(ask)
        times = [*summary.fit_times(ask.per_node)[: ask.nodes]]
        times += [t for n in summary.held if (t := self.earliest(n, ask)) is not None]
        if len(times) < ask.nodes:
            return None
        return sorted(times)[ask.nodes - 1]


class _ClassSummary:
    """The nodes of one placement class and kind (GPU or CPU) as the pass left them: how many
    fail each requirement, the sorted sizes and free amounts of the schedulable ones, the
    reserved ones, and (per amount asked) the sorted times the others could take it."""

    def __init__(self, cluster: _Cluster, ask: Ask) -> None:
        self.cluster, self.gpu = cluster, ask.gpu
        tally: dict[Constraint, int] = {}
        applies: list[Constraint] = []
        if ask.pool:
            applies.append("pool")
        if ask.gpu_model:
            applies.append("gpu_model")
        if ask.selector:
            applies.append("labels")
        for constraint in applies:
            tally[constraint] = 0
        for node in cluster.nodes:
            for constraint in misses(node, ask):
                tally[constraint] += 1
        self.misses = tally
        eligible = cluster.eligible(ask)
        usable = [n for n in eligible if n.schedulable]
        self.unschedulable = len(eligible) - len(usable)
        self.totals = sorted(n.total(ask.gpu) for n in usable)
        self.frees = sorted(n.free(ask.gpu) for n in usable)
        self.held = [
            n for n in usable if any(h.gpu == ask.gpu for h in cluster.holds.get(n.id, ()))
        ]
        held_ids = {n.id for n in self.held}
        self.unheld = [n for n in usable if n.id not in held_ids]
        self._fit_times: dict[int, list[datetime]] = {}

    def fit_times(self, need: int) -> list[datetime]:
        found = self._fit_times.get(need)
        if found is None:
            now = self.cluster.now
            found = sorted(
                t for n in self.unheld if (t := n.fit_time(self.gpu, need, now)) is not None
            )
            self._fit_times[need] = found
        return found


def _dominated(failed: list[tuple[int, int, int]], ask: Ask) -> bool:
    # Capacity only shrinks and reservations only grow within a pass: a job no smaller, no
    # shorter and as constrained as one that did not fit does not fit either.
    return any(
        n <= ask.nodes and k <= ask.per_node and t <= ask.max_run_time_s for n, k, t in failed
    )


def plan(
    *,
    nodes: Sequence[NodeState],
    asks: Iterable[Ask],
    now: datetime,
    usage: Usage | None = None,
    blocked: Callable[[Ask], QuotaVerdict | None] = lambda ask: None,
    charge: Callable[[Ask], None] = lambda ask: None,
    unrunnable: Callable[[Ask], str] = lambda ask: "",
) -> Plan:
    """Decide one pass: `nodes` as they are now (they are changed: the capacity the starts take
    is taken), `asks` the queued jobs in any order. `blocked` is the quota check of a job that
    could start, `charge` counts one that starts, `unrunnable` says why a job's stored request
    cannot become an attempt ("" when it can)."""
    usage = usage or {}
    cluster = _Cluster(nodes, now)
    ordered = sorted(asks, key=lambda a: order_key(a, usage))
    starts: list[Start] = []
    waits: list[Wait] = []
    reservations: list[Reservation] = []
    reserved_queues: set[str] = set()
    failed: dict[tuple[object, ...], list[tuple[int, int, int]]] = {}
    for ask in ordered:
        queue = cluster.queue(ask)
        if ask.not_before is not None and ask.not_before > now:
            waits.append(Wait(ask, "backoff", queue, estimated_start=ask.not_before))
            continue
        key = (*ask.placement_class, ask.gpu)
        shapes = failed.setdefault(key, [])
        chosen = None if _dominated(shapes, ask) else cluster.choose(ask)
        if chosen is None:
            shapes.append((ask.nodes, ask.per_node, ask.max_run_time_s))
            wait = Wait(ask, "capacity", queue)
            if queue not in reserved_queues:
                # Only the first job of a queue that is short of capacity reserves; a job the
                # quota holds back reserves nothing, so it never idles nodes it may not use.
                verdict = blocked(ask)
                if verdict is not None:
                    waits.append(Wait(ask, "quota", queue, quota=verdict))
                    continue
                reserved_queues.add(queue)
                wait.reservation = cluster.reserve(ask)
                if wait.reservation is not None:
                    reservations.append(wait.reservation)
                    wait.kind = "reservation"
            waits.append(wait)
            continue
        verdict = blocked(ask)
        if verdict is not None:
            waits.append(Wait(ask, "quota", queue, quota=verdict))
            continue
        problem = unrunnable(ask)
        if problem:
            waits.append(Wait(ask, "unrunnable", queue, detail=problem))
            continue
        starts.append(Start(ask, cluster.take(ask, chosen)))
        charge(ask)
    _explain(cluster, waits)
    return Plan(starts, waits, reservations)


def _explain(cluster: _Cluster, waits: list[Wait]) -> None:
    """Fill in each waiting job's position, the jobs ahead, the per-requirement node counts
    and its start estimate, on the capacity left after this pass's starts. Jobs of the same
    shape share the counts and the estimate, so a long queue costs little."""
    by_queue: dict[str, list[int]] = {}
    for wait in waits:
        by_queue.setdefault(wait.queue, []).append(wait.ask.id)
    seen: dict[str, int] = {}
    shapes: dict[tuple[object, ...], tuple[list[ConstraintCount], int, datetime | None]] = {}
    for wait in waits:
        ids = by_queue[wait.queue]
        index = seen.get(wait.queue, 0)
        seen[wait.queue] = index + 1
        wait.position, wait.queue_length = index + 1, len(ids)
        wait.ahead = ids[max(0, index - AHEAD_LISTED) : index]
        ask = wait.ask
        wait.nodes_total = len(cluster.nodes)
        shape = (*ask.placement_class, ask.gpu, ask.nodes, ask.per_node, ask.max_run_time_s)
        known = shapes.get(shape)
        if known is None:
            counts, fit = cluster.counts(ask)
            known = shapes[shape] = (counts, fit, cluster.estimate(ask))
        wait.constraints, wait.nodes_fit, estimate = known
        if wait.reservation is not None:
            wait.estimated_start = wait.reservation.start
        elif wait.kind == "quota" or wait.kind == "unrunnable":
            wait.estimated_start = None  # when the quota allows, or never
        elif wait.kind == "backoff" and estimate is not None and wait.estimated_start:
            wait.estimated_start = max(estimate, wait.estimated_start)
        else:
            wait.estimated_start = estimate
