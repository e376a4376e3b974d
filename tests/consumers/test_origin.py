"""The WebSocket handshake checks the page's origin on scheme, host and port."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User

from tests.consumers.support import communicator, session_headers
from tests.factories import make_job

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("isolated_channel_layer"),
]


def handshake(path: str, headers: list[tuple[bytes, bytes]]) -> bool:
    async def run() -> bool:
        socket = communicator(path, headers)
        try:
            connected, _ = await socket.connect(timeout=5)
            return bool(connected)
        finally:
            await socket.disconnect()

    return async_to_sync(run)()


def browser(user: User, *, origin: str, host: str) -> list[tuple[bytes, bytes]]:
    cookie = [value for name, value in session_headers(user) if name == b"cookie"]
    return [
        (b"origin", origin.encode()),
        (b"host", host.encode()),
        *[(b"cookie", c) for c in cookie],
    ]


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://127.0.0.1:8001", "127.0.0.1:8000"),  # another port on the same host
        ("http://localhost:8007", "localhost:8000"),
        ("http://127.0.0.1", "127.0.0.1:8000"),  # port 80 is not port 8000
        ("https://127.0.0.1:8000", "127.0.0.1:8000"),  # another scheme
        ("http://evil.example:8000", "127.0.0.1:8000"),
        ("http://127.0.0.1:8000", "evil.example:8000"),  # a Host that is not allowed
        ("null", "127.0.0.1:8000"),
    ],
)
def test_a_foreign_origin_is_refused_at_the_handshake(owner: User, origin: str, host: str) -> None:
    job = make_job(owner)
    assert handshake(f"/ws/jobs/{job.pk}/", browser(owner, origin=origin, host=host)) is False


def test_a_handshake_without_an_origin_is_refused(owner: User) -> None:
    job = make_job(owner)
    headers = [h for h in browser(owner, origin="x", host="127.0.0.1") if h[0] != b"origin"]
    assert handshake(f"/ws/jobs/{job.pk}/", headers) is False


def test_the_portals_own_origin_with_its_port_is_accepted(owner: User) -> None:
    job = make_job(owner)
    headers = browser(owner, origin="http://127.0.0.1:8000", host="127.0.0.1:8000")
    assert handshake(f"/ws/jobs/{job.pk}/", headers) is True


def test_an_origin_listed_in_the_settings_is_accepted(owner: User, settings: Any) -> None:
    # Behind a TLS proxy the browser's page is https on 443 while the socket reaches daphne.
    settings.TRAINYARD_WEBSOCKET_ORIGINS = ["https://portal.example"]
    job = make_job(owner)
    headers = browser(owner, origin="https://portal.example", host="127.0.0.1:8000")
    assert handshake(f"/ws/jobs/{job.pk}/", headers) is True
    other = browser(owner, origin="https://portal.example:8443", host="127.0.0.1:8000")
    assert handshake(f"/ws/jobs/{job.pk}/", other) is False
