"""What every WebSocket consumer shares: who is connected, and how to refuse them.

Refusals accept the socket and then close it with an application code, because a socket
closed before it is accepted reaches the browser as a bare 1006, and a page needs to tell
"sign in again" (4401) and "no such thing" (4404) from a network blip it should retry.
"""

from __future__ import annotations

import json
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from portal.lib.realtime import json_finite

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404


def scope_user(scope: dict[str, Any]) -> AbstractBaseUser | None:
    """The signed-in user of a connection (session or token), or None for an anonymous one."""
    user = scope.get("user", AnonymousUser())
    return user if user is not None and user.is_authenticated else None


async def refuse(consumer: AsyncJsonWebsocketConsumer, code: int) -> None:
    """Accept, then close with `code`, so the page sees why (see the module docstring)."""
    await consumer.accept()
    await consumer.close(code=code)


class JsonFiniteConsumer(AsyncJsonWebsocketConsumer):
    """A JSON consumer that sends NaN and infinities as null (the browser's JSON.parse would
    reject them) and ignores whatever the client sends: pages only listen."""

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        return json.dumps(json_finite(content))

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        return None
