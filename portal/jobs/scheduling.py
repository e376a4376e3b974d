"""The scheduler pass: load the cluster and the queue, let the planner decide
(`portal.jobs.planning`), and perform the decision: claim and place the jobs that start, and
write each waiting job's why-pending record and reason where they changed.

A pass runs in one transaction under a PostgreSQL advisory lock, so two control workers (or a
tick and a triggered pass) never place against the same free capacity. Free capacity is what
schedulable nodes offer minus what placements still hold (`placements_holding_capacity`).
Every write is batched: one claim, one insert of attempts and one of placements, one update of
the waiting jobs' records, whatever the queue's length. See docs/scheduling.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import pydantic
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from portal.cluster.dispatch import NodeTask, node_tasks_send_on_commit
from portal.cluster.models import Node
from portal.cluster.selectors import placements_holding_capacity, schedulable_nodes
from portal.jobs import events, lifecycle, preemption, transitions
from portal.jobs.fair_share import decayed_usage
from portal.jobs.models import Attempt, Job, Placement
from portal.jobs.planning import (
    Ask,
    NodeState,
    Plan,
    Release,
    Start,
    Wait,
    misses,
    order_key,
    plan,
)
from portal.jobs.quotas import Admission, QuotaLedger
from portal.jobs.schemas import HyperparametersInvalid, JobRequest, model_spec_for
from portal.jobs.why_pending import WhyPending, headline, position, reason, record
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
# Full rows (request, dataset, model) of the jobs about to start are read this many at a time,
# in queue order, so a pass that starts many jobs reads them in a few queries.
_FULL_ROWS_CHUNK = 64


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


# ---- the cluster and the queue as the planner sees them -------------------------------------


def _free(total: int, held_indices: set[int], held_count: int) -> list[int]:
    # A share recorded without indices still holds its count: never hand out more than the
    # node has left, whichever the indices say.
    free = [index for index in range(total) if index not in held_indices]
    return free[: max(0, total - held_count)]


def cluster_state(now: datetime, *, lock: bool) -> list[NodeState]:
    """Every node with its free GPU and CPU-slot indices and when the held ones come back, in
    three queries. `lock`: the schedulable nodes' rows are locked, so a heartbeat cannot change
    a node's capacity under the pass's decisions."""
    if lock:
        list(Node.objects.select_for_update().filter(schedulable_nodes()).values_list("pk"))
    # Not the health document a heartbeat writes: the pass needs none of it.
    nodes = list(Node.objects.defer("health").order_by("name"))
    schedulable = set(Node.objects.filter(schedulable_nodes()).values_list("pk", flat=True))
    held_gpus: dict[int, set[int]] = {node.pk: set() for node in nodes}
    held_slots: dict[int, set[int]] = {node.pk: set() for node in nodes}
    counts: dict[int, list[int]] = {node.pk: [0, 0] for node in nodes}
    releases: dict[int, list[Release]] = {node.pk: [] for node in nodes}
    for (
        node_id,
        gpu_indices,
        cpu_indices,
        slot_count,
        gpu_count,
        attempt_state,
        started,
        created,
        max_run_time_s,
        preempted_at,
    ) in Placement.objects.filter(placements_holding_capacity()).values_list(
        "node_id",
        "gpu_indices",
        "cpu_indices",
        "slots",
        "gpus",
        "attempt__state",
        "attempt__started_at",
        "attempt__created_at",
        "attempt__job__max_run_time_s",
        "attempt__preempted_at",
    ):
        held_gpus[node_id].update(gpu_indices)
        held_slots[node_id].update(cpu_indices)
        counts[node_id][0] += slot_count
        counts[node_id][1] += gpu_count
        # An active attempt is stopped at its maximum run time, a preempted one within the
        # grace (so the job it was preempted for reserves the room it frees); an ended one's
        # ranks are being stopped now.
        ends = (
            (started or created) + timedelta(seconds=max_run_time_s)
            if attempt_state in Attempt.ACTIVE
            else now
        )
        if preempted_at is not None and attempt_state in Attempt.ACTIVE:
            ends = min(ends, preempted_at + timedelta(seconds=settings.TRAINYARD_PREEMPT_GRACE_S))
        releases[node_id].append(Release(ends, gpus=gpu_count, slots=slot_count))
    return [
        NodeState(
            id=node.pk,
            name=node.name,
            pool=node.pool,
            gpu_model=node.gpu_model,
            labels=node.labels if isinstance(node.labels, dict) else {},
            gpu_count=node.gpu_count,
            cpu_slots=node.cpu_slots,
            free_gpus=_free(node.gpu_count, held_gpus[node.pk], counts[node.pk][1]),
            free_slots=_free(node.cpu_slots, held_slots[node.pk], counts[node.pk][0]),
            schedulable=node.pk in schedulable,
            status=node.status,
            releases=sorted(releases[node.pk], key=lambda r: r.at),
            address=node.address or node.hostname or node.name,
        )
        for node in nodes
    ]


_QUEUED_FIELDS = (
    "id",
    "owner_id",
    "team_id",
    "name",
    "priority",
    "created_at",
    "nodes",
    "gpus_per_node",
    "procs_per_node",
    "pool",
    "gpu_model",
    "node_selector",
    "max_run_time_s",
    "preemptible",
    "restarts",
    "preemptions",
    "state_reason",
    "why_pending_digest",
)


@dataclass
class QueuedRow:
    """What the pass reads of a queued job (never its request: only the starts need it)."""

    id: int
    owner_id: int
    team_id: int | None
    name: str
    priority: int
    created_at: datetime
    nodes: int
    gpus_per_node: int
    procs_per_node: int
    pool: str
    gpu_model: str
    node_selector: dict[str, str]
    max_run_time_s: int
    preemptible: bool
    restarts: int
    preemptions: int
    state_reason: str
    why_pending_digest: str

    def as_job(self) -> Job:
        """An unsaved stand-in for the `Admission`, which judges a job by its owner, team and
        size; built only for the jobs it is asked about."""
        return Job(
            pk=self.id,
            owner_id=self.owner_id,
            team_id=self.team_id,
            name=self.name,
            priority=self.priority,
            created_at=self.created_at,
            nodes=self.nodes,
            gpus_per_node=self.gpus_per_node,
            procs_per_node=self.procs_per_node,
            pool=self.pool,
            gpu_model=self.gpu_model,
            node_selector=self.node_selector,
            max_run_time_s=self.max_run_time_s,
            preemptible=self.preemptible,
            restarts=self.restarts,
            state=Job.State.QUEUED,
        )


def ask_for(row: QueuedRow | Job, *, not_before: datetime | None = None) -> Ask:
    selector = row.node_selector if isinstance(row.node_selector, dict) else {}
    return Ask(
        id=row.id,
        owner=row.owner_id,
        priority=row.priority,
        created_at=row.created_at,
        nodes=row.nodes,
        per_node=row.gpus_per_node or row.procs_per_node,
        gpu=bool(row.gpus_per_node),
        max_run_time_s=row.max_run_time_s,
        pool=row.pool,
        gpu_model=row.gpu_model,
        selector=tuple(sorted((str(k), str(v)) for k, v in selector.items())),
        not_before=not_before,
    )


@dataclass
class Queue:
    rows: dict[int, QueuedRow]
    asks: list[Ask]
    # A requeued job's latest attempt: (number, id), and the sentence for its backoff.
    latest: dict[int, tuple[int, int]]
    backing_off: dict[int, str]


def queue_state(now: datetime) -> Queue:
    """The queued jobs, in two queries (the second only for requeued jobs)."""
    rows = {
        values[0]: QueuedRow(*values)
        for values in Job.objects.filter(state=Job.State.QUEUED).values_list(*_QUEUED_FIELDS)
    }
    # Requeued after a failure (a restart) or a preemption (which uses no restart): its next
    # attempt's number follows its latest.
    requeued = [row.id for row in rows.values() if row.restarts or row.preemptions]
    latest: dict[int, tuple[int, int]] = {}
    not_before: dict[int, datetime] = {}
    backing_off: dict[int, str] = {}
    if requeued:
        for found in (
            Attempt.objects.filter(job__in=requeued)
            .values("job_id")
            .annotate(number=Max("number"), attempt_id=Max("id"), ended=Max("finished_at"))
        ):
            job_id = found["job_id"]
            latest[job_id] = (found["number"], found["attempt_id"])
            resume_at = _not_before(rows[job_id].restarts, found["ended"])
            if resume_at is not None and resume_at > now:
                not_before[job_id] = resume_at
                backing_off[job_id] = (
                    f"Requeued after attempt {found['number']}; the next attempt starts no "
                    f"sooner than {resume_at:%H:%M:%S} UTC "
                    f"(backoff {requeue_backoff_s(rows[job_id].restarts):g}s)."
                )
    asks = [ask_for(row, not_before=not_before.get(row.id)) for row in rows.values()]
    return Queue(rows, asks, latest, backing_off)


class _FullJobs:
    """The full rows of the jobs that start, read in chunks in queue order on first need."""

    def __init__(self, ordered_ids: Sequence[int]) -> None:
        self.order = list(ordered_ids)
        self.index = {job_id: i for i, job_id in enumerate(self.order)}
        self.loaded: dict[int, Job] = {}

    def get(self, job_id: int) -> Job:
        if job_id not in self.loaded:
            at = self.index[job_id]
            chunk = [i for i in self.order[at : at + _FULL_ROWS_CHUNK] if i not in self.loaded]
            for job in Job.objects.filter(pk__in=chunk).select_related("dataset", "model"):
                self.loaded[job.pk] = job
        return self.loaded[job_id]


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
    node: Node | NodeState,
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


def _place_all(
    starts: Sequence[Start], jobs: _FullJobs, latest: dict[int, tuple[int, int]]
) -> list[tuple[Job, Attempt]]:
    """Claim the starting jobs (those still queued), then record their attempts and placements
    in one insert each and send each node its spec after the commit."""
    moves = []
    for start in starts:
        job = jobs.get(start.ask.id)
        number = latest.get(job.pk, (0, 0))[0] + 1
        move = lifecycle.on_place(
            state=job.state, nodes=[share.node.name for share in start.shares], number=number
        )
        if move is not None:
            moves.append((job, move))
    # The pass announces every placement at once, below.
    claimed = transitions.jobs_move(moves, announce=False)
    if not claimed:
        return []
    by_id = {start.ask.id: start for start in starts}
    # An ended attempt's rank 0 may still hold its rendezvous port until it stops.
    ports_in_use = set(
        Attempt.objects.filter(placements_holding_capacity("placements__"))
        .values_list("master_addr", "master_port")
        .distinct()
    )
    attempts = []
    for job in claimed:
        number = latest.get(job.pk, (0, 0))[0] + 1
        first = by_id[job.pk].shares[0].node
        address = first.address
        attempts.append(
            Attempt(
                job=job,
                number=number,
                master_addr=address,
                master_port=_master_port(job, number, address, ports_in_use),
            )
        )
    Attempt.objects.bulk_create(attempts)
    Placement.objects.bulk_create(
        [
            Placement(
                attempt=attempt,
                node_id=share.node.id,
                node_rank=rank,
                # A GPU job holds GPUs; CPU slots are the pool of CPU jobs (docs/scheduling.md).
                slots=0 if job.gpus_per_node else job.procs_per_node,
                gpus=job.gpus_per_node,
                gpu_indices=share.gpu_indices,
                cpu_indices=share.cpu_indices,
            )
            for job, attempt in zip(claimed, attempts, strict=True)
            for rank, share in enumerate(by_id[job.pk].shares)
        ]
    )
    messages: list[NodeTask] = []
    for job, attempt in zip(claimed, attempts, strict=True):
        # One spec per job, copied per node with that node's share: validating the request
        # and building the model spec once keeps a large pass cheap.
        first_share = by_id[job.pk].shares[0]
        base = attempt_spec(
            job=job,
            attempt=attempt,
            node=first_share.node,
            node_rank=0,
            gpu_indices=first_share.gpu_indices,
            cpu_indices=first_share.cpu_indices,
        )
        for rank, share in enumerate(by_id[job.pk].shares):
            spec = msgspec.structs.replace(
                base,
                node_name=share.node.name,
                placement=msgspec.structs.replace(
                    base.placement,
                    node_rank=rank,
                    gpu_indices=tuple(share.gpu_indices),
                    cpu_indices=tuple(share.cpu_indices),
                ),
            )
            # A run message that arrives after the portal gave up on the attempt would only
            # start work that is cancelled again; the heartbeat reconciliation loses it.
            messages.append(
                NodeTask(
                    task=RUN_ATTEMPT_TASK,
                    args=[spec.to_json()],
                    node_name=share.node.name,
                    expires_s=RUN_ATTEMPT_EXPIRES_S,
                    label=f"attempt {attempt.pk} rank {rank}",
                )
            )
    node_tasks_send_on_commit(messages)
    return list(zip(claimed, attempts, strict=True))


def _try_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [SCHEDULER_LOCK_KEY])
        row = cursor.fetchone()
    return bool(row and row[0])


def _planned(
    nodes: list[NodeState],
    queue: Queue,
    now: datetime,
    admission: Admission,
    unrunnable: dict[int, str] | None = None,
    extra: Iterable[tuple[Ask, Job]] = (),
) -> tuple[Plan, _FullJobs]:
    """The planner's decision over the loaded state (and `extra` hypothetical jobs)."""
    usage = decayed_usage(now)
    hypothetical = dict((ask.id, job) for ask, job in extra)
    asks = [*queue.asks, *(ask for ask, _ in extra)]
    jobs = _FullJobs([ask.id for ask in sorted(asks, key=lambda a: order_key(a, usage))])
    problems = dict(unrunnable or {})

    def as_job(ask: Ask) -> Job:
        return hypothetical.get(ask.id) or queue.rows[ask.id].as_job()

    def unrunnable_now(ask: Ask) -> str:
        if ask.id in hypothetical:
            return ""  # validated just now
        if ask.id not in problems:
            problems[ask.id] = _spec_problem(jobs.get(ask.id))
        return problems[ask.id]

    decided = plan(
        nodes=nodes,
        asks=asks,
        now=now,
        usage=usage,
        blocked=lambda ask: admission.blocked(as_job(ask)),
        charge=lambda ask: admission.charge(as_job(ask)),
        unrunnable=unrunnable_now,
    )
    for wait in decided.waits:
        if wait.kind == "backoff":
            wait.detail = queue.backing_off.get(wait.ask.id, "")
        elif wait.kind == "unrunnable":
            # One bad row must not stop the whole queue: it is skipped and says why.
            logger.error("job %s cannot be placed: %s", wait.ask.id, wait.detail)
    return decided, jobs


