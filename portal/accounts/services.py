"""Writes for accounts: personal access tokens; teams, their members and quotas (admins)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from portal.accounts.limits import PRIORITY_CEILING, PRIORITY_FLOOR, QUOTA_FIELDS
from portal.accounts.models import ApiToken, Quota, Team
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


# ---- teams and quotas (admins) ---------------------------------------------------------------


def _team_audit(*, by: User, team: Team | str, change: str, **details: Any) -> None:
    audit_record(
        action=AuditEvent.Action.TEAM_CHANGED,
        actor=by,
        target=f"team {team}",
        details={"change": change, **details},
    )


def _team_name_errors(name: str, *, exclude: int | None = None) -> None:
    name = name.strip()
    if not name:
        raise ValidationError({"name": ["A team needs a name."]})
    taken = Team.objects.filter(name__iexact=name)
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        raise ValidationError({"name": [f"There is already a team named {name}."]})


@transaction.atomic
def team_create(*, name: str, by: User) -> Team:
    """A new team without members; ValidationError keyed `name` for a blank or taken name."""
    _team_name_errors(name)
    team = Team.objects.create(name=name.strip())
    _team_audit(by=by, team=team, change="created")
    return team


@transaction.atomic
def team_rename(*, team: Team, name: str, by: User) -> Team:
    _team_name_errors(name, exclude=team.pk)
    old = team.name
    team.name = name.strip()
    team.save(update_fields=["name"])
    _team_audit(by=by, team=team, change="renamed", old_name=old)
    return team


@transaction.atomic
def team_delete(*, team: Team, by: User) -> None:
    """Delete `team` and its quota. Its jobs and datasets stay, with no team (SET_NULL)."""
    name = team.name
    team.delete()
    _team_audit(by=by, team=name, change="deleted")


@transaction.atomic
def team_member_add(*, team: Team, user: User, by: User) -> None:
    if not team.members.filter(pk=user.pk).exists():
        team.members.add(user)
        _team_audit(by=by, team=team, change="member added", member=user.get_username())


@transaction.atomic
def team_member_remove(*, team: Team, user: User, by: User) -> None:
    """Remove `user` from `team`. Jobs already charged to the team stay charged to it."""
    if team.members.filter(pk=user.pk).exists():
        team.members.remove(user)
        _team_audit(by=by, team=team, change="member removed", member=user.get_username())


QuotaValues = dict[str, int | float | None]


@transaction.atomic
def quota_set(*, holder: User | Team, values: QuotaValues, by: User) -> Quota:
    """Set the quota of a user or a team: each field of `values` (`QUOTA_FIELDS`; None
    blanks it, so the cluster default applies); fields left out keep their value. Raises
    ValidationError keyed by field for a negative limit or an inverted priority range."""
    unknown = set(values) - set(QUOTA_FIELDS)
    if unknown:
        raise ValidationError({name: ["Not a quota field."] for name in sorted(unknown)})
    owner = {"team": holder} if isinstance(holder, Team) else {"user": holder}
    # Locked: the scheduler pass reads quotas under the same lock (portal.jobs.quotas).
    quota = Quota.objects.select_for_update().filter(**owner).first() or Quota(**owner)
    errors: dict[str, list[str]] = {}
    for name, value in values.items():
        if value is None:
            setattr(quota, name, None)
            continue
        if name.endswith("_priority"):
            if not PRIORITY_FLOOR <= value <= PRIORITY_CEILING:
                errors[name] = [f"A priority is from {PRIORITY_FLOOR} to {PRIORITY_CEILING}."]
            setattr(quota, name, int(value))
        else:
            if value < 0:
                errors[name] = ["A limit cannot be negative."]
            setattr(quota, name, value if name.endswith("_hours") else int(value))
    if (
        quota.min_priority is not None
        and quota.max_priority is not None
        and quota.min_priority > quota.max_priority
    ):
        errors["min_priority"] = ["The lowest priority cannot be above the highest."]
    if errors:
        raise ValidationError(errors)
    quota.updated_at = timezone.now()
    quota.save()
    audit_record(
        action=AuditEvent.Action.QUOTA_SET,
        actor=by,
        target=f"quota of {'team ' if isinstance(holder, Team) else ''}{holder}",
        details={name: getattr(quota, name) for name in QUOTA_FIELDS},
    )
    return quota
