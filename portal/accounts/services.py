"""Writes for accounts: personal access tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import User
from django.utils import timezone

from portal.accounts.models import ApiToken
from portal.audit.models import AuditEvent
from portal.audit.services import audit_record

TOKEN_PREFIX = "ty_"  # noqa: S105 - a public marker, not a secret


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    # The only time the full token exists outside the user's hands.
    plaintext: str


def api_token_create(
    *,
    user: User,
    name: str,
    scope: str = ApiToken.Scope.WRITE,
    expires_in: timedelta | None = timedelta(days=90),
) -> IssuedToken:
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=prefix,
        digest=token_digest(secret),
        scope=scope,
        expires_at=timezone.now() + expires_in if expires_in else None,
    )
    audit_record(
        action=AuditEvent.Action.TOKEN_CREATED,
        actor=user,
        target=f"token {prefix} ({name})",
        details={
            "scope": scope,
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        },
    )
    return IssuedToken(token=token, plaintext=f"{TOKEN_PREFIX}{prefix}_{secret}")


def api_token_revoke(*, token: ApiToken) -> None:
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if revoked:
        audit_record(
            action=AuditEvent.Action.TOKEN_REVOKED,
            actor=token.user,
            target=f"token {token.prefix} ({token.name})",
        )


def api_token_authenticate(plaintext: str) -> ApiToken | None:
    """The usable token that `plaintext` names, or None. Compares digests in constant time."""
    if not plaintext.startswith(TOKEN_PREFIX):
        return None
    prefix, _, secret = plaintext[len(TOKEN_PREFIX) :].partition("_")
    if not prefix or not secret:
        return None
    token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    if token is None or not secrets.compare_digest(token.digest, token_digest(secret)):
        return None
    if not token.is_usable() or not token.user.is_active:
        return None
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token