def schedule_pass(*, admission: Admission | None = None) -> int:
    """Place as many queued jobs as the plan starts; return how many were placed (0 if another
    pass runs). `admission` judges quotas (default: the quota ledger of the queued jobs'
    owners and teams, `QuotaLedger`)."""
    with transaction.atomic():
        if not _try_lock():
            return 0
        now = timezone.now()
        nodes = cluster_state(now, lock=True)
        queue = queue_state(now)
        if not queue.asks:
            return 0
        # Quota rows locked for the pass; a job over a limit waits, later ones still start.
        admission = admission or QuotaLedger.load(list(queue.rows.values()), now=now)
        decided, jobs = _planned(nodes, queue, now, admission)
        placed = _place_all(decided.starts, jobs, queue.latest)
        _preempt_for_waiting(decided.waits, nodes, queue, now)
        _explain_waiting(decided.waits, nodes, queue, admission)
        events.job_states_changed(
            (events.job_state_event(job, attempt_id=attempt.pk), job.owner_id)
            for job, attempt in placed
        )
    if placed:
        logger.info("scheduler placed %d of %d queued jobs", len(placed), len(queue.asks))
    return len(placed)


@dataclass
class _Room:
    """A schedulable node's room left after the plan's starts, as `preemption` sees it."""

    state: NodeState

    @property
    def node_id(self) -> int:
        return self.state.id

    def free_for(self, job: Job) -> int:
        return self.state.free(bool(job.gpus_per_node))

    def hold(self) -> None:
        self.state.free_gpus, self.state.free_slots = [], []


