"""The scheduler: place queued jobs on nodes, all-or-nothing, one pass at a time.

A pass runs in one transaction under a PostgreSQL advisory lock, so two control workers (or a
tick and a triggered pass) never place against the same free capacity. Free capacity is what
schedulable nodes offer minus what placements still hold (`placements_holding_capacity`).
Jobs are taken by
priority, then submission time; a job that does not fit is skipped (later, smaller jobs may
start) and its `state_reason` says why it waits and where it stands. See docs/scheduling.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import pydantic
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Max, Value, When
from django.utils import timezone

from portal.cluster.dispatch import node_task_send_on_commit
from portal.cluster.models import Node
from portal.cluster.selectors import placements_holding_capacity, schedulable_nodes
from portal.jobs import events, lifecycle, preemption, transitions
from portal.jobs.models import Attempt, Job, Placement
from portal.jobs.schemas import HyperparametersInvalid, JobRequest, model_spec_for
from workers.messages import (
    RUN_ATTEMPT_EXPIRES_S,
    RUN_ATTEMPT_TASK,
    AttemptSpec,
    PlacementSpec,
    TrainingSpec,
)

logger = logging.getLogger(__name__)

# Key of the transaction-scoped advisory lock that makes passes mutually exclusive
# (an arbitrary constant: "trainyard" in a 64-bit signed integer's range).
SCHEDULER_LOCK_KEY = 0x7472_6169_6E79_6172 & 0x7FFF_FFFF_FFFF_FFFF
# torchrun's c10d rendezvous ports on an attempt's first node.
MASTER_PORT_BASE = 29500
MASTER_PORT_RANGE = 2000


# ---- capacity --------------------------------------------------------------------------------


def constraint_misses(node: Node, job: Job) -> list[str]:
    """Which of the job's placement constraints `node` fails ([] if none): its pool, its GPU
    model, its labels. Capacity and the node's state are judged separately."""
    misses = []
    if job.pool and node.pool != job.pool:
        misses.append(f"pool {job.pool}")
    if job.gpu_model and job.gpu_model.casefold() not in node.gpu_model.casefold():
        misses.append(f"GPU model {job.gpu_model}")
    labels = node.labels if isinstance(node.labels, dict) else {}
    if any(labels.get(key) != value for key, value in job.node_selector.items()):
        misses.append("labels " + ", ".join(f"{k}={v}" for k, v in job.node_selector.items()))
    return misses


@dataclass
class _Capacity:
    """What one schedulable node has free during a pass: which GPUs and CPU slots (by index)
    no placement holds. Taking a share hands out the lowest free indices."""

    node: Node
    free_gpu_indices: list[int]
    free_cpu_indices: list[int]

    def free_for(self, job: Job) -> int:
        return len(self.free_gpu_indices if job.gpus_per_node else self.free_cpu_indices)

    def hold(self) -> None:
        """Keep what is free here from the rest of the pass (for a job whose preemption
        victims on this node are still stopping: docs/scheduling.md, Preemption)."""
        self.free_gpu_indices, self.free_cpu_indices = [], []

    def take(self, job: Job) -> tuple[list[int], list[int]]:
        """The GPU and CPU-slot indices of the job's share on this node, no longer free."""
        if job.gpus_per_node:
            taken, self.free_gpu_indices = (
                self.free_gpu_indices[: job.gpus_per_node],
                self.free_gpu_indices[job.gpus_per_node :],
            )
            return taken, []
        taken, self.free_cpu_indices = (
            self.free_cpu_indices[: job.procs_per_node],
            self.free_cpu_indices[job.procs_per_node :],
        )
        return [], taken


def node_offers(node: Node, job: Job) -> int:
    """The whole of a node in the job's pool: GPUs for a GPU job, CPU slots otherwise."""
    return node.gpu_count if job.gpus_per_node else node.cpu_slots


def _amount(count: int, job: Job, *, free: bool = False) -> str:
    unit = (
        ("GPU" if count == 1 else "GPUs")
        if job.gpus_per_node
        else ("CPU slot" if count == 1 else "CPU slots")
    )
    return f"{count} {'free ' if free else ''}{unit}"


def _nodes_word(count: int) -> str:
    return "1 node" if count == 1 else f"{count} nodes"


def _free(total: int, held_indices: set[int], held_count: int) -> list[int]:
    # A share recorded without indices still holds its count: never hand out more than the
    # node has left, whichever the indices say.
    free = [index for index in range(total) if index not in held_indices]
    return free[: max(0, total - held_count)]


