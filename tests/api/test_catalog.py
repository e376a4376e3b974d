"""GET /api/v1/datasets/ and /models/: the built-ins, your own, and your team's; nobody else's."""

from __future__ import annotations

from django.contrib.auth.models import User

from portal.catalog.models import Dataset, ModelArchitecture
from tests.api.conftest import TokenClient


def private_dataset(owner: User, slug: str) -> Dataset:
    return Dataset.objects.create(
        slug=slug,
        name=slug.title(),
        owner=owner,
        team=owner.teams.first(),
        state=Dataset.State.READY,
        uri=f"file:///srv/data/{slug}.csv",
        sha256="0" * 64,
        target="label",
    )


def test_it_lists_builtin_and_own_datasets_but_not_others(
    client_for: TokenClient,
    iris: Dataset,
    owner: User,
    outsider: User,
) -> None:
    mine = private_dataset(owner, "mine")
    private_dataset(outsider, "theirs")

    body = client_for(owner).get("/api/v1/datasets/").json()

    assert {d["slug"] for d in body["results"]} == {iris.slug, mine.slug}
    listed = next(d for d in body["results"] if d["slug"] == "mine")
    assert listed["owner"] == "owner"
    assert listed["state"] == "ready"
    assert "uri" not in listed


def test_a_teammate_sees_the_teams_datasets(
    client_for: TokenClient,
    iris: Dataset,
    owner: User,
    teammate: User,
) -> None:
    private_dataset(owner, "shared")

    body = client_for(teammate).get("/api/v1/datasets/").json()

    assert "shared" in {d["slug"] for d in body["results"]}
    assert next(d for d in body["results"] if d["slug"] == "shared")["team"] == "vision"


def test_it_lists_the_builtin_model(
    client_for: TokenClient, mlp: ModelArchitecture, outsider: User
) -> None:
    body = client_for(outsider).get("/api/v1/models/").json()

    assert [m["id"] for m in body["results"]] == [mlp.pk]
    assert body["results"][0]["family"] == "mlp"
    assert body["results"][0]["is_public"] is True
    assert body["results"][0]["owner"] is None
