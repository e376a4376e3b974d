"""Another user's dataset answers 404 on every route, API and pages alike, and nothing is
changed or sent; the same id works for its owner."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from portal.catalog.models import Dataset
from tests.api.conftest import TokenClient, Upload
from tests.factories import small_csv

ROUTES = [
    ("api", "get", "/api/v1/datasets/{id}/"),
    ("api", "delete", "/api/v1/datasets/{id}/"),
    ("page", "get", "/catalog/datasets/{id}/"),
    ("page", "post", "/catalog/datasets/{id}/delete/"),
    ("page", "get", "/catalog/datasets/{id}/download/"),
]


@pytest.fixture
def theirs(upload: Upload, owner: User) -> Dataset:
    return Dataset.objects.get(pk=upload(owner, small_csv(), "secret.csv").json()["id"])


@pytest.mark.parametrize(("kind", "method", "route"), ROUTES)
def test_another_users_dataset_is_not_found(
    kind: str,
    method: str,
    route: str,
    theirs: Dataset,
    outsider: User,
    client_for: TokenClient,
    client: Client,
) -> None:
    path = route.format(id=theirs.pk)
    if kind == "api":
        response = getattr(client_for(outsider), method)(path)
    else:
        client.force_login(outsider)
        response = getattr(client, method)(path)

    assert response.status_code == 404
    assert b"secret" not in response.content
    assert Dataset.objects.filter(pk=theirs.pk).exists()
    assert theirs.pk not in [
        d["id"] for d in client_for(outsider).get("/api/v1/datasets/").json()["results"]
    ]


def test_the_owner_can_read_and_download_it(theirs: Dataset, owner: User, client: Client) -> None:
    client.force_login(owner)
    page = client.get(f"/catalog/datasets/{theirs.pk}/")
    assert page.status_code == 200
    download = client.get(f"/catalog/datasets/{theirs.pk}/download/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == small_csv()  # type: ignore[attr-defined]
    assert 'filename="secret.csv"' in download["Content-Disposition"]


@pytest.mark.parametrize(("kind", "method", "route"), ROUTES)
def test_an_id_beyond_a_bigint_is_not_found_either(
    kind: str, method: str, route: str, owner: User, client_for: TokenClient, client: Client
) -> None:
    path = route.format(id=10**20)
    if kind == "api":
        response = getattr(client_for(owner), method)(path)
    else:
        client.force_login(owner)
        response = getattr(client, method)(path)
    assert response.status_code == 404
