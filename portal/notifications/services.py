"""Writes for notifications: telling users about events, their webhooks and deliveries.

`notify` is the one entry: the receivers (`receivers`) call it for a job's or search's end and
for a job's flags. It stores the in-portal notification, queues a delivery for each of the
user's webhooks that chose the event, and an email when the site and the user want one; the
sending happens in Celery tasks on the control queue, after the commit.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from portal.audit.models import AuditEvent
from portal.audit.services import audit_record
from portal.celery import app as celery_app
from portal.notifications import webhooks
from portal.notifications.messages import DeliveryBody, EventData
from portal.notifications.models import (
    ALL_EVENTS,
    Notification,
    NotificationPreferences,
    Webhook,
    WebhookDelivery,
)

WEBHOOK_DELIVER_TASK = "portal.notifications.tasks.webhook_deliver"
EMAIL_SEND_TASK = "portal.notifications.tasks.notification_email"
# Webhooks one user may have.
MAX_WEBHOOKS = 20
# A try that has not reported back in this long died with its worker: it may be tried again.
CLAIM_TIMEOUT = timedelta(minutes=5)


def _send_on_commit(task: str, *args: object, countdown: float | None = None) -> None:
    # The portal's app by name, not Celery's `current_app`: that is whichever app was made
    # last in the process (a node agent's, in a process that imported one), with its own queues.
    transaction.on_commit(lambda: celery_app.send_task(task, args=list(args), countdown=countdown))


def preferences_of(user: AbstractBaseUser) -> NotificationPreferences:
    """The user's preferences (the defaults, unsaved, when they never changed them)."""
    found = NotificationPreferences.objects.filter(user=user.pk).first()
    return found or NotificationPreferences(user_id=user.pk)


def preferences_update(
    *, user: AbstractBaseUser, events: Collection[str], email: bool
) -> NotificationPreferences:
    """Set which events notify the user in the portal and by email."""
    unknown = sorted(set(events) - set(ALL_EVENTS))
    if unknown:
        raise ValidationError({"events": [f"Unknown events: {', '.join(unknown)}."]})
    chosen = [event for event in ALL_EVENTS if event in events]
    preferences, _ = NotificationPreferences.objects.update_or_create(
        user_id=user.pk,
        defaults={"events": chosen, "email": email, "updated_at": timezone.now()},
    )
    return preferences


# ---- telling ---------------------------------------------------------------------------------


@transaction.atomic
def notify(*, user: AbstractBaseUser, data: EventData) -> Notification | None:
    """Tell `user` about the event in `data`: a notification in the portal (and an email)
    if their preferences want the event, and a delivery to each active webhook that chose it.
    Returns the notification, or None when the preferences skip it."""
    event = data["event"]
    preferences = preferences_of(user)
    notification = None
    if event in preferences.events:
        notification = Notification.objects.create(
            user_id=user.pk,
            event=event,
            title=data["title"][:300],
            body=data["detail"],
            url=data["subject"]["url"][:500],
        )
        if (
            settings.TRAINYARD_NOTIFY_EMAIL
            and preferences.email
            and str(getattr(user, "email", "") or "")
        ):
            _send_on_commit(EMAIL_SEND_TASK, notification.pk)
    for webhook in Webhook.objects.filter(owner=user.pk, active=True, events__contains=[event]):
        delivery = WebhookDelivery.objects.create(
            webhook=webhook, event=event, payload=data, next_attempt_at=timezone.now()
        )
        _send_on_commit(WEBHOOK_DELIVER_TASK, delivery.pk)
    return notification


def notifications_mark_read(*, user: AbstractBaseUser, ids: Collection[int] | None) -> int:
    """Mark the user's notifications read: those in `ids`, or all of them (None)."""
    unread = Notification.objects.filter(user=user.pk, read_at__isnull=True)
    if ids is not None:
        unread = unread.filter(pk__in=list(ids))
    return unread.update(read_at=timezone.now())


# ---- webhooks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedWebhook:
    """A new webhook and its secret: the one time the secret is shown."""

    webhook: Webhook
    secret: str


def _events_checked(events: Collection[str]) -> list[str]:
    unknown = sorted(set(events) - set(ALL_EVENTS))
    if unknown:
        raise ValidationError({"events": [f"Unknown events: {', '.join(unknown)}."]})
    if not events:
        raise ValidationError({"events": ["Choose at least one event."]})
    return [event for event in ALL_EVENTS if event in events]


def webhook_create(*, user: AbstractBaseUser, url: str, events: Collection[str]) -> IssuedWebhook:
    """A webhook for `user` to `url` on `events`, with a new secret (ValidationError keyed
    `url` or `events`). The URL is checked again, resolved, before every try."""
    url = url.strip()
    if (problem := webhooks.url_problem(url)) is not None:
        raise ValidationError({"url": [problem]})
    if len(url) > 500:
        raise ValidationError({"url": ["Keep the URL under 500 characters."]})
    chosen = _events_checked(events)
    with transaction.atomic():
        # Counted under the user's row lock, so parallel creates cannot pass the limit.
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        if Webhook.objects.filter(owner=user.pk).count() >= MAX_WEBHOOKS:
            raise ValidationError({"url": [f"You have {MAX_WEBHOOKS} webhooks already."]})
        secret = f"whsec_{secrets.token_urlsafe(32)}"
        webhook = Webhook.objects.create(owner_id=user.pk, url=url, secret=secret, events=chosen)
        # A webhook sends the user's job events out of the cluster: who pointed it where.
        audit_record(
            action=AuditEvent.Action.WEBHOOK_CREATED,
            actor=user,
            target=url,
            details={"webhook": webhook.pk, "events": chosen},
        )
    return IssuedWebhook(webhook=webhook, secret=secret)


