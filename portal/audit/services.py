"""Writes for the audit log."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser

from portal.audit.context import current_client_ip
from portal.audit.models import AuditEvent

_UNSET = object()


def audit_record(
    *,
    action: AuditEvent.Action,
    actor: AbstractBaseUser | AnonymousUser | None = None,
    actor_name: str = "",
    target: str = "",
    ip_address: str | object | None = _UNSET,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one event. The address defaults to the client of the request being handled."""
    user = actor if isinstance(actor, AbstractBaseUser) and actor.pk is not None else None
    name = actor_name or (user.get_username() if user is not None else "")
    return AuditEvent.objects.create(
        action=action,
        actor=user,
        actor_name=name[:150],
        target=target[:200],
        ip_address=current_client_ip() if ip_address is _UNSET else ip_address,
        details=details or {},
    )
