"""The WebSocket handshake's origin check: scheme, host and port, not the host alone.

Browsers send cookies with a cross-site WebSocket handshake, so a page on another origin could
read a user's job stream with their session. Channels' `AllowedHostsOriginValidator` compares
only the host: a page on `http://127.0.0.1:8001` passed for a portal on port 8000. Here an
origin must be the portal's own (the scheme that matches the socket's, and exactly the host
and port the browser addressed in `Host`, which must be an allowed host), or one listed in
TRAINYARD_WEBSOCKET_ORIGINS or CSRF_TRUSTED_ORIGINS (for a portal behind a proxy that
rewrites `Host` or terminates TLS).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import validate_host

logger = logging.getLogger(__name__)

Origin = tuple[str, str, int]
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PAGE_SCHEME = {"ws": "http", "wss": "https"}


def parse_origin(value: str) -> Origin | None:
    """`scheme://host[:port]` as (scheme, host, port) with the default port filled in."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in {"", "/"}:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def _own_origin(scope: dict[str, Any], host_header: str | None) -> Origin | None:
    """The origin of a page served from the address this handshake was sent to."""
    if not host_header:
        return None
    scheme = _PAGE_SCHEME.get(str(scope.get("scheme", "ws")), "http")
    parsed = parse_origin(f"{scheme}://{host_header}")
    if parsed is None or not validate_host(parsed[1], settings.ALLOWED_HOSTS):
        return None
    return parsed


def origin_allowed(scope: dict[str, Any]) -> bool:
    headers = {name.lower(): value for name, value in scope.get("headers", [])}
    raw_origin = headers.get(b"origin")
    if raw_origin is None:
        return False
    origin = parse_origin(raw_origin.decode("latin1"))
    if origin is None:
        return False
    raw_host = headers.get(b"host")
    if origin == _own_origin(scope, raw_host.decode("latin1") if raw_host else None):
        return True
    configured = [*settings.TRAINYARD_WEBSOCKET_ORIGINS, *settings.CSRF_TRUSTED_ORIGINS]
    return origin in {parse_origin(item) for item in configured}


class SameOriginValidator:
    """ASGI middleware: hand an allowed handshake on, deny any other before it is accepted."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            logger.warning(
                "refused a WebSocket to %s from origin %r",
                scope.get("path"),
                dict(scope.get("headers", [])).get(b"origin", b"").decode("latin1"),
            )
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
