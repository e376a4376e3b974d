"""POST /api/v1/datasets/: the file is streamed to storage with its SHA-256, the version is
`uploaded`, validation is queued on commit and turns it `ready` with its inferred schema."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User

from portal.catalog.models import Dataset
from portal.catalog.services import VALIDATE_TASK
from portal.catalog.tasks import validate_dataset
from tests.api.conftest import TokenClient, Upload
from tests.factories import small_csv
from workers.storage import local_path_for


def stored_files(storage_root: Path) -> list[Path]:
    return sorted(p for p in storage_root.rglob("*") if p.is_file())


def test_an_upload_is_stored_with_its_checksum_and_answers_uploaded(
    upload: Upload, owner: User, storage_root: Path
) -> None:
    content = small_csv()
    response = upload(owner, content, "plants.csv", name="plants")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["version"], body["state"]) == ("plants", 1, "uploaded")
    assert (body["format"], body["task"], body["target"]) == ("csv", "classification", "label")
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert body["size_bytes"] == len(content)
    assert body["team"] == "vision" or body["team"] is None
    dataset = Dataset.objects.get(pk=body["id"])
    path = local_path_for(dataset.uri)
    assert path.read_bytes() == content
    # Named by upload id, not by the user's file name, and nothing temporary is left.
    assert path.name != "plants.csv" and path.suffix == ".csv"
    assert stored_files(storage_root) == [path]
    assert dataset.preprocessing == {
        "missing": "drop",
        "normalization": "standard",
        "split_seed": 0,
        "val_fraction": 0.2,
        "test_fraction": 0.0,
    }


def test_validation_is_queued_after_the_commit(
    upload: Upload, owner: User, django_capture_on_commit_callbacks: Any, broker: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(owner, small_csv())
    assert response.status_code == 201
    queued = [task for task in broker.take("control") if task.name == VALIDATE_TASK]
    assert [task.args for task in queued] == [[response.json()["id"]]]


def test_validation_makes_it_ready_with_schema_preview_and_chart(
    upload: Upload, client_for: TokenClient, owner: User
) -> None:
    response = upload(owner, small_csv(), "plants.csv", normalization="minmax", split_seed="3")
    dataset_id = response.json()["id"]

    validate_dataset(dataset_id)

    body = client_for(owner).get(f"/api/v1/datasets/{dataset_id}/").json()
    assert body["state"] == "ready", body["state_reason"]
    assert [column["name"] for column in body["schema"]] == ["height", "width", "label"]
    assert [feature["name"] for feature in body["features"]] == ["height", "width"]
    assert body["classes"] == ["big", "small"]
    assert body["num_rows"] == 12
    assert body["preview"][0]["height"] == "0.5"
    assert body["chart"]["kind"] == "classes"
    assert body["preprocessing"]["normalization"] == "minmax"
    assert body["preprocessing"]["split_seed"] == 3
    assert body["validated_at"] is not None
    assert body["versions"] == [
        {
            "id": dataset_id,
            "version": 1,
            "state": "ready",
            "num_rows": 12,
            "created_at": body["created_at"],
        }
    ]
    # The stored spec is the node's contract.
    assert Dataset.objects.get(pk=dataset_id).node_spec().preprocessing.split_seed == 3


def test_validating_twice_does_nothing_the_second_time(upload: Upload, owner: User) -> None:
    dataset_id = upload(owner, small_csv()).json()["id"]
    validate_dataset(dataset_id)
    first = Dataset.objects.get(pk=dataset_id)

    validate_dataset(dataset_id)

    again = Dataset.objects.get(pk=dataset_id)
    assert (again.state, again.validated_at) == (Dataset.State.READY, first.validated_at)


def test_the_format_follows_the_extension_and_the_name_the_file(
    upload: Upload, owner: User
) -> None:
    body = upload(owner, small_csv(), "Measurements.CSV", name=None).json()
    assert (body["name"], body["format"], body["filename"]) == (
        "Measurements",
        "csv",
        "Measurements.CSV",
    )


def test_an_unknown_extension_without_a_format_is_refused_and_not_stored(
    upload: Upload, owner: User, storage_root: Path
) -> None:
    response = upload(owner, small_csv(), "data.txt")

    assert response.status_code == 400
    assert "format" in response.json()["errors"]
    assert stored_files(storage_root) == []
    assert not Dataset.objects.filter(owner=owner).exists()


def test_a_csv_without_a_target_is_refused(upload: Upload, owner: User) -> None:
    response = upload(owner, small_csv(), target="")
    assert response.status_code == 400
    assert response.json()["errors"]["target"] == ["Name the column to predict."]


def test_fractions_that_leave_nothing_to_train_on_are_refused(
    upload: Upload, owner: User, storage_root: Path
) -> None:
    response = upload(owner, small_csv(), val_fraction="0.6", test_fraction="0.5")
    assert response.status_code == 400
    assert "leave rows to train on" in str(response.json()["errors"])
    assert stored_files(storage_root) == []


def test_a_read_only_token_cannot_upload(
    client_for: TokenClient, owner: User, storage_root: Path
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client_for(owner, scope="read").post(
        "/api/v1/datasets/",
        {"file": SimpleUploadedFile("d.csv", small_csv()), "target": "label"},
        format="multipart",
    )
    assert response.status_code == 403
    assert stored_files(storage_root) == []


def test_npz_and_image_zips_take_their_target_from_the_file(upload: Upload, owner: User) -> None:
    npz = upload(owner, b"PK\x03\x04 not checked until validation", "seq.npz", target="ignored")
    images = upload(owner, b"PK\x03\x04", "shapes.zip", target=None)

    assert (npz.json()["format"], npz.json()["target"]) == ("npz", "y")
    assert (images.json()["format"], images.json()["target"]) == ("images", "label")
