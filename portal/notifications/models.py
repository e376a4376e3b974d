"""What users hear: notifications in the portal, their preferences, webhooks and deliveries."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone


class Event(models.TextChoices):
    """What a user can be told about. A job's or search's end, or a flag on a running job."""

    JOB_SUCCEEDED = "job.succeeded", "A job succeeded"
    JOB_FAILED = "job.failed", "A job failed"
    JOB_STALLED = "job.stalled", "A job stalled"
    JOB_IDLE = "job.idle", "A job sat idle on its GPUs"
    JOB_PREEMPTED = "job.preempted", "A job was preempted"
    SEARCH_SUCCEEDED = "search.succeeded", "A search finished"
    SEARCH_FAILED = "search.failed", "A search failed"


ALL_EVENTS = [event.value for event in Event]


def _all_events() -> list[str]:
    return list(ALL_EVENTS)


class NotificationPreferences(models.Model):
    """Which events a user hears about in the portal (and by email). A user without a row has
    the defaults: every event, email on (sent only when the site has email set up)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences"
    )
    events = ArrayField(models.CharField(max_length=32, choices=Event.choices), default=_all_events)
    email = models.BooleanField(default=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "notification preferences"

    def __str__(self) -> str:
        return f"notification preferences of {self.user_id}"


class Notification(models.Model):
    """One thing a user was told, in the portal's notification list until they read it."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    event = models.CharField(max_length=32, choices=Event.choices)
    title = models.CharField(max_length=300)
    body = models.TextField(blank=True)
    # Where to look: the job's or search's page (a path on this portal).
    url = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "-created_at", "-id"], name="notification_list"),
            # The nav's unread count, on every page.
            models.Index(
                fields=["user"],
                name="notification_unread",
                condition=models.Q(read_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} for {self.user_id}: {self.title}"


class Webhook(models.Model):
    """An outgoing webhook: the events a user chose, POSTed as signed JSON to their URL.

    `secret` signs every delivery (HMAC-SHA256, `portal.notifications.webhooks`). It is kept
    as is, not hashed, because signing needs it; it is shown to the user once, when made.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhooks"
    )
    # Checked by `webhooks.url_problem` (and again, resolved, before every try).
    url = models.CharField(max_length=500)
    secret = models.CharField(max_length=100)
    events = ArrayField(models.CharField(max_length=32, choices=Event.choices))
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"webhook {self.pk} of {self.owner_id} to {self.url}"


class WebhookDelivery(models.Model):
    """One event sent to one webhook, tried up to TRAINYARD_WEBHOOK_MAX_ATTEMPTS times.

    PostgreSQL is the ledger: a try claims the row with a conditional update (pending ->
    sending), so a task delivered twice sends once; a pending row whose task was lost is sent
    again by the beat sweep (`tasks.webhook_deliveries_resend`).
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SUCCEEDED = "succeeded", "Delivered"
        FAILED = "failed", "Failed"

    TERMINAL = frozenset({State.SUCCEEDED, State.FAILED})

    # The receiver's de-duplication key (`X-Trainyard-Delivery`), the same on every try.
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=32, choices=Event.choices)
    # The JSON body's `data` (`portal.notifications.messages.DeliveryBody`).
    payload = models.JSONField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["webhook", "-created_at", "-id"], name="delivery_list"),
            # The sweep: deliveries still to send.
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_due",
                condition=models.Q(state__in=["pending", "sending"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} to webhook {self.webhook_id} ({self.state})"
