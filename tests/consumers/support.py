"""Helpers for tests that open WebSockets against the real ASGI app and channel layer.

Tests are synchronous (`transactional_db`, so consumers see committed rows) and run their
async bodies through `async_to_sync`; consumers' database work then runs on the test's thread.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, User
from django.test import Client
from pytest_django.fixtures import Settings

from portal.asgi import application

ORIGIN = b"http://127.0.0.1"
# A browser's handshake names the address it connects to; the origin check compares with it.
HOST = b"127.0.0.1"


@pytest.fixture
def isolated_channel_layer(settings: Settings) -> Iterator[str]:
    """A channel-layer prefix of this test's own, so other suites sharing the Redis server
    (their job ids overlap ours) never deliver into our groups."""
    prefix = f"{settings.TRAINYARD_STREAM_PREFIX}-asgi-{uuid.uuid4().hex[:8]}"
    layers = dict(settings.CHANNEL_LAYERS)
    default = dict(layers["default"])
    default["CONFIG"] = {**default["CONFIG"], "prefix": prefix}
    # Changing the setting makes Channels drop its cached layer.
    settings.CHANNEL_LAYERS = {**layers, "default": default}
    yield prefix
    layer = get_channel_layer()
    if layer is not None:
        # Group memberships outlive the test by a day otherwise.
        async_to_sync(layer.flush)()


def session_headers(user: AbstractBaseUser | None) -> list[tuple[bytes, bytes]]:
    """What a browser sends: its origin and, when signed in, the session cookie."""
    headers = [(b"origin", ORIGIN), (b"host", HOST)]
    if user is not None:
        client = Client()
        client.force_login(cast(User, user))
        cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    return headers


def communicator(path: str, headers: list[tuple[bytes, bytes]]) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, path, headers=headers)


async def open_socket(path: str, headers: list[tuple[bytes, bytes]]) -> WebsocketCommunicator:
    socket = communicator(path, headers)
    connected, _ = await socket.connect(timeout=5)
    assert connected, f"{path} was refused before it was accepted"
    return socket


async def close_code(path: str, headers: list[tuple[bytes, bytes]]) -> int:
    """Open `path` and return the code the server closes it with (it must close it)."""
    socket = communicator(path, headers)
    try:
        connected, code = await socket.connect(timeout=5)
        if not connected:
            return int(code)
        message = await socket.receive_output(timeout=5)
        assert message["type"] == "websocket.close", message
        return int(message["code"])
    finally:
        await socket.disconnect()


async def receive_until(
    socket: WebsocketCommunicator, message_type: str, *, timeout: float = 5
) -> dict[str, Any]:
    """The next message of `message_type`, skipping others (a `state` before `metrics`)."""
    while True:
        message: dict[str, Any] = await socket.receive_json_from(timeout=timeout)
        if message["type"] == message_type:
            return message
