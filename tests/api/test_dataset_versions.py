"""Uploading under a name the owner already has makes the next version, also when two
uploads of the name race; another owner's same name is their own version 1."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth.models import User
from django.db import connection

from portal.catalog.models import Dataset
from tests.api.conftest import TokenClient, Upload
from tests.factories import make_user, small_csv


def test_the_same_name_again_is_the_next_version(
    upload: Upload, client_for: TokenClient, owner: User, outsider: User
) -> None:
    first = upload(owner, small_csv(), name="plants").json()
    second = upload(owner, small_csv(20), name="plants").json()
    theirs = upload(outsider, small_csv(), name="plants").json()

    assert (first["version"], second["version"], theirs["version"]) == (1, 2, 1)
    body = client_for(owner).get(f"/api/v1/datasets/{first['id']}/").json()
    assert [v["version"] for v in body["versions"]] == [2, 1]
    latest = client_for(owner).get("/api/v1/datasets/?latest=true&name=plants").json()
    assert [d["id"] for d in latest["results"]] == [second["id"]]
    listed = client_for(owner).get("/api/v1/datasets/?name=plants").json()
    assert [d["version"] for d in listed["results"]] == [2, 1]


def test_the_list_filters_by_state(upload: Upload, client_for: TokenClient, owner: User) -> None:
    upload(owner, small_csv(), name="plants")
    body = client_for(owner).get("/api/v1/datasets/?state=uploaded").json()
    assert [d["name"] for d in body["results"]] == ["plants"]
    assert client_for(owner).get("/api/v1/datasets/?state=nonsense").status_code == 400


@pytest.mark.django_db(transaction=True)
def test_concurrent_uploads_of_one_name_get_distinct_versions(
    client_for: TokenClient, storage_root: object
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    user = make_user("racer")
    clients = [client_for(user) for _ in range(4)]
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    def send(client: object) -> None:
        try:
            barrier.wait()
            response = client.post(  # type: ignore[attr-defined]
                "/api/v1/datasets/",
                {
                    "file": SimpleUploadedFile("d.csv", small_csv()),
                    "name": "race",
                    "target": "label",
                },
                format="multipart",
            )
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [201] * 4
    versions = sorted(Dataset.objects.filter(name="race").values_list("version", flat=True))
    assert versions == [1, 2, 3, 4]
