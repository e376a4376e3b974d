"""Webhook URLs: http(s) only, and no private or local address unless allowed (SSRF)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from portal.notifications import services, webhooks


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "http:///no-host",
        "http://user:pw@example.com/hook",
        "http://127.0.0.1:6379/",
        "http://10.0.0.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_it_refuses_urls_that_are_not_public_http(owner: User, url: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        services.webhook_create(user=owner, url=url, events=["job.succeeded"])
    assert list(excinfo.value.message_dict) == ["url"]


def test_a_name_that_resolves_to_loopback_is_refused_at_send_time(settings: Any) -> None:
    settings.TRAINYARD_WEBHOOK_ALLOW_PRIVATE = False
    result = webhooks.send(
        url="http://localhost:9/hook", secret="s", event="job.succeeded", delivery="d", body=b"{}"
    )
    assert not result.ok and result.status is None
    assert "127.0.0.1" in result.error and "TRAINYARD_WEBHOOK_ALLOW_PRIVATE" in result.error


def test_private_addresses_are_allowed_when_the_setting_says_so(owner: User, settings: Any) -> None:
    settings.TRAINYARD_WEBHOOK_ALLOW_PRIVATE = True
    issued = services.webhook_create(
        user=owner, url="http://127.0.0.1:8999/hook", events=["job.succeeded"]
    )
    assert issued.webhook.url == "http://127.0.0.1:8999/hook"
    assert issued.secret.startswith("whsec_") and len(issued.secret) > 40


def test_a_public_url_is_accepted(owner: User) -> None:
    issued = services.webhook_create(
        user=owner, url="https://hooks.example.com/trainyard", events=["job.failed"]
    )
    assert issued.webhook.events == ["job.failed"]


def test_signatures_refuse_an_old_timestamp() -> None:
    header = webhooks.signature(secret="s", timestamp=1_000, body=b"{}")
    assert webhooks.signature_valid(secret="s", header=header, body=b"{}", now=1_100)
    assert not webhooks.signature_valid(secret="s", header=header, body=b"{}", now=2_000)
    assert not webhooks.signature_valid(secret="s", header="v1=abc", body=b"{}", now=1_000)


def test_backoff_doubles_and_is_capped(settings: Any) -> None:
    settings.TRAINYARD_WEBHOOK_BACKOFF_S = 10.0
    settings.TRAINYARD_WEBHOOK_BACKOFF_MAX_S = 60.0
    assert [services.backoff_s(n) for n in (1, 2, 3, 4, 5)] == [10.0, 20.0, 40.0, 60.0, 60.0]
