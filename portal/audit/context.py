"""The client address of the request being handled, for services that record audit events.

Services take domain arguments, not requests; the address reaches them through a context
variable that `ClientAddressMiddleware` sets for the length of each request.
"""

from __future__ import annotations

from contextvars import ContextVar

from django.conf import settings
from django.http import HttpRequest

_client_ip: ContextVar[str | None] = ContextVar("trainyard_client_ip", default=None)


def client_ip_of(request: HttpRequest | None) -> str | None:
    """REMOTE_ADDR, or the address the trusted proxies put in X-Forwarded-For."""
    if request is None:
        return None
    proxies = int(settings.AXES_IPWARE_PROXY_COUNT or 0)
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR", ""))
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if len(hops) >= proxies:
            return hops[-proxies]
    address = request.META.get("REMOTE_ADDR")
    return str(address) if address else None


def current_client_ip() -> str | None:
    return _client_ip.get()


def set_current_client_ip(value: str | None) -> object:
    return _client_ip.set(value)


def reset_current_client_ip(token: object) -> None:
    _client_ip.reset(token)  # type: ignore[arg-type]
