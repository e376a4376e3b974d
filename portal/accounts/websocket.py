"""WebSocket authentication: the browser's session, or a script's token in the header."""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.contrib.auth.models import AbstractBaseUser

from portal.accounts.services import api_token_authenticate


@database_sync_to_async
def _user_for_token(plaintext: str) -> AbstractBaseUser | None:
    token = api_token_authenticate(plaintext)
    return token.user if token else None


class _TokenHeaderMiddleware:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        headers = dict(scope.get("headers", []))
        value = headers.get(b"authorization", b"").decode("latin-1").split()
        if len(value) == 2 and value[0].lower() in {"bearer", "token"}:
            user = await _user_for_token(value[1])
            if user is not None:
                scope = dict(scope, user=user)
        return await self.inner(scope, receive, send)


def WebSocketAuthMiddleware(inner: Any) -> Any:
    # The session stack runs first and sets an anonymous user; a valid token then replaces it.
    return AuthMiddlewareStack(_TokenHeaderMiddleware(inner))