def _free_capacity(nodes: Sequence[Node]) -> list[_Capacity]:
    """Each node's GPUs and CPU slots that no placement holds, in one query."""
    gpus: dict[int, set[int]] = {node.pk: set() for node in nodes}
    slots: dict[int, set[int]] = {node.pk: set() for node in nodes}
    counts: dict[int, list[int]] = {node.pk: [0, 0] for node in nodes}
    for node_id, gpu_indices, cpu_indices, slot_count, gpu_count in Placement.objects.filter(
        placements_holding_capacity(), node__in=[node.pk for node in nodes]
    ).values_list("node_id", "gpu_indices", "cpu_indices", "slots", "gpus"):
        gpus[node_id].update(gpu_indices)
        slots[node_id].update(cpu_indices)
        counts[node_id][0] += slot_count
        counts[node_id][1] += gpu_count
    return [
        _Capacity(
            node=node,
            free_gpu_indices=_free(node.gpu_count, gpus[node.pk], counts[node.pk][1]),
            free_cpu_indices=_free(node.cpu_slots, slots[node.pk], counts[node.pk][0]),
        )
        for node in nodes
    ]


def _choose(job: Job, capacity: list[_Capacity]) -> list[_Capacity] | None:
    """`job.nodes` distinct nodes that meet its constraints and have room, tightest fit
    first, or None (gang: all or none)."""
    need = job.slots_per_node
    fits = [c for c in capacity if c.free_for(job) >= need and not constraint_misses(c.node, job)]
    if len(fits) < job.nodes:
        return None
    fits.sort(key=lambda c: (c.free_for(job) - need, c.node.name))
    return fits[: job.nodes]


def _wait_reason(
    job: Job, capacity: list[_Capacity], unschedulable: list[Node], position: int, queued: int
) -> str:
    need = job.slots_per_node
    large = [
        c
        for c in capacity
        if node_offers(c.node, job) >= need and not constraint_misses(c.node, job)
    ]
    where = "".join(
        f" {part}"
        for part in (
            f"in pool {job.pool}" if job.pool else "",
            f"with {job.gpu_model} GPUs" if job.gpu_model else "",
            "labelled " + ", ".join(f"{k}={v}" for k, v in job.node_selector.items())
            if job.node_selector
            else "",
        )
        if part
    )
    ask = f"needs {_nodes_word(job.nodes)}{where} with {_amount(need, job)}" + (
        " each" if job.nodes > 1 else ""
    )
    if len(large) < job.nodes:
        blocked = [
            node
            for node in unschedulable
            if node_offers(node, job) >= need and not constraint_misses(node, job)
        ]
        why = ", ".join(f"{node.name} is {node.status}" for node in blocked)
        reason = (
            f"Waiting for nodes: {ask}; only {len(large)} schedulable "
            f"{'node is' if len(large) == 1 else 'nodes are'} that large"
            + (f" ({why})." if why else ".")
        )
    else:
        room = sum(1 for c in capacity if c.free_for(job) >= need)
        reason = (
            f"Waiting for capacity: {ask}; {room} of them "
            f"{'has' if room == 1 else 'have'} {_amount(need, job, free=True)} now."
        )
    return f"{reason} Position {position} of {queued} in the queue."


# ---- the attempt spec ------------------------------------------------------------------------


def checkpoint_dir(job: Job) -> Path:
    """The job's checkpoints: each attempt writes only under `attempt-<id>/` there
    (`epoch-<n>.pt`, `latest.pt`, `best.pt`, `export/`) and resumes from the newest earlier
    `latest.pt` (`workers.train.checkpoint`), so a requeued attempt resumes and an attempt
    given up on cannot overwrite its successor's."""
    return Path(settings.TRAINYARD_STORAGE_ROOT).resolve() / "checkpoints" / f"job-{job.uid}"


def attempt_spec(
    *,
    job: Job,
    attempt: Attempt,
    node: Node,
    node_rank: int,
    gpu_indices: Sequence[int],
    cpu_indices: Sequence[int],
) -> AttemptSpec:
    """The self-contained message a node needs to run its share of `attempt`."""
    request = JobRequest.model_validate(job.spec)
    return AttemptSpec(
        job_id=job.pk,
        attempt_id=attempt.pk,
        job_name=job.name,
        node_name=node.name,
        # The version the job pinned, with the statistics its validation computed.
        dataset=job.dataset.node_spec(),
        # The stored hyperparameters are already merged over the model's defaults and valid.
        model=model_spec_for(job.model, request.hyperparameters),
        training=TrainingSpec(**request.training.model_dump()),
        placement=PlacementSpec(
            nnodes=job.nodes,
            node_rank=node_rank,
            nproc_per_node=job.slots_per_node,
            device="cuda" if job.gpus_per_node else "cpu",
            master_addr=attempt.master_addr,
            master_port=attempt.master_port,
            gpu_indices=tuple(gpu_indices),
            cpu_indices=tuple(cpu_indices),
        ),
        checkpoint_dir=str(checkpoint_dir(job)),
    )


