"""The notifications API: the list and marking read, preferences, webhooks (the secret shown
once), and another user's webhook answering 404."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from portal.audit.models import AuditEvent
from portal.jobs.models import Job
from portal.jobs.signals import job_finished
from portal.notifications.models import Webhook
from tests.factories import make_job


def test_the_list_marks_read_and_the_nav_counts_unread(owner: User, client_for: Any) -> None:
    for _ in range(3):
        job_finished.send_robust(sender=Job, job=make_job(owner, state=Job.State.SUCCEEDED))
    api = client_for(owner)

    listed = api.get("/api/v1/notifications/?unread=true").json()
    assert listed["count"] == 3
    first = listed["results"][0]
    assert (first["event"], first["read"]) == ("job.succeeded", False)

    assert api.post(
        "/api/v1/notifications/read/", {"ids": [first["id"]]}, format="json"
    ).json() == {"marked": 1}
    assert api.get("/api/v1/notifications/?unread=true").json()["count"] == 2

    browser = Client()
    browser.force_login(owner)
    page = browser.get(reverse("notifications:list")).content.decode()
    assert '<span class="count-badge" data-testid="unread-count">2</span>' in page
    browser.post(reverse("notifications:read"))
    assert api.get("/api/v1/notifications/?unread=true").json()["count"] == 0
    assert 'data-testid="unread-count"' not in browser.get(reverse("jobs:list")).content.decode()


def test_preferences_round_trip_and_refuse_unknown_events(owner: User, client_for: Any) -> None:
    api = client_for(owner)
    assert api.get("/api/v1/notifications/preferences/").json()["email"] is True

    saved = api.put(
        "/api/v1/notifications/preferences/",
        {"events": ["job.failed", "job.stalled"], "email": False},
        format="json",
    )
    assert saved.status_code == 200
    assert saved.json() == {"events": ["job.failed", "job.stalled"], "email": False}
    bad = api.put(
        "/api/v1/notifications/preferences/",
        {"events": ["job.exploded"], "email": False},
        format="json",
    )
    assert bad.status_code == 400 and list(bad.json()["errors"]) == ["events.0"]


def test_a_webhooks_secret_is_shown_once(owner: User, client_for: Any) -> None:
    api = client_for(owner)
    made = api.post(
        "/api/v1/webhooks/",
        {"url": "https://hooks.example.com/t", "events": ["job.succeeded"]},
        format="json",
    )
    assert made.status_code == 201
    body = made.json()
    assert body["secret"] == Webhook.objects.get().secret
    again = api.get(f"/api/v1/webhooks/{body['id']}/").json()
    assert "secret" not in again and again["url"] == "https://hooks.example.com/t"
    assert all("secret" not in hook for hook in api.get("/api/v1/webhooks/").json())


def test_a_private_url_is_a_400_on_url(owner: User, client_for: Any) -> None:
    made = client_for(owner).post(
        "/api/v1/webhooks/",
        {"url": "http://127.0.0.1:6379/", "events": ["job.succeeded"]},
        format="json",
    )
    assert made.status_code == 400 and list(made.json()["errors"]) == ["url"]


def test_another_users_webhook_is_a_404(owner: User, outsider: User, client_for: Any) -> None:
    made = (
        client_for(owner)
        .post(
            "/api/v1/webhooks/",
            {"url": "https://hooks.example.com/t", "events": ["job.succeeded"]},
            format="json",
        )
        .json()
    )
    api = client_for(outsider)
    for path in ("", "deliveries/"):
        assert api.get(f"/api/v1/webhooks/{made['id']}/{path}").status_code == 404
    assert api.post(f"/api/v1/webhooks/{made['id']}/test/").status_code == 404
    assert api.delete(f"/api/v1/webhooks/{made['id']}/").status_code == 404
    assert Webhook.objects.filter(pk=made["id"]).exists()
    assert client_for(owner).delete(f"/api/v1/webhooks/{made['id']}/").status_code == 204
    assert not Webhook.objects.exists()


def test_the_page_adds_a_webhook_and_shows_its_secret_once(owner: User) -> None:
    browser = Client()
    browser.force_login(owner)
    made = browser.post(
        reverse("notifications:webhook-create"),
        {"url": "https://hooks.example.com/page", "events": ["job.failed", "job.idle"]},
    )
    assert made.status_code == 200 and made["Cache-Control"] == "no-store"
    secret = Webhook.objects.get().secret
    assert secret in made.content.decode()
    assert secret not in browser.get(reverse("notifications:list")).content.decode()


def test_creating_and_deleting_a_webhook_is_audited(owner: User, client_for: Any) -> None:
    api = client_for(owner)
    made = api.post(
        "/api/v1/webhooks/",
        {"url": "https://hooks.example.com/audit", "events": ["job.failed"]},
        format="json",
    ).json()
    assert api.delete(f"/api/v1/webhooks/{made['id']}/").status_code == 204
    events = list(
        AuditEvent.objects.filter(actor=owner, action__startswith="webhook_").order_by("pk")
    )
    assert [(event.action, event.target, event.details["webhook"]) for event in events] == [
        (AuditEvent.Action.WEBHOOK_CREATED, "https://hooks.example.com/audit", made["id"]),
        (AuditEvent.Action.WEBHOOK_DELETED, "https://hooks.example.com/audit", made["id"]),
    ]
    assert events[0].details["events"] == ["job.failed"]
    # The secret never reaches the audit log.
    assert made["secret"] not in str([event.details for event in events])