def _preempt_for_waiting(
    waits: Sequence[Wait], nodes: Sequence[NodeState], queue: Queue, now: datetime
) -> None:
    """Let each job that waits for capacity (in queue order) preempt lower-priority,
    preemptible attempts where that lets it start (`portal.jobs.preemption`); its wait says
    so. A job held back by a quota, its backoff or nodes no victim could free preempts no one.
    The room its victims free is kept for it by the reservation the next pass gives it: their
    releases are due within the grace (`cluster_state`)."""
    preempter: preemption.Preempter | None = None
    # The schedulable nodes of each placement class, worked out once: a room is a view of its
    # node's state, so the rooms one job holds are held for every later job too.
    rooms_of: dict[tuple[object, ...], list[_Room]] = {}
    for wait in waits:
        if wait.kind not in ("capacity", "reservation"):
            continue
        preempter = preempter or preemption.Preempter(now=now)
        ask = wait.ask
        if not preempter.may_act_for(ask.id, ask.priority):
            continue
        rooms = rooms_of.get(ask.placement_class)
        if rooms is None:
            rooms = rooms_of[ask.placement_class] = [
                _Room(n) for n in nodes if n.schedulable and not misses(n, ask)
            ]
        if note := preempter.preempt_for(queue.rows[ask.id].as_job(), rooms):
            wait.detail = note


