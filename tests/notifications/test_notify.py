"""What notifies whom: a job's end and flags, a search's end, preferences, and email."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from celery import Celery
from django.contrib.auth.models import User
from django.core import mail

from portal.celery import app as portal_celery_app
from portal.experiments.signals import search_finished
from portal.jobs.models import Job
from portal.jobs.signals import job_finished, job_flagged
from portal.notifications import services
from portal.notifications.models import Notification, WebhookDelivery
from portal.notifications.services import EMAIL_SEND_TASK
from portal.notifications.tasks import notification_email
from tests.factories import make_job


def finished(owner: User, state: str, reason: str = "") -> Job:
    job = make_job(owner, state=state, state_reason=reason)
    job_finished.send_robust(sender=Job, job=job)
    return job


def test_a_succeeded_and_a_failed_job_notify_their_owner(owner: User, teammate: User) -> None:
    good = finished(owner, Job.State.SUCCEEDED, "Attempt 1 succeeded.")
    bad = finished(owner, Job.State.FAILED, "Attempt 1 exited with 3.")

    listed = list(Notification.objects.filter(user=owner).order_by("id"))
    assert [(n.event, n.url) for n in listed] == [
        ("job.succeeded", f"/jobs/{good.pk}/"),
        ("job.failed", f"/jobs/{bad.pk}/"),
    ]
    assert listed[1].title == f"Job {bad.name} #{bad.pk} failed"
    assert listed[1].body == "Attempt 1 exited with 3."
    assert not Notification.objects.filter(user=teammate).exists()


def test_a_cancelled_job_notifies_nobody(owner: User) -> None:
    finished(owner, Job.State.CANCELLED)
    assert not Notification.objects.exists()


def test_each_flag_notifies_with_its_detail(owner: User) -> None:
    job = make_job(owner, state=Job.State.RUNNING)
    for flag in ("stalled", "idle", "preempted"):
        job_flagged.send_robust(sender=Job, job=job, flag=flag, detail=f"{flag} for a while")

    events = list(Notification.objects.order_by("id").values_list("event", "body"))
    assert events == [
        ("job.stalled", "stalled for a while"),
        ("job.idle", "idle for a while"),
        ("job.preempted", "preempted for a while"),
    ]


def test_a_finished_search_notifies_its_owner(owner: User) -> None:
    search = SimpleNamespace(pk=4, name="lr sweep", state="succeeded", owner=owner)
    search_finished.send_robust(sender=object, search=search)
    cancelled = SimpleNamespace(pk=5, name="other", state="cancelled", owner=owner)
    search_finished.send_robust(sender=object, search=cancelled)

    [notification] = Notification.objects.all()
    assert notification.event == "search.succeeded"
    assert notification.title == "Search lr sweep #4 succeeded"


def test_preferences_choose_the_events_but_webhooks_keep_their_own(owner: User) -> None:
    services.preferences_update(user=owner, events=["job.failed"], email=False)
    services.webhook_create(user=owner, url="https://hooks.example.com/x", events=["job.succeeded"])

    finished(owner, Job.State.SUCCEEDED)
    finished(owner, Job.State.FAILED)

    assert list(Notification.objects.values_list("event", flat=True)) == ["job.failed"]
    # The webhook chose job.succeeded only.
    assert list(WebhookDelivery.objects.values_list("event", flat=True)) == ["job.succeeded"]


def test_email_goes_through_djangos_mail_backend_when_enabled(
    owner: User, settings: Any, broker: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.TRAINYARD_PUBLIC_URL = "https://trainyard.example.org"
    settings.TRAINYARD_NOTIFY_EMAIL = True
    broker.take("control")  # whatever earlier tests left
    # Another Celery app made since (a node agent's, as in a process that imported one)
    # becomes Celery's current app: the portal's messages must not go out through it.
    Celery("a-node-agent", set_as_current=True)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            job = finished(owner, Job.State.FAILED, "Out of memory.")
    finally:
        portal_celery_app.set_current()

    # The email is a task on the control queue; the worker's part is the task itself.
    [task] = [t for t in broker.take("control") if t.name == EMAIL_SEND_TASK]
    assert notification_email(*task.args) is True
    [message] = mail.outbox
    assert message.to == [owner.email]
    assert message.subject == f"[Trainyard] Job {job.name} #{job.pk} failed"
    assert f"https://trainyard.example.org/jobs/{job.pk}/" in message.body
    assert "Out of memory." in message.body


def test_no_email_when_the_site_or_the_user_has_email_off(
    owner: User, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.TRAINYARD_NOTIFY_EMAIL = False
    with django_capture_on_commit_callbacks() as site_off:
        finished(owner, Job.State.FAILED)
    settings.TRAINYARD_NOTIFY_EMAIL = True
    services.preferences_update(user=owner, events=["job.failed"], email=False)
    with django_capture_on_commit_callbacks() as user_off:
        finished(owner, Job.State.FAILED)

    assert Notification.objects.count() == 2
    assert site_off == [] and user_off == []
