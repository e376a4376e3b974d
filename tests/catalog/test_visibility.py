"""Which datasets and models a user may see: public, own, their teams'; admins all."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from portal.catalog.models import Dataset, ModelArchitecture
from portal.catalog.selectors import datasets_visible_to, models_visible_to


@pytest.fixture
def catalog(owner, teammate, outsider, iris, mlp):
    team = owner.teams.get()
    mine = Dataset.objects.create(slug="mine", name="Mine", owner=owner, target="y")
    ours = Dataset.objects.create(slug="ours", name="Ours", owner=owner, team=team, target="y")
    theirs = Dataset.objects.create(slug="theirs", name="Theirs", owner=outsider, target="y")
    model = ModelArchitecture.objects.create(
        slug="team-mlp", name="Team MLP", family="mlp", owner=teammate, team=team
    )
    return {"mine": mine, "ours": ours, "theirs": theirs, "model": model}


def slugs(queryset) -> set[str]:
    return set(queryset.values_list("slug", flat=True))


def test_the_owner_sees_public_own_and_team_datasets(owner, catalog):
    assert slugs(datasets_visible_to(owner)) == {"iris", "mine", "ours"}


def test_a_teammate_sees_the_team_dataset_but_not_the_owners_private_one(teammate, catalog):
    assert slugs(datasets_visible_to(teammate)) == {"iris", "ours"}


def test_an_outsider_sees_public_and_own_only(outsider, catalog):
    assert slugs(datasets_visible_to(outsider)) == {"iris", "theirs"}
    assert slugs(models_visible_to(outsider)) == {"mlp"}


def test_team_models_are_shared(owner, catalog):
    assert slugs(models_visible_to(owner)) == {"mlp", "team-mlp"}


def test_an_admin_sees_everything(admin_user, catalog):
    assert slugs(datasets_visible_to(admin_user)) == {"iris", "mine", "ours", "theirs"}


def test_an_anonymous_user_sees_nothing(catalog):
    assert not datasets_visible_to(AnonymousUser()).exists()
    assert not models_visible_to(AnonymousUser()).exists()