def wait_record(
    wait: Wait, nodes: Sequence[NodeState], admission: Admission, job: Callable[[], Job]
) -> tuple[WhyPending, str]:
    """The why-pending record and the reason sentence of one waiting job. The headroom of
    every limit is asked only about a job a quota holds back."""
    limits = admission.limits(job()) if wait.kind == "quota" else []
    return record(wait, limits), reason(wait, nodes)


def _digest(*parts: object) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()


def _explain_waiting(
    waits: Sequence[Wait], nodes: Sequence[NodeState], queue: Queue, admission: Admission
) -> None:
    """Write each waiting job's record and reason where they changed, in one update
    conditional on the job still being queued (a job cancelled meanwhile keeps its own).

    A long queue is cheap: what jobs of one shape share (the node counts, the estimate, the
    sentence) is built once, each job's record is compared by digest, and only a changed one
    is built and written. A record whose only change is the position (the queue moved) is
    rewritten within `TRAINYARD_WHY_PENDING_WRITES` per pass, nearest the head first; the rest
    catch up in the next passes, so a pass over a long queue stays short.

    Live, the pass sends one `job.queue_moved` after the commit, however many records it
    rewrote: the pages of queued jobs read their own reason from PostgreSQL
    (`portal.jobs.consumers.JobConsumer`), so the cost follows the viewers, not the queue.
    """
    budget = settings.TRAINYARD_WHY_PENDING_WRITES
    headlines: dict[tuple[object, ...], tuple[str, str]] = {}
    # The record of each shape but its position fields (a quota's limits are per job).
    templates: dict[tuple[object, ...], WhyPending] = {}
    changed: list[dict[str, object]] = []
    for wait in waits:
        row = queue.rows[wait.ask.id]
        ask = wait.ask
        shape = (
            wait.kind,
            *ask.placement_class,
            ask.gpu,
            ask.nodes,
            ask.per_node,
            ask.max_run_time_s,
            wait.estimated_start,
            wait.reservation,
            wait.quota,
            wait.detail,
        )
        known = headlines.get(shape)
        if known is None:
            shared = (wait.constraints, wait.nodes_total, wait.nodes_fit)
            known = headlines[shape] = (headline(wait, nodes), _digest(shape, shared))
        line, shape_digest = known
        text = line + position(wait)
        digest = _digest(shape_digest, wait.queue, wait.position, wait.queue_length, wait.ahead)
        if digest == row.why_pending_digest and text == row.state_reason:
            continue
        if row.state_reason.startswith(line) and len(changed) >= budget:
            # Only its position or the jobs ahead moved: it catches up in a later pass.
            continue
        if wait.kind == "quota":
            why = record(wait, admission.limits(row.as_job()))
        else:
            key = (shape, wait.queue, wait.nodes_total, wait.nodes_fit, *wait.constraints)
            template = templates.get(key)
            if template is None:
                template = templates[key] = record(wait)
            why = {
                **template,
                "position": wait.position,
                "queue_length": wait.queue_length,
                "ahead": list(wait.ahead),
            }
        changed.append({"id": row.id, "reason": text, "why": why, "digest": digest})
    if not changed:
        return
    # One statement for any number of rows (the table name is the model's; every value is in
    # one JSON parameter): an UPDATE per job, or a CASE over thousands, would not be.
    sql = (
        f"UPDATE {Job._meta.db_table} AS j SET state_reason = v.reason, "  # noqa: S608
        "why_pending = v.why, why_pending_digest = v.digest "
        "FROM jsonb_to_recordset(%s::jsonb) AS v(id bigint, reason text, why jsonb, digest text) "
        "WHERE j.id = v.id AND j.state = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [json.dumps(changed), Job.State.QUEUED])
    events.job_queue_moved()


# ---- the plan preview ----------------------------------------------------------------------

PREVIEW_ID = -1  # the hypothetical job's id in the plan


@dataclass(frozen=True)
class Preview:
    """What the scheduler would do with a job submitted now."""

    would_start: bool
    nodes: tuple[str, ...]  # where it would start
    why_pending: WhyPending | None
    reason: str
    estimated_start: datetime | None


def plan_preview(*, job: Job, admission: Admission | None = None) -> Preview:
    """Plan the current queue plus the unsaved `job` (as submitted now) with the pass's own
    code, locking nothing and writing nothing: the transaction is rolled back."""
    with transaction.atomic():
        now = timezone.now()
        job.pk = PREVIEW_ID
        job.created_at = now
        nodes = cluster_state(now, lock=False)
        queue = queue_state(now)
        admission = admission or QuotaLedger.load([*queue.rows.values(), job], now=now, lock=False)
        decided, _ = _planned(nodes, queue, now, admission, extra=[(ask_for(job), job)])
        transaction.set_rollback(True)
    job.pk = None
    for start in decided.starts:
        if start.ask.id == PREVIEW_ID:
            names = tuple(share.node.name for share in start.shares)
            return Preview(True, names, None, f"Would start now on {', '.join(names)}.", now)
    wait = next(w for w in decided.waits if w.ask.id == PREVIEW_ID)
    why, text = wait_record(wait, nodes, admission, lambda: job)
    return Preview(False, (), why, text, wait.estimated_start)


def requeue_backoff_s(restarts: int) -> float:
    """How long a job requeued `restarts` times waits after its last attempt ended before the
    next one is placed: `TRAINYARD_REQUEUE_BACKOFF_S`, doubled for each further restart, at
    most `TRAINYARD_REQUEUE_BACKOFF_MAX_S`. A crash loop (a bad node, a port clash) then
    costs little, and a node that just went away has time to come back."""
    if restarts < 1:
        return 0.0
    base = settings.TRAINYARD_REQUEUE_BACKOFF_S
    return float(min(base * 2 ** (restarts - 1), settings.TRAINYARD_REQUEUE_BACKOFF_MAX_S))


def _not_before(restarts: int, last_ended: datetime | None) -> datetime | None:
    backoff = requeue_backoff_s(restarts)
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
