"""Why a queued job waits: the record the scheduler pass stores on it (`Job.why_pending`), and
the sentence a person reads (`Job.state_reason`), both built from the planner's `Wait`.

The record is what the job page's panel, the API's `why_pending` field and `trainyard jobs why`
show. It names the jobs ahead by id only: who owns them and how large they are is looked up
when it is read, for the viewer (`portal.jobs.selectors.jobs_ahead_visible`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypedDict

from portal.jobs.planning import NodeState, Wait, misses
from portal.jobs.quotas import QuotaVerdict


class ConstraintRecord(TypedDict):
    constraint: str  # pool, gpu_model, labels, node_state, size, free, reservation
    label: str
    nodes: int  # how many nodes fail it


class QuotaRecord(TypedDict):
    scope: str
    holder: str
    limit: str
    allowed: float
    used: float
    asked: float
    headroom: float
    message: str


class ReservationRecord(TypedDict):
    start: str  # ISO 8601
    nodes: list[str]


class WhyPending(TypedDict):
    waiting_for: str  # unrunnable, backoff, quota, nodes, capacity, reservation
    queue: str  # the pool (or pools) whose queue it is in
    position: int  # 1: the next job of that queue
    queue_length: int
    ahead: list[int]  # ids of the nearest jobs ahead, nearest last
    nodes_total: int
    nodes_fit: int  # could take it now
    constraints: list[ConstraintRecord]
    quota: QuotaRecord | None  # the binding limit
    limits: list[QuotaRecord]  # every limit that applies, with its headroom
    reservation: ReservationRecord | None
    estimated_start: str | None  # ISO 8601; None: unknown (a quota, or no node ever fits)


def quota_record(verdict: QuotaVerdict) -> QuotaRecord:
    return {
        "scope": verdict.scope,
        "holder": verdict.holder,
        "limit": verdict.limit,
        "allowed": verdict.allowed,
        "used": verdict.used,
        "asked": verdict.asked,
        "headroom": verdict.headroom,
        "message": verdict.message(),
    }


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def waiting_for(wait: Wait) -> str:
    if wait.kind == "capacity" or wait.kind == "reservation":
        large = sum(c.nodes for c in wait.constraints if c.constraint in {"free", "reservation"})
        if large + wait.nodes_fit < wait.ask.nodes:
            return "nodes"
    return wait.kind


def record(wait: Wait, limits: Sequence[QuotaVerdict] = ()) -> WhyPending:
    return {
        "waiting_for": waiting_for(wait),
        "queue": wait.queue,
        "position": wait.position,
        "queue_length": wait.queue_length,
        "ahead": list(wait.ahead),
        "nodes_total": wait.nodes_total,
        "nodes_fit": wait.nodes_fit,
        "constraints": [
            {"constraint": c.constraint, "label": c.label, "nodes": c.nodes}
            for c in wait.constraints
        ],
        "quota": quota_record(wait.quota) if wait.quota else None,
        "limits": [quota_record(v) for v in limits],
        "reservation": (
            {"start": wait.reservation.start.isoformat(), "nodes": list(wait.reservation.nodes)}
            if wait.reservation
            else None
        ),
        "estimated_start": _iso(wait.estimated_start),
    }


def _amount(count: int, gpu: bool, *, free: bool = False) -> str:
    unit = ("GPU" if count == 1 else "GPUs") if gpu else ("CPU slot" if count == 1 else "CPU slots")
    return f"{count} {'free ' if free else ''}{unit}"


def _nodes_word(count: int) -> str:
    return "1 node" if count == 1 else f"{count} nodes"


def _clock(when: datetime) -> str:
    return f"{when:%Y-%m-%d %H:%M} UTC"


def position(wait: Wait) -> str:
    """The sentence `state_reason` ends with (but for a job that cannot start at all)."""
    if wait.kind == "unrunnable":
        return ""
    return f" Position {wait.position} of {wait.queue_length} in the queue."


def reason(wait: Wait, nodes: Sequence[NodeState]) -> str:
    """The sentence for `state_reason`: what it waits for, its reservation or start estimate,
    and its position."""
    return headline(wait, nodes) + position(wait)


def headline(wait: Wait, nodes: Sequence[NodeState]) -> str:
    """`reason` without the position: what it waits for, its reservation or estimate. Jobs of
    one shape that wait for the same thing share it, so a pass builds it once per shape."""
    ask = wait.ask
    if wait.kind == "unrunnable" or wait.kind == "backoff":
        return wait.detail
    if wait.kind == "quota" and wait.quota is not None:
        return f"Waiting for quota: {wait.quota.message()}."
    need = ask.per_node
    where = "".join(
        f" {part}"
        for part in (
            f"in pool {ask.pool}" if ask.pool else "",
            f"with {ask.gpu_model} GPUs" if ask.gpu_model else "",
            "labelled " + ", ".join(f"{k}={v}" for k, v in ask.selector) if ask.selector else "",
        )
        if part
    )
    wanted = f"needs {_nodes_word(ask.nodes)}{where} with {_amount(need, ask.gpu)}" + (
        " each" if ask.nodes > 1 else ""
    )
    counts = {c.constraint: c.nodes for c in wait.constraints}
    large = wait.nodes_fit + counts.get("free", 0) + counts.get("reservation", 0)
    if large < ask.nodes:
        blocked = [
            n
            for n in nodes
            if not n.schedulable and n.total(ask.gpu) >= need and not misses(n, ask)
        ]
        why = ", ".join(f"{n.name} is {n.status}" for n in blocked[:10])
        text = (
            f"Waiting for nodes: {wanted}; only {large} schedulable "
            f"{'node is' if large == 1 else 'nodes are'} that large"
            + (f" ({why})." if why else ".")
        )
    else:
        room = wait.nodes_fit + counts.get("reservation", 0)
        text = (
            f"Waiting for capacity: {wanted}; {room} of them "
            f"{'has' if room == 1 else 'have'} {_amount(need, ask.gpu, free=True)} now."
        )
    if wait.reservation is not None:
        text += (
            f" Reserved to start by {_clock(wait.reservation.start)} on "
            f"{', '.join(wait.reservation.nodes)}."
        )
    elif wait.estimated_start is not None:
        text += f" Estimated start: {_clock(wait.estimated_start)}."
    # What the pass does about it (the preemption it started for this job), first.
    return f"{wait.detail} {text}" if wait.detail else text
