"""Control-queue tasks for notifications: one webhook try, one email, and the beat sweep."""

from __future__ import annotations

from celery import shared_task
from django.core.mail import send_mail

from portal.notifications import services
from portal.notifications.models import Notification


@shared_task(name=services.WEBHOOK_DELIVER_TASK, ignore_result=True)
def webhook_deliver(delivery_id: int) -> str | None:
    """One try of a delivery (`services.webhook_delivery_attempt`); its state after it."""
    delivery = services.webhook_delivery_attempt(delivery_id=delivery_id)
    return delivery.state if delivery is not None else None


@shared_task(name="portal.notifications.tasks.webhook_deliveries_resend", ignore_result=True)
def webhook_deliveries_resend() -> int:
    """Beat: re-send deliveries whose task was lost (`services.webhook_deliveries_resend`)."""
    return len(services.webhook_deliveries_resend())


@shared_task(
    name=services.EMAIL_SEND_TASK,
    ignore_result=True,
    autoretry_for=(OSError,),
    retry_backoff=30,
    max_retries=3,
)
def notification_email(notification_id: int) -> bool:
    """Email one notification to its user through Django's mail backend (`EMAIL_BACKEND`)."""
    notification = Notification.objects.select_related("user").filter(pk=notification_id).first()
    if notification is None or not notification.user.email:
        return False
    # The link is absolute when TRAINYARD_PUBLIC_URL is set (`receivers.subject_url`).
    body = "\n\n".join(part for part in (notification.body, notification.url) if part)
    send_mail(
        subject=f"[Trainyard] {notification.title}",
        message=body,
        from_email=None,
        recipient_list=[notification.user.email],
    )
    return True
