"""Reads for the catalog: which datasets and model architectures a user may see and use."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404

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


def dataset_get_visible(*, user: AbstractBaseUser | AnonymousUser, dataset_id: int) -> Dataset:
    """The dataset version, or Http404 for one the user may not see (never 403: ids say
    nothing)."""
    dataset = (
        datasets_visible_to(user).select_related("owner", "team").filter(pk=dataset_id).first()
    )
    if dataset is None:
        raise Http404("No such dataset.")
    return dataset


def datasets_filtered(
    datasets: QuerySet[Dataset],
    *,
    name: str | None = None,
    state: str | None = None,
    latest: bool = False,
) -> QuerySet[Dataset]:
    """`name` matches exactly (case-insensitive); `latest` keeps each owner's newest version
    of each name."""
    if name:
        datasets = datasets.filter(name__iexact=name)
    if state:
        datasets = datasets.filter(state=state)
    if latest:
        newer = Dataset.objects.filter(
            owner=OuterRef("owner"), name=OuterRef("name"), version__gt=OuterRef("version")
        )
        datasets = datasets.filter(~Exists(newer))
    return datasets.order_by("name", "-version", "-pk")


def dataset_versions(
    *, user: AbstractBaseUser | AnonymousUser, dataset: Dataset
) -> QuerySet[Dataset]:
    """Every version of the dataset's name by its owner that the user can see, newest first."""
    return (
        datasets_visible_to(user)
        .filter(owner=dataset.owner_id, name=dataset.name)
        .order_by("-version")
    )
