"""Reads for accounts: who is an admin, a user's teams, a user's API tokens, quotas."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db.models import Prefetch, QuerySet
from django.http import Http404

from portal.accounts.limits import Limits
from portal.accounts.models import ApiToken, Quota, Team


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


def teams_visible_to(user: AbstractBaseUser) -> QuerySet[Team]:
    """Every team for admins; otherwise the user's own. Members and quota loaded."""
    teams = Team.objects.all() if user_is_admin(user) else Team.objects.filter(members=user.pk)
    return teams.select_related("quota").prefetch_related(
        Prefetch("members", queryset=User.objects.order_by("username"))
    )


def team_get_visible(*, user: AbstractBaseUser, team_id: int) -> Team:
    """The team, if `user` is a member or an admin; Http404 otherwise (ids reveal nothing)."""
    team = teams_visible_to(user).filter(pk=team_id).first()
    if team is None:
        raise Http404("No such team.")
    return team


def quota_of(holder: User | Team) -> Quota | None:
    """The quota row an admin set for `holder`, if any."""
    owner = {"team": holder.pk} if isinstance(holder, Team) else {"user": holder.pk}
    return Quota.objects.filter(**owner).first()


def limits_of(holder: User | Team) -> Limits:
    """What applies to `holder`: its quota row over the cluster-wide defaults."""
    return Limits.of(quota_of(holder))
