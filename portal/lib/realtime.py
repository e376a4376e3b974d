"""Fan-out to browsers through the channel layer, always after the transaction commits.

The channel layer is lossy by design: PostgreSQL is the truth and every page can rebuild itself
from it. So a failed send is logged and dropped, never raised into the service that caused it.
Each app declares its own groups and event shapes (`portal.jobs.events`, `portal.cluster.events`)
and sends them through `send_on_commit`. Call it from synchronous code only (services, ingest,
tasks).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

# (group, event): an event is the JSON a browser receives, with `type` naming the consumer's
# handler (`job.state` -> `job_state`).
GroupMessage = tuple[str, Any]


async def _group_send_all(layer: Any, messages: Sequence[GroupMessage]) -> None:
    for group, message in messages:
        await layer.group_send(group, message)


def send_on_commit(messages: Sequence[GroupMessage]) -> None:
    """Send `(group, event)` pairs once the current transaction commits (at once outside
    one), in one fan-out."""
    if not messages:
        return
    batch = list(messages)

    def send() -> None:
        try:
            layer = get_channel_layer()
            if layer is not None:
                # One event loop for the whole fan-out rather than one per group.
                async_to_sync(_group_send_all)(layer, batch)
        except Exception:
            logger.warning(
                "Channel-layer send to %s failed; pages catch up from PostgreSQL",
                ", ".join(group for group, _ in batch),
                exc_info=True,
            )

    transaction.on_commit(send)


def json_finite(value: Any) -> Any:
    """`value` with every NaN or infinite float, however deeply nested in dicts and lists,
    replaced by None.

    Ingest keeps a diverged loss as NaN or infinity (a fact worth recording), but JSON has no
    such numbers and browsers' JSON.parse rejects them: whatever sends stored numbers out (the
    WebSocket, the REST API) passes them through here, so both say null.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_finite(item) for item in value]
    return value
