"""Reads for accounts: who is an admin, a user's teams, a user's API tokens."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db.models import QuerySet

from portal.accounts.models import ApiToken, Team


def user_is_admin(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Active staff: they see every job and dataset, and the nodes. The one admin check."""
    # is_active as well: a deactivated admin's old session or token must not keep the power.
    return isinstance(user, User) and user.is_active and user.is_staff


def team_ids_of(user: AbstractBaseUser) -> list[int]:
    """The ids of the teams the user belongs to."""
    return list(Team.objects.filter(members=user.pk).values_list("pk", flat=True))


def api_tokens_of(user: AbstractBaseUser) -> QuerySet[ApiToken]:
    """The user's own tokens, revoked and expired ones included, newest first."""
    return ApiToken.objects.filter(user=user.pk)
