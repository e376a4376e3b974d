"""Reads for notifications: a user's list and unread count, webhooks and their deliveries.

Everything here is the user's own: another user's webhook or delivery answers 404.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet
from django.http import Http404

from portal.notifications.models import Notification, Webhook, WebhookDelivery


def notifications_of(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Notification]:
    """The user's notifications, newest first."""
    if not user.is_authenticated:
        return Notification.objects.none()
    return Notification.objects.filter(user=user.pk)


def unread_count(user: AbstractBaseUser | AnonymousUser) -> int:
    if not user.is_authenticated:
        return 0
    return Notification.objects.filter(user=user.pk, read_at__isnull=True).count()


def webhooks_of(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Webhook]:
    if not user.is_authenticated:
        return Webhook.objects.none()
    return Webhook.objects.filter(owner=user.pk)


def webhook_get_own(*, user: AbstractBaseUser | AnonymousUser, webhook_id: int) -> Webhook:
    found = webhooks_of(user).filter(pk=webhook_id).first()
    if found is None:
        raise Http404("No such webhook.")
    return found


def deliveries_of(
    user: AbstractBaseUser | AnonymousUser, *, webhook: Webhook | None = None
) -> QuerySet[WebhookDelivery]:
    """Deliveries to the user's webhooks (or one of them), newest first."""
    if not user.is_authenticated:
        return WebhookDelivery.objects.none()
    deliveries = WebhookDelivery.objects.filter(webhook__owner=user.pk).select_related("webhook")
    if webhook is not None:
        deliveries = deliveries.filter(webhook=webhook)
    return deliveries
