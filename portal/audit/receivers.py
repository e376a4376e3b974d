"""Logins, failed logins and lockouts, recorded from Django's and django-axes's signals."""

from __future__ import annotations

from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.http import HttpRequest

from portal.audit.context import client_ip_of
from portal.audit.models import AuditEvent
from portal.audit.services import audit_record


def _where(request: HttpRequest | None) -> dict[str, Any]:
    path = getattr(request, "path", "")
    return {"path": path} if path else {}


def on_logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    audit_record(
        action=AuditEvent.Action.LOGIN,
        actor=user,
        ip_address=client_ip_of(request),
        details=_where(request),
    )


def on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # `credentials` has the password already masked by Django; only the username is kept.
    audit_record(
        action=AuditEvent.Action.LOGIN_FAILED,
        actor_name=str(credentials.get("username", "")),
        ip_address=client_ip_of(request),
        details=_where(request),
    )


def on_locked_out(
    sender: Any,
    request: HttpRequest | None,
    username: str | None,
    ip_address: str | None,
    **kwargs: Any,
) -> None:
    audit_record(
        action=AuditEvent.Action.LOCKOUT,
        actor_name=username or "",
        ip_address=ip_address or client_ip_of(request),
        details=_where(request),
    )


def connect() -> None:
    user_logged_in.connect(on_logged_in, dispatch_uid="audit-login")
    user_login_failed.connect(on_login_failed, dispatch_uid="audit-login-failed")
    user_locked_out.connect(on_locked_out, dispatch_uid="audit-lockout")
