"""Sending one webhook request: the signature, the URL rules, and the bounded HTTP call.

Signature: `X-Trainyard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`, the HMAC keyed by
the webhook's secret over `"<t>." + body` (the exact bytes sent). A receiver recomputes it,
compares in constant time, and refuses a `t` too far from its clock (replays). `signature`
and `signature_valid` are the two sides; tests and docs/notifications.md use them.

URL safety (SSRF): the portal sends these requests from inside the cluster's network, to a
URL a user typed. Left open, that lets any user make the control plane call internal services
(the Redis or PostgreSQL ports, a cloud metadata endpoint at 169.254.169.254, an admin page on
localhost) and read how they answer through the delivery log. So a URL must be http(s), and
every address its host resolves to must be public: loopback, private, link-local, multicast,
reserved and unspecified addresses are refused unless TRAINYARD_WEBHOOK_ALLOW_PRIVATE is set
(development, tests). The check is made on the addresses resolved at send time, and the
request goes to the checked address (Host header and TLS SNI keep the name), so a DNS answer
that changes between the check and the connection (rebinding) cannot slip past. Redirects are
not followed, time is bounded, and at most TRAINYARD_WEBHOOK_MAX_RESPONSE_BYTES of the answer
are read.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from django.conf import settings

SIGNATURE_HEADER = "X-Trainyard-Signature"
EVENT_HEADER = "X-Trainyard-Event"
DELIVERY_HEADER = "X-Trainyard-Delivery"
USER_AGENT = "Trainyard-Webhooks/1"


class UrlRefused(ValueError):
    """A webhook URL the portal will not call; the message says why."""


def signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Trainyard-Signature` value for `body` sent at `timestamp`."""
    signed = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def signature_valid(
    *, secret: str, header: str, body: bytes, tolerance_s: float = 300.0, now: float | None = None
) -> bool:
    """Whether `header` signs `body` with `secret`, made within `tolerance_s` of `now`: what
    a receiver checks (as a reference implementation)."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = signature(secret=secret, timestamp=timestamp, body=body)
    return hmac.compare_digest(expected, header.strip())


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a webhook's (without resolving it), or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"Not a URL: {exc}."
    if parts.scheme not in {"http", "https"}:
        return "A webhook URL must start with http:// or https://."
    if not parts.hostname:
        return "A webhook URL needs a host."
    if parts.username or parts.password:
        return "Put no credentials in a webhook URL; verify the signature instead."
    if port == 0:
        return "Port 0 cannot be called."
    if not settings.TRAINYARD_WEBHOOK_ALLOW_PRIVATE:
        try:
            address = ipaddress.ip_address(parts.hostname)
        except ValueError:
            return None
        if not _public(address):
            return f"{address} is a private or local address; webhooks go to public hosts."
    return None


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def resolve_checked(host: str, port: int) -> str:
    """One address of `host` to connect to, after checking every address it resolves to
    (UrlRefused for an unknown host or, unless allowed, a non-public address)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UrlRefused(f"Cannot resolve {host}: {exc}") from exc
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise UrlRefused(f"{host} resolves to no address.")
    if not settings.TRAINYARD_WEBHOOK_ALLOW_PRIVATE:
        refused = [str(a) for a in addresses if not _public(a)]
        if refused:
            raise UrlRefused(
                f"{host} resolves to {', '.join(refused)}: private or local addresses are "
                "refused (TRAINYARD_WEBHOOK_ALLOW_PRIVATE)."
            )
    return str(addresses[0])


@dataclass(frozen=True)
class SendResult:
    """How one try went: `ok` for a 2xx answer; `status` None when no answer came."""

    ok: bool
    status: int | None
    error: str


def send(*, url: str, secret: str, event: str, delivery: str, body: bytes) -> SendResult:
    """POST `body` to `url`, signed; never raises for what the network or receiver does."""
    if (problem := url_problem(url)) is not None:
        return SendResult(ok=False, status=None, error=problem)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        address = resolve_checked(host, port)
    except UrlRefused as exc:
        return SendResult(ok=False, status=None, error=str(exc))
    target = httpx.URL(url).copy_with(host=address)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Host": parts.netloc.rsplit("@", 1)[-1],
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery,
        SIGNATURE_HEADER: signature(secret=secret, timestamp=int(time.time()), body=body),
    }
    limit = settings.TRAINYARD_WEBHOOK_MAX_RESPONSE_BYTES
    timeout = httpx.Timeout(settings.TRAINYARD_WEBHOOK_TIMEOUT_S)
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client,
            client.stream(
                "POST", target, content=body, headers=headers, extensions=extensions
            ) as response,
        ):
            read = 0
            # The answer is read (so the connection ends cleanly) but not kept past the limit.
            for chunk in response.iter_raw():
                read += len(chunk)
                if read >= limit:
                    break
            status = response.status_code
    except httpx.HTTPError as exc:
        return SendResult(ok=False, status=None, error=f"{type(exc).__name__}: {exc}"[:500])
    if 200 <= status < 300:
        return SendResult(ok=True, status=status, error="")
    return SendResult(ok=False, status=status, error=f"The receiver answered {status}.")