def webhook_delete(*, user: AbstractBaseUser, webhook: Webhook) -> None:
    """Delete one of the user's webhooks, and its delivery log."""
    with transaction.atomic():
        deleted, _ = Webhook.objects.filter(pk=webhook.pk, owner=user.pk).delete()
        if deleted:
            audit_record(
                action=AuditEvent.Action.WEBHOOK_DELETED,
                actor=user,
                target=webhook.url,
                details={"webhook": webhook.pk},
            )


def webhook_test(*, user: AbstractBaseUser, webhook: Webhook) -> WebhookDelivery:
    """Queue a `ping`-style delivery of a made-up finished job to the webhook, to try it."""
    data: EventData = {
        "event": "job.succeeded",
        "title": "Test delivery from Trainyard",
        "detail": "A webhook test: no job finished.",
        "subject": {
            "kind": "job",
            "id": 0,
            "name": "test",
            "state": "succeeded",
            "reason": "",
            "url": "",
        },
    }
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(
            webhook=webhook, event=data["event"], payload=data, next_attempt_at=timezone.now()
        )
        _send_on_commit(WEBHOOK_DELIVER_TASK, delivery.pk)
    return delivery


def delivery_body(delivery: WebhookDelivery) -> bytes:
    """The JSON body of `delivery`, the same bytes on every try (the signature covers them)."""
    body: DeliveryBody = {
        "id": str(delivery.uid),
        "event": delivery.event,
        "created_at": delivery.created_at.isoformat(),
        "data": delivery.payload,
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def backoff_s(attempts: int) -> float:
    """Seconds to wait after the `attempts`-th failed try: BACKOFF_S doubling, capped."""
    base = settings.TRAINYARD_WEBHOOK_BACKOFF_S
    return float(min(settings.TRAINYARD_WEBHOOK_BACKOFF_MAX_S, base * 2 ** max(0, attempts - 1)))


def webhook_delivery_attempt(*, delivery_id: int) -> WebhookDelivery | None:
    """Make one try of a delivery that is due, and record how it went. A delivery that is not
    pending and due (already sent, given up, being tried elsewhere, or not yet due) is left
    alone: returns None. Otherwise, after a failure with tries left, it is pending again with
    its next try due after the backoff, and that try is queued."""
    now = timezone.now()
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, state=WebhookDelivery.State.PENDING, next_attempt_at__lte=now
    ).update(state=WebhookDelivery.State.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    if claimed != 1:
        return None
    delivery = WebhookDelivery.objects.select_related("webhook").get(pk=delivery_id)
    webhook = delivery.webhook
    # Outside any transaction: the wait holds no lock and no connection state.
    result = webhooks.send(
        url=webhook.url,
        secret=webhook.secret,
        event=delivery.event,
        delivery=str(delivery.uid),
        body=delivery_body(delivery),
    )
    done = timezone.now()
    update: dict[str, object] = {
        "last_status_code": result.status,
        "last_error": result.error,
        "claimed_at": None,
    }
    if result.ok:
        update |= {
            "state": WebhookDelivery.State.SUCCEEDED,
            "delivered_at": done,
            "next_attempt_at": None,
        }
    elif delivery.attempts >= settings.TRAINYARD_WEBHOOK_MAX_ATTEMPTS:
        update |= {"state": WebhookDelivery.State.FAILED, "next_attempt_at": None}
    else:
        wait = backoff_s(delivery.attempts)
        update |= {
            "state": WebhookDelivery.State.PENDING,
            "next_attempt_at": done + timedelta(seconds=wait),
        }
    with transaction.atomic():
        WebhookDelivery.objects.filter(pk=delivery.pk, state=WebhookDelivery.State.SENDING).update(
            **update
        )
        if update["state"] == WebhookDelivery.State.PENDING:
            _send_on_commit(WEBHOOK_DELIVER_TASK, delivery.pk, countdown=wait)
    delivery.refresh_from_db()
    return delivery


def webhook_deliveries_resend() -> list[int]:
    """Queue again the deliveries that are due but whose task may be lost (due for a while),
    and free tries whose worker died (claimed longer than CLAIM_TIMEOUT ago)."""
    now = timezone.now()
    WebhookDelivery.objects.filter(
        state=WebhookDelivery.State.SENDING, claimed_at__lt=now - CLAIM_TIMEOUT
    ).update(state=WebhookDelivery.State.PENDING, next_attempt_at=now, claimed_at=None)
    # A due task normally runs within a second or two; only the forgotten are re-sent.
    grace = timedelta(seconds=30)
    due = list(
        WebhookDelivery.objects.filter(
            Q(state=WebhookDelivery.State.PENDING), next_attempt_at__lte=now - grace
        ).values_list("pk", flat=True)[:500]
    )
    for pk in due:
        celery_app.send_task(WEBHOOK_DELIVER_TASK, args=[pk])
    return due
