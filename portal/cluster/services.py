"""Writes for the cluster: heartbeats, registration, draining, and taking silent nodes offline.

These record what nodes are. What a node's heartbeat or silence means for the attempts placed
on it is the jobs app's to decide (`portal.jobs.reconciliation`); the processes that compose
both (ingest, the reaper task) call one after the other.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import msgspec
import redis
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from portal.audit.models import AuditEvent
from portal.audit.services import audit_record
from portal.cluster.events import node_health_changed
from portal.cluster.models import Node, NodeEvent, NodeSample
from portal.lib.streams import health_backlog
from portal.lib.ticks import request_schedule
from workers.messages import HealthEntry

logger = logging.getLogger(__name__)


@transaction.atomic
def node_heartbeat(*, entry: HealthEntry) -> Node:
    """Record a heartbeat: create or refresh the node by name and mark it online.

    A node that comes (back) online or whose capacity changed may let a job start, so that
    queues a scheduling pass. The row stays locked until the caller's transaction ends, so the
    attempts reconciliation that follows (`portal.jobs.reconciliation`) decides against this
    very heartbeat.
    """
    now = timezone.now()
    # The row lock waits for a scheduling pass that is deciding with this node's capacity.
    node, created = Node.objects.select_for_update().get_or_create(
        name=entry.node, defaults={"registered_at": now}
    )
    came_online = created or node.state != Node.State.ONLINE
    offer = (entry.cpu_slots, entry.gpu_count, entry.pool, entry.labels)
    reshaped = (node.cpu_slots, node.gpu_count, node.pool, node.labels) != offer
    unhealthy = unhealthy_reason(entry)
    health_changed = unhealthy != node.unhealthy_reason
    node.hostname = entry.hostname or node.hostname
    node.address = entry.address or node.address
    node.cpu_slots = entry.cpu_slots
    node.gpu_count = entry.gpu_count
    node.pool = entry.pool
    node.labels = dict(entry.labels)
    node.gpu_model = entry.gpus[0].name if entry.gpus else ""
    node.unhealthy_reason = unhealthy
    # Stored whole, as the node sent it, and shown to admins.
    node.health = msgspec.to_builtins(entry)
    node.state = Node.State.ONLINE
    node.last_heartbeat_at = now
    node.save(
        update_fields=[
            "hostname",
            "address",
            "cpu_slots",
            "gpu_count",
            "pool",
            "labels",
            "gpu_model",
            "unhealthy_reason",
            "health",
            "state",
            "last_heartbeat_at",
        ]
    )
    if came_online:
        logger.info("node %s is online", node.name)
        if not created:
            NodeEvent.objects.create(node=node, kind=NodeEvent.Kind.ONLINE)
    if health_changed:
        kind = NodeEvent.Kind.UNHEALTHY if unhealthy else NodeEvent.Kind.HEALTHY
        logger.warning("node %s: %s", node.name, unhealthy or "healthy again")
        NodeEvent.objects.create(node=node, kind=kind, reason=unhealthy)
    if came_online or reshaped or health_changed:
        request_schedule()
    node_health_changed(node)
    return node


def unhealthy_reason(entry: HealthEntry) -> str:
    """Why a heartbeat says its node should take no new work ("" when healthy): a GPU that
    counts uncorrectable ECC errors will corrupt or crash whatever runs on it."""
    bad = [
        f"GPU {gpu.index} has {gpu.ecc_uncorrected} uncorrectable ECC errors"
        for gpu in entry.gpus
        if gpu.ecc_uncorrected
    ]
    return "; ".join(bad)


@transaction.atomic
def node_register(*, name: str, address: str, cpu_slots: int, gpu_count: int) -> Node:
    """Create or refresh a node before its agent's first heartbeat (`manage.py up` does this),
    so jobs can be submitted at once. It counts as a fresh heartbeat: if the agent never
    reports, the reaper takes the node offline after the usual missed heartbeats."""
    now = timezone.now()
    node, created = Node.objects.select_for_update().get_or_create(
        name=name, defaults={"registered_at": now}
    )
    changed = (
        created
        or node.state != Node.State.ONLINE
        or (node.cpu_slots, node.gpu_count) != (cpu_slots, gpu_count)
    )
    node.address = address
    node.hostname = node.hostname or address
    node.cpu_slots = cpu_slots
    node.gpu_count = gpu_count
    node.state = Node.State.ONLINE
    node.last_heartbeat_at = now
    node.save(
        update_fields=[
            "address",
            "hostname",
            "cpu_slots",
            "gpu_count",
            "state",
            "last_heartbeat_at",
        ]
    )
    if changed:
        request_schedule()
        node_health_changed(node)
    return node


_AUDITED = {
    NodeEvent.Kind.DRAIN: AuditEvent.Action.NODE_DRAINED,
    NodeEvent.Kind.UNDRAIN: AuditEvent.Action.NODE_UNDRAINED,
    NodeEvent.Kind.CORDON: AuditEvent.Action.NODE_CORDONED,
    NodeEvent.Kind.UNCORDON: AuditEvent.Action.NODE_UNCORDONED,
}


def _admin_change(
    node: Node,
    *,
    field: str,
    value: bool,
    kind: NodeEvent.Kind,
    actor: AbstractBaseUser | None,
    reason: str,
) -> bool:
    """Set an admin flag with a conditional update and record who did it; True if it changed."""
    update: dict[str, object] = {field: value}
    if field == "is_cordoned":
        update["cordon_reason"] = reason if value else ""
        if not value:
            update["consecutive_failures"] = 0
    if not Node.objects.filter(pk=node.pk, **{field: not value}).update(**update):
        node.refresh_from_db()
        return False
    NodeEvent.objects.create(
        node=node, kind=kind, actor_id=actor.pk if actor else None, reason=reason
    )
    audit_record(
        action=_AUDITED[kind],
        actor=actor,
        actor_name="" if actor else "trainyard",
        target=f"node {node.name}",
        details={"reason": reason} if reason else None,
    )
    node.refresh_from_db()
    node_health_changed(node)
    # Undraining or uncordoning frees capacity; the others change why waiting jobs wait.
    request_schedule()
    return True


@transaction.atomic
def node_set_draining(
    *, node: Node, draining: bool, actor: AbstractBaseUser | None = None, reason: str = ""
) -> Node:
    """Start or stop draining: a draining node finishes what it runs but takes no new work.
    `actor` None means Trainyard itself."""
    kind = NodeEvent.Kind.DRAIN if draining else NodeEvent.Kind.UNDRAIN
    _admin_change(node, field="is_draining", value=draining, kind=kind, actor=actor, reason=reason)
    return node


@transaction.atomic
def node_set_cordoned(
    *, node: Node, cordoned: bool, actor: AbstractBaseUser | None = None, reason: str = ""
) -> Node:
    """Cordon (take out of service: it looks broken) or uncordon a node. Like draining, a
    cordoned node finishes what it runs and takes nothing new; uncordoning also forgets its
    run of failures. `actor` None means Trainyard itself (see `node_share_exited`)."""
    kind = NodeEvent.Kind.CORDON if cordoned else NodeEvent.Kind.UNCORDON
    _admin_change(node, field="is_cordoned", value=cordoned, kind=kind, actor=actor, reason=reason)
    return node


@transaction.atomic
def node_share_exited(*, node_id: int, failed: bool, reason: str) -> Node:
    """Count a share of an attempt that ended on the node: a failure that another attempt
    might not repeat (the node's fault, maybe) adds to its run of failures, a clean exit ends
    the run. `TRAINYARD_NODE_FAILURES_TO_CORDON` failures in a row cordon the node, so a bad
    GPU cannot eat the queue's restarts; an admin uncordons it."""
    node = Node.objects.select_for_update().get(pk=node_id)
    if not failed:
        if node.consecutive_failures:
            Node.objects.filter(pk=node_id).update(consecutive_failures=0)
            node.consecutive_failures = 0
        return node
    Node.objects.filter(pk=node_id).update(consecutive_failures=F("consecutive_failures") + 1)
    node.refresh_from_db(fields=["consecutive_failures"])
    limit = settings.TRAINYARD_NODE_FAILURES_TO_CORDON
    if limit and node.consecutive_failures >= limit and not node.is_cordoned:
        why = (
            f"{node.consecutive_failures} attempts failed in a row on this node "
            f"(the last: {reason.strip().rstrip('.')[:500]})"
        )
        logger.warning("cordoning node %s: %s", node.name, why)
        node_set_cordoned(node=node, cordoned=True, actor=None, reason=why)
    return node


# How long the reaper waits for a busy ingest to store the heartbeats already sent.
_INGEST_CATCH_UP_S = 1.0


def _heartbeats_unstored() -> str | None:
    """Why some heartbeat that nodes sent may not be stored yet; None when all are."""
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    try:
        return health_backlog(
            client, prefix=settings.TRAINYARD_STREAM_PREFIX, wait_s=_INGEST_CATCH_UP_S
        )
    finally:
        client.close()


def nodes_mark_offline() -> list[Node]:
    """Take nodes that missed `TRAINYARD_MISSED_HEARTBEATS` heartbeats offline; returns them.

    A node's `last_heartbeat_at` is when ingest stored its heartbeat, so silence is judged only
    once ingest has stored every heartbeat sent so far: while it is behind (an outage of
    PostgreSQL, Redis or ingest itself), the newest heartbeats wait in the stream and every
    node would look silent. Such a pass reaps nothing and says why in the log.

    Each node commits on its own. Losing the attempts of offline nodes is
    `portal.jobs.reconciliation.attempts_lose_on_offline_nodes`, run right after this."""
    backlog = _heartbeats_unstored()
    if backlog is not None:
        logger.warning("not reaping nodes: %s", backlog)
        return []
    # After the check: a heartbeat sent before it was stored at or before this moment.
    window = timedelta(
        seconds=settings.TRAINYARD_HEARTBEAT_S * settings.TRAINYARD_MISSED_HEARTBEATS
    )
    cutoff = timezone.now() - window
    silent = Q(last_heartbeat_at__lt=cutoff) | Q(
        last_heartbeat_at__isnull=True, registered_at__lt=cutoff
    )
    reaped: list[Node] = []
    for node in Node.objects.filter(silent, state=Node.State.ONLINE):
        with transaction.atomic():
            # Conditional: a heartbeat that landed since the read keeps the node online.
            if Node.objects.filter(silent, pk=node.pk, state=Node.State.ONLINE).update(
                state=Node.State.OFFLINE
            ):
                node.refresh_from_db()
                logger.warning("node %s missed its heartbeats; it is offline", node.name)
                NodeEvent.objects.create(
                    node=node, kind=NodeEvent.Kind.OFFLINE, reason="it stopped sending heartbeats"
                )
                node_health_changed(node)
                reaped.append(node)
    if reaped:
        # Waiting jobs' reasons name offline nodes.
        request_schedule()
    return reaped


def node_samples_record(*, entries: Iterable[HealthEntry]) -> int:
    """Add heartbeats to the nodes' health history (`NodeSample`): the host and each GPU, at
    most one reading per node, device and `TRAINYARD_NODE_SAMPLE_S` step (the first stored
    wins, so a re-delivered heartbeat changes nothing). Nodes without a row are skipped: the
    caller records heartbeats (`node_heartbeat`) first. Returns the readings offered."""
    step = settings.TRAINYARD_NODE_SAMPLE_S
    batch = list(entries)
    node_ids = dict(Node.objects.filter(name__in={e.node for e in batch}).values_list("name", "pk"))
    rows: list[NodeSample] = []
    for entry in batch:
        node_id = node_ids.get(entry.node)
        if node_id is None:
            continue
        at = datetime.fromtimestamp(entry.ts, tz=UTC)
        slot = int(entry.ts // step)
        rows.append(
            NodeSample(
                node_id=node_id,
                at=at,
                slot=slot,
                gpu=None,
                utilization=entry.cpu_percent,
                memory_used=entry.memory_used,
                memory_total=entry.memory_total,
            )
        )
        rows += [
            NodeSample(
                node_id=node_id,
                at=at,
                slot=slot,
                gpu=gpu.index,
                utilization=gpu.utilization,
                memory_used=gpu.memory_used,
                memory_total=gpu.memory_total,
            )
            for gpu in entry.gpus
        ]
    NodeSample.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def node_samples_prune() -> int:
    """Drop health readings older than `TRAINYARD_NODE_SAMPLE_RETENTION_H`; returns how many."""
    cutoff = timezone.now() - timedelta(hours=settings.TRAINYARD_NODE_SAMPLE_RETENTION_H)
    deleted, _ = NodeSample.objects.filter(at__lt=cutoff).delete()
    return deleted
