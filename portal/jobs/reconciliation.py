"""What a node's heartbeat, or its silence, means for the attempts placed on it.

PostgreSQL is the ledger and messages are hints, so every heartbeat is compared both ways with
what the database says the node should hold (docs/scheduling.md, "Reconciliation"):

- attempts the node runs or claims but should not (they ended, or were never placed there)
  are cancelled on it;
- attempts placed on it that it neither runs nor claims, `TRAINYARD_ATTEMPT_START_GRACE_S`
  after they were placed, are lost (active) or released (ended).

And every attempt with a share on an offline node is lost. The cluster app records the
heartbeat and the node's state (`portal.cluster.services`); ingest and the reaper task call
these right after, in the same transaction as the heartbeat.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from portal.cluster.models import Node
from portal.jobs.models import Attempt, Placement
from portal.jobs.services import attempt_lost, placements_release
from portal.jobs.stopping import attempt_stop_on_node, stop_request
from workers.messages import HealthEntry

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
        attempt_stop_on_node(
            attempt_id=attempt_id, node_name=node.name, stop=stop_request("cancel")
        )


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


def attempts_reconcile_with_heartbeat(*, node: Node, entry: HealthEntry) -> None:
    """Reconcile `node`'s attempts with the heartbeat `entry` that was just recorded for it
    (`portal.cluster.services.node_heartbeat`, whose row lock the caller still holds)."""
    held = set(entry.running_attempts) | set(entry.claimed_attempts)
    _cancel_orphans(node, held)
    # The node's clock may be off; never take the heartbeat for newer than it arrived.
    taken_at = min(timezone.now(), datetime.fromtimestamp(entry.ts, tz=UTC))
    _reconcile_gone(node, held, taken_at)


def attempts_lose_on_offline_nodes() -> int:
    """Lose every active attempt with a share on an offline node; returns how many.

    It covers every offline node, not only those just taken offline, so attempts left active
    by an interrupted run are lost on the next one."""
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
    return len(lost)
