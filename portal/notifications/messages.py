"""The shapes that leave the portal: a webhook delivery's JSON body, as receivers parse it.

Declared once here; `services` builds them and `webhooks` sends them. docs/notifications.md
documents the same fields.
"""

from __future__ import annotations

from typing import TypedDict


class SubjectData(TypedDict):
    """The job or search the event is about."""

    kind: str  # "job" | "search"
    id: int
    name: str
    state: str
    reason: str
    url: str  # absolute when TRAINYARD_PUBLIC_URL is set, else a path


class EventData(TypedDict):
    """A delivery's `data`: what happened, to what, in words too."""

    event: str
    title: str
    detail: str
    subject: SubjectData


class DeliveryBody(TypedDict):
    """The JSON body of every delivery (the same on each try of one delivery)."""

    id: str  # the delivery's uid, also X-Trainyard-Delivery
    event: str
    created_at: str  # ISO 8601, UTC
    data: EventData
