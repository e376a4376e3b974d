"""Writes for the audit log."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, User

from portal.audit.context import current_client_ip
from portal.audit.models import AuditEvent


def audit_record(
    *,
    action: AuditEvent.Action,
    actor: AbstractBaseUser | AnonymousUser | None = None,
    actor_name: str = "",
    target: str = "",
    ip_address: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one event. The address defaults to the client of the request being handled
    (`portal.audit.context`), if any."""
    user = actor if isinstance(actor, User) and actor.pk is not None else None
    name = actor_name or (user.get_username() if user is not None else "")
    return AuditEvent.objects.create(
        action=action,
        actor=user,
        actor_name=name[:150],
        target=target[:200],
        ip_address=ip_address or current_client_ip(),
        details=details or {},
    )
