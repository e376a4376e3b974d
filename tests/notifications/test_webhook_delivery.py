"""Webhook deliveries end to end: a job finishes, a real Celery worker POSTs the signed event
to a real receiver on 127.0.0.1, retries with backoff when it fails, and the delivery log (API
and page) says how it went."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from portal.jobs.models import Job
from portal.jobs.services import attempt_exited, attempt_started
from portal.notifications import services, webhooks
from portal.notifications.models import Event, Notification, WebhookDelivery
from tests.factories import make_attempt, make_job
from tests.jobs.helpers import exited, node, placements, started
from tests.notifications.receiver import webhook_receiver

pytestmark = pytest.mark.django_db(transaction=True)


def finish(owner: User, *, exit_code: int = 0) -> Job:
    """A running job on a node of its own, whose only attempt exits with `exit_code`."""
    job = make_job(owner, state=Job.State.RUNNING)
    [placement] = placements(make_attempt(job, nodes=[node(cpu_slots=1)]))
    attempt_started(started(placement))
    attempt_exited(exited(placement, exit_code, retryable=False))
    job.refresh_from_db()
    return job


def wait_for_state(delivery_id: int, state: str, timeout: float = 30.0) -> WebhookDelivery:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delivery = WebhookDelivery.objects.get(pk=delivery_id)
        if delivery.state == state:
            return delivery
        time.sleep(0.1)
    raise AssertionError(f"delivery {delivery_id} is {delivery.state}, not {state}")


def test_a_finished_job_reaches_the_receiver_signed(owner: User, control_worker: None) -> None:
    with webhook_receiver() as receiver:
        issued = services.webhook_create(
            user=owner, url=receiver.url, events=[Event.JOB_SUCCEEDED, Event.JOB_FAILED]
        )
        job = finish(owner)
        assert job.state == Job.State.SUCCEEDED

        [request] = receiver.wait_for(1)

    headers = {key.lower(): value for key, value in request.headers.items()}
    # The receiver checks the signature with the secret it was shown once.
    signature = headers["x-trainyard-signature"]
    assert webhooks.signature_valid(secret=issued.secret, header=signature, body=request.body)
    assert not webhooks.signature_valid(secret="whsec_wrong", header=signature, body=request.body)
    assert not webhooks.signature_valid(
        secret=issued.secret, header=signature, body=request.body + b" "
    )
    body = json.loads(request.body)
    assert headers["x-trainyard-event"] == body["event"] == "job.succeeded"
    assert body["data"]["subject"] == {
        "kind": "job",
        "id": job.pk,
        "name": job.name,
        "state": "succeeded",
        "reason": job.state_reason,
        "url": f"/jobs/{job.pk}/",
    }
    delivery = wait_for_state(WebhookDelivery.objects.get().pk, "succeeded")
    assert headers["x-trainyard-delivery"] == body["id"] == str(delivery.uid)
    assert (delivery.attempts, delivery.last_status_code) == (1, 204)
    # The owner has it in the portal too.
    assert Notification.objects.get(user=owner).event == "job.succeeded"


def test_a_receiver_that_fails_twice_gets_it_on_the_third_try(
    owner: User, control_worker: None, client_for: Any
) -> None:
    with webhook_receiver(failures=2) as receiver:
        issued = services.webhook_create(user=owner, url=receiver.url, events=["job.failed"])
        finish(owner, exit_code=3)

        requests = receiver.wait_for(3)
        delivery = wait_for_state(WebhookDelivery.objects.get().pk, "succeeded")

    assert len(requests) == 3
    # The same body (and delivery id) each time, each try signed afresh.
    assert len({r.body for r in requests}) == 1
    for request in requests:
        header = {k.lower(): v for k, v in request.headers.items()}["x-trainyard-signature"]
        assert webhooks.signature_valid(secret=issued.secret, header=header, body=request.body)
    assert (delivery.attempts, delivery.last_status_code, delivery.last_error) == (3, 204, "")

    # The delivery log, in the API...
    api = client_for(owner)
    listed = api.get(f"/api/v1/webhooks/{issued.webhook.pk}/deliveries/").json()
    [row] = listed["results"]
    assert (row["state"], row["attempts"], row["last_status_code"]) == ("succeeded", 3, 204)
    assert row["event"] == "job.failed" and row["next_attempt_at"] is None
    assert api.get("/api/v1/webhook-deliveries/").json()["count"] == 1


def test_a_receiver_that_always_fails_is_given_up_after_the_last_try(
    owner: User, control_worker: None
) -> None:
    with webhook_receiver(failures=100) as receiver:
        services.webhook_create(user=owner, url=receiver.url, events=["job.succeeded"])
        started_at = time.monotonic()
        finish(owner)

        delivery = wait_for_state(WebhookDelivery.objects.get().pk, "failed")
        elapsed = time.monotonic() - started_at
        time.sleep(1.0)  # no fourth try comes
        requests = list(receiver.requests)

    # TRAINYARD_WEBHOOK_MAX_ATTEMPTS = 3, waits of 0.3 s then 0.6 s between them.
    assert len(requests) == 3
    assert elapsed >= 0.9
    assert (delivery.attempts, delivery.last_status_code) == (3, 500)
    assert delivery.last_error == "The receiver answered 500." and delivery.next_attempt_at is None


def test_the_delivery_page_lists_each_delivery_with_its_state(
    owner: User, outsider: User, control_worker: None
) -> None:
    with webhook_receiver(failures=1) as receiver:
        issued = services.webhook_create(user=owner, url=receiver.url, events=["job.succeeded"])
        finish(owner)
        receiver.wait_for(2)
        delivery = wait_for_state(WebhookDelivery.objects.get().pk, "succeeded")

    client = Client()
    client.force_login(owner)
    page = client.get(reverse("notifications:webhook", args=[issued.webhook.pk]))
    assert page.status_code == 200
    content = page.content.decode()
    assert f'data-delivery-id="{delivery.pk}" data-state="succeeded"' in content
    assert '<td class="num" data-role="attempts">2</td>' in content
    assert '<td class="num" data-role="status-code">204</td>' in content
    # Another user's webhook is not there for them.
    client.force_login(outsider)
    assert client.get(reverse("notifications:webhook", args=[issued.webhook.pk])).status_code == 404