def _master_port(job: Job, number: int, address: str, used: set[tuple[str, int]]) -> int:
    # Deterministic per attempt, so a retry after a port clash moves to another port, and
    # clear of the ports other active attempts already use on the same first node.
    start = (job.pk * 7919 + number) % MASTER_PORT_RANGE
    for offset in range(MASTER_PORT_RANGE):
        port = MASTER_PORT_BASE + (start + offset) % MASTER_PORT_RANGE
        if (address, port) not in used:
            used.add((address, port))
            return port
    raise RuntimeError(f"no free rendezvous port left on {address}")


def _place(
    job: Job,
    chosen: list[_Capacity],
    number: int,
    ports_in_use: set[tuple[str, int]],
) -> Attempt | None:
    """Claim `job` and record its attempt on `chosen`; None if it left the queue meanwhile."""
    move = lifecycle.on_place(state=job.state, nodes=[c.node.name for c in chosen], number=number)
    # The pass announces every placement at once, after the loop.
    if move is None or not transitions.job_move(job, move, announce=False):
        return None  # cancelled between our read and our claim
    first = chosen[0].node
    address = first.address or first.hostname or first.name
    attempt = Attempt.objects.create(
        job=job,
        number=number,
        master_addr=address,
        master_port=_master_port(job, number, address, ports_in_use),
    )
    shares = [c.take(job) for c in chosen]
    Placement.objects.bulk_create(
        [
            Placement(
                attempt=attempt,
                node=c.node,
                node_rank=rank,
                # A GPU job holds GPUs; CPU slots are the pool of CPU jobs (docs/scheduling.md).
                slots=0 if job.gpus_per_node else job.procs_per_node,
                gpus=job.gpus_per_node,
                gpu_indices=gpu_indices,
                cpu_indices=cpu_indices,
            )
            for rank, (c, (gpu_indices, cpu_indices)) in enumerate(zip(chosen, shares, strict=True))
        ]
    )
    for rank, (c, (gpu_indices, cpu_indices)) in enumerate(zip(chosen, shares, strict=True)):
        spec = attempt_spec(
            job=job,
            attempt=attempt,
            node=c.node,
            node_rank=rank,
            gpu_indices=gpu_indices,
            cpu_indices=cpu_indices,
        )
        # A run message that arrives after the portal gave up on the attempt would only
        # start work that is cancelled again; the heartbeat reconciliation loses the attempt.
        node_task_send_on_commit(
            task=RUN_ATTEMPT_TASK,
            args=[spec.to_json()],
            node_name=c.node.name,
            expires_s=RUN_ATTEMPT_EXPIRES_S,
        )
    return attempt


def _try_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [SCHEDULER_LOCK_KEY])
        row = cursor.fetchone()
    return bool(row and row[0])


