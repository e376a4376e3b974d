"""Writes for the cluster: heartbeats, registration, draining, and reaping silent nodes."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal.audit.models import AuditEvent
from portal.audit.services import audit_record
from portal.cluster.models import Node
from portal.core.ingest.progress import health_backlog
from portal.jobs.events import node_health_changed
from portal.jobs.models import Attempt, Placement
from portal.jobs.scheduling import node_task_send_on_commit, request_schedule
from portal.jobs.services import attempt_lost, placements_release
from workers.messages import CANCEL_ATTEMPT_TASK, HealthEntry

logger = logging.getLogger(__name__)


def _cancel_orphans(node: Node, held: set[int]) -> None:
    """Stop what a node runs (or has claimed) but the database says it should not: attempts
    that ended (lost while the node was unreachable, say) or have no placement on this node."""
    if not held:
        return
    current = set(
        Attempt.objects.filter(
            pk__in=held, state__in=Attempt.ACTIVE, placements__node=node
        ).values_list("pk", flat=True)
    )
    for attempt_id in sorted(held - current):
        logger.warning("node %s runs attempt %s, which it should not; cancelling", node, attempt_id)
        node_task_send_on_commit(task=CANCEL_ATTEMPT_TASK, args=[attempt_id], node_name=node.name)


def _claimed_attempts(entry: HealthEntry) -> list[int] | None:
    """The heartbeat's `claimed_attempts`, or None if it has none (an older node) or it is not
    a list of ids: without it, an attempt the node has not started yet looks gone."""
    claimed = entry.get("claimed_attempts")
    if claimed is None:
        return None
    if not isinstance(claimed, list) or not all(
        isinstance(a, int) and not isinstance(a, bool) for a in claimed
    ):
        logger.warning("node %s sent malformed claimed_attempts %r", entry["node"], claimed)
        return None
    return claimed


def _reconcile_gone(node: Node, held: set[int], taken_at: datetime) -> None:
    """Settle the placements on `node` that the node neither runs nor claims, although they
    were made at least `TRAINYARD_ATTEMPT_START_GRACE_S` before the heartbeat was taken: the
    run message was lost or expired, the start failed without a word, or the launcher died and
    its exit report was lost. An active attempt is lost (and requeued, failed or cancelled as
    usual); the node's share of an ended one is released, so its capacity is free."""
    cutoff = taken_at - timedelta(seconds=settings.TRAINYARD_ATTEMPT_START_GRACE_S)
    gone = list(
        Placement.objects.filter(
            node=node, finished_at__isnull=True, attempt__created_at__lt=cutoff
        )
        .exclude(attempt_id__in=held)
        .order_by("attempt_id")
        .values_list("attempt_id", "attempt__state")
    )
    for attempt_id, state in gone:
        if state in Attempt.ACTIVE:
            logger.warning("node %s does not have attempt %s; it is lost", node.name, attempt_id)
            attempt_lost(
                attempt_id=attempt_id,
                reason=(
                    f"node {node.name} does not have it (the start message was lost, "
                    "or it ended without a report)"
                ),
            )
    placements_release(node=node, attempt_ids=[attempt_id for attempt_id, _ in gone])


@transaction.atomic
def node_heartbeat(*, entry: HealthEntry) -> Node:
    """Record a heartbeat: create or refresh the node by name and mark it online.

    A node that comes (back) online or whose capacity changed may let a job start, so that
    queues a scheduling pass. Then the node's attempts are reconciled both ways: attempts it
    runs or claims but no longer owns are cancelled on it, and attempts placed on it that it
    neither runs nor claims are lost after a grace period (see `_reconcile_gone`; only for
    nodes that report `claimed_attempts`).
    """
    now = timezone.now()
    # The row lock waits for a scheduling pass that is deciding with this node's capacity.
    node, created = Node.objects.select_for_update().get_or_create(
        name=entry["node"], defaults={"registered_at": now}
    )
    came_online = created or node.state != Node.State.ONLINE
    resized = (node.cpu_slots, node.gpu_count) != (entry["cpu_slots"], entry["gpu_count"])
    node.hostname = entry["hostname"] or node.hostname
    node.address = entry["address"] or node.address
    node.cpu_slots = entry["cpu_slots"]
    node.gpu_count = entry["gpu_count"]
    node.health = dict(entry)
    node.state = Node.State.ONLINE
    node.last_heartbeat_at = now
    node.save(
        update_fields=[
            "hostname",
            "address",
            "cpu_slots",
            "gpu_count",
            "health",
            "state",
            "last_heartbeat_at",
        ]
    )
    if came_online:
        logger.info("node %s is online", node.name)
    if came_online or resized:
        request_schedule()
    node_health_changed(node)
    running = set(entry["running_attempts"])
    claimed = _claimed_attempts(entry)
    _cancel_orphans(node, running | set(claimed or ()))
    if claimed is not None:
        # The node's clock may be off; never take the heartbeat for newer than it arrived.
        taken_at = min(now, datetime.fromtimestamp(entry["ts"], tz=UTC))
        _reconcile_gone(node, running | set(claimed), taken_at)
    return node


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


@transaction.atomic
def node_set_draining(*, node: Node, draining: bool, by: User | None = None) -> Node:
    """Start or stop draining: a draining node finishes what it runs but takes no new work."""
    if Node.objects.filter(pk=node.pk, is_draining=not draining).update(is_draining=draining):
        node.refresh_from_db()
        audit_record(
            action=AuditEvent.Action.NODE_DRAINED if draining else AuditEvent.Action.NODE_UNDRAINED,
            actor=by,
            target=f"node {node.name}",
        )
        node_health_changed(node)
        # Undraining frees capacity; draining changes why waiting jobs wait.
        request_schedule()
    else:
        node.refresh_from_db()
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


def nodes_reap() -> list[Node]:
    """Take nodes that missed `TRAINYARD_MISSED_HEARTBEATS` heartbeats offline, and lose every
    active attempt placed on an offline node. Returns the nodes taken offline by this call.

    A node's `last_heartbeat_at` is when ingest stored its heartbeat, so silence is judged only
    once ingest has stored every heartbeat sent so far: while it is behind (an outage of
    PostgreSQL, Redis or ingest itself), the newest heartbeats wait in the stream and every
    node would look silent. Such a pass reaps nothing and says why in the log.

    Each step commits on its own, and the sweep covers every offline node, not only the ones
    reaped now, so attempts left active by an interrupted run are lost on the next one."""
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
                node_health_changed(node)
                reaped.append(node)
    lost: dict[int, list[str]] = defaultdict(list)
    for attempt_id, node_name in (
        Placement.objects.filter(attempt__state__in=Attempt.ACTIVE, node__state=Node.State.OFFLINE)
        .order_by("attempt_id", "node_rank")
        .values_list("attempt_id", "node__name")
    ):
        lost[attempt_id].append(node_name)
    for attempt_id, names in lost.items():
        which = f"{'node' if len(names) == 1 else 'nodes'} {', '.join(names)}"
        attempt_lost(attempt_id=attempt_id, reason=f"{which} stopped sending heartbeats")
    if reaped:
        # Waiting jobs' reasons name offline nodes.
        request_schedule()
    return reaped
