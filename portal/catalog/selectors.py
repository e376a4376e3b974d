"""Reads for the catalog: which datasets and model architectures a user may see and use."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet

from portal.accounts.models import Team
from portal.accounts.selectors import user_is_admin
from portal.catalog.models import Dataset, ModelArchitecture


def _visible(user: AbstractBaseUser | AnonymousUser) -> Q | None:
    """Public, the user's own, and their teams'. None means everything (admins)."""
    if user_is_admin(user):
        return None
    if not user.is_authenticated:
        return Q(pk__in=[])
    # A subquery rather than a join through members, so a row is never repeated.
    teams = Team.objects.filter(members=user.pk).values("pk")
    return Q(is_public=True) | Q(owner=user.pk) | Q(team__in=teams)


def datasets_visible_to(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Dataset]:
    condition = _visible(user)
    datasets = Dataset.objects.all()
    return datasets if condition is None else datasets.filter(condition)


def models_visible_to(user: AbstractBaseUser | AnonymousUser) -> QuerySet[ModelArchitecture]:
    condition = _visible(user)
    models = ModelArchitecture.objects.all()
    return models if condition is None else models.filter(condition)