def schedule_pass() -> int:
    """Place as many queued jobs as fit; return how many were placed (0 if another pass runs)."""
    with transaction.atomic():
        if not _try_lock():
            return 0
        # Locked so a heartbeat cannot change a node's capacity under our decisions.
        nodes = list(Node.objects.select_for_update().filter(schedulable_nodes()).order_by("name"))
        capacity = _free_capacity(nodes)
        queued = list(
            Job.objects.filter(state=Job.State.QUEUED)
            .select_related("dataset", "model")
            .order_by("-priority", "created_at", "id")
        )
        if not queued:
            return 0
        # Each queued job's latest attempt: (number, id), for a requeued job's next attempt,
        # and when it ended, for the requeue backoff.
        rows = list(
            Attempt.objects.filter(job__in=[job.pk for job in queued])
            .values("job_id")
            .annotate(number=Max("number"), attempt_id=Max("id"), ended=Max("finished_at"))
        )
        latest = {row["job_id"]: (row["number"], row["attempt_id"]) for row in rows}
        ended: dict[int, datetime] = {row["job_id"]: row["ended"] for row in rows if row["ended"]}
        now = timezone.now()
        # An ended attempt's rank 0 may still hold its rendezvous port until it stops.
        ports_in_use = set(
            Attempt.objects.filter(placements_holding_capacity("placements__"))
            .values_list("master_addr", "master_port")
            .distinct()
        )
        placed: list[tuple[Job, Attempt]] = []
        waiting: list[Job] = []
        unrunnable: dict[int, str] = {}
        backing_off: dict[int, str] = {}
        preempting: dict[int, str] = {}
        preempter = preemption.Preempter(now=now)
        for job in queued:
            problem = _spec_problem(job)
            if problem:
                # One bad row must not stop the whole queue: skip it and say why.
                logger.error("job %s cannot be placed: %s", job.pk, problem)
                unrunnable[job.pk] = problem
                waiting.append(job)
                continue
            resume_at = _not_before(job, ended.get(job.pk))
            if resume_at is not None and resume_at > now:
                backing_off[job.pk] = (
                    f"Requeued after attempt {latest[job.pk][0]}; the next attempt starts no "
                    f"sooner than {resume_at:%H:%M:%S} UTC "
                    f"(backoff {requeue_backoff_s(job.restarts):g}s)."
                )
                waiting.append(job)
                continue
            chosen = _choose(job, capacity)
            if chosen is None:
                rooms = [c for c in capacity if not constraint_misses(c.node, job)]
                if note := preempter.preempt_for(job, rooms):
                    preempting[job.pk] = note
                waiting.append(job)
                continue
            number = latest.get(job.pk, (0, 0))[0] + 1
            attempt = _place(job, chosen, number, ports_in_use)
            if attempt is not None:
                placed.append((job, attempt))
        _explain_waiting(waiting, capacity, latest, {**unrunnable, **backing_off, **preempting})
        events.job_states_changed(
            (events.job_state_event(job, attempt_id=attempt.pk), job.owner_id)
            for job, attempt in placed
        )
    if placed:
        logger.info("scheduler placed %d of %d queued jobs", len(placed), len(queued))
    return len(placed)


def requeue_backoff_s(restarts: int) -> float:
    """How long a job requeued `restarts` times waits after its last attempt ended before the
    next one is placed: `TRAINYARD_REQUEUE_BACKOFF_S`, doubled for each further restart, at
    most `TRAINYARD_REQUEUE_BACKOFF_MAX_S`. A crash loop (a bad node, a port clash) then
    costs little, and a node that just went away has time to come back."""
    if restarts < 1:
        return 0.0
    base = settings.TRAINYARD_REQUEUE_BACKOFF_S
    return float(min(base * 2 ** (restarts - 1), settings.TRAINYARD_REQUEUE_BACKOFF_MAX_S))


def _not_before(job: Job, last_ended: datetime | None) -> datetime | None:
    backoff = requeue_backoff_s(job.restarts)
    if not backoff or last_ended is None:
        return None
    return last_ended + timedelta(seconds=backoff)


def _spec_problem(job: Job) -> str:
    """Why the job's stored request cannot become an attempt spec ("" if it can)."""
    try:
        request = JobRequest.model_validate(job.spec)
    except pydantic.ValidationError as exc:
        return (
            f"Cannot start: its stored request is no longer valid ({exc.error_count()} "
            "errors). Cancel it and submit it again."
        )
    try:
        model_spec_for(job.model, request.hyperparameters)
    except HyperparametersInvalid as exc:
        wrong = "; ".join(f"{key}: {' '.join(messages)}" for key, messages in exc.errors.items())
        return f"Cannot start: its hyperparameters are no longer valid ({wrong})."
    try:
        job.dataset.node_spec()
    except (msgspec.ValidationError, TypeError, ValueError) as exc:
        return f"Cannot start: dataset {job.dataset} cannot be read ({exc})."
    return ""


def _explain_waiting(
    waiting: list[Job],
    capacity: list[_Capacity],
    latest: dict[int, tuple[int, int]],
    unrunnable: dict[int, str],
) -> None:
    """Write each waiting job's reason, where it changed, in one conditional update."""
    if not waiting:
        return
    schedulable = {c.node.pk for c in capacity}
    unschedulable = list(Node.objects.exclude(pk__in=schedulable).order_by("name"))
    changed: dict[int, str] = {}
    for position, job in enumerate(waiting, start=1):
        reason = unrunnable.get(job.pk) or _wait_reason(
            job, capacity, unschedulable, position, len(waiting)
        )
        if reason != job.state_reason:
            changed[job.pk] = reason
            job.state_reason = reason
    if not changed:
        return
    # Conditional on QUEUED: a job cancelled meanwhile keeps its own reason.
    Job.objects.filter(pk__in=changed, state=Job.State.QUEUED).update(
        state_reason=Case(*(When(pk=pk, then=Value(text)) for pk, text in changed.items()))
    )
    events.job_states_changed(
        (
            events.job_state_event(job, attempt_id=latest[job.pk][1] if job.pk in latest else None),
            job.owner_id,
        )
        for job in waiting
        if job.pk in changed
    )
