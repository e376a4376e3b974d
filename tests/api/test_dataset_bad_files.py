"""The bad-file corpus through the API: each upload gets its own precise message, and none
leaves a file in storage. Refusals the upload itself can make (an empty file, one over the
size limit) answer at once; the rest turn the version `invalid` when validated, and the row
stays so its owner sees why.

The wording of validation's messages is `workers.datasets`'s; these tests hold it to naming
the file and the reason (the keywords below), not to a sentence."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from portal.catalog.models import Dataset
from portal.catalog.tasks import validate_dataset
from tests.api.conftest import Upload


def stored_files(storage_root: Path) -> list[Path]:
    return sorted(p for p in storage_root.rglob("*") if p.is_file())


def zipped(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)

# (file name, bytes, extra form fields, what the message must match)
INVALID = {
    "wrong delimiter": (
        "semicolons.csv",
        b"height;width;label\n1;2;a\n3;4;b\n5;6;a\n",
        {},
        r"delimiter|one column|only one|comma|separat",
    ),
    "ragged rows": (
        "ragged.csv",
        b"height,width,label\n1,2,a\n3,b\n5,6,a\n",
        {},
        r"row|field|column",
    ),
    "non-numeric feature": (
        "ages.csv",
        b"age,width,label\n1,2,a\nabc,4,b\n5,6,a\n7,8,b\n",
        {},
        r"'abc'",
    ),
    "missing target column": (
        "untargeted.csv",
        b"height,width,kind\n1,2,a\n3,4,b\n",
        {},
        r"'label'",
    ),
    "single class": (
        "lonely.csv",
        b"height,width,label\n1,2,a\n3,4,a\n5,6,a\n",
        {},
        r"class",
    ),
    "zip path escape": (
        "escape.zip",
        zipped({"cats/one.png": PNG, "../evil.png": PNG, "dogs/two.png": PNG}),
        {"target": None},
        r"\.\./evil|escape|outside",
    ),
    "zip bomb": (
        "bomb.zip",
        zipped({"cats/one.png": PNG, "dogs/huge.png": b"\0" * (64 << 20)}),
        {"target": None},
        r"uncompress|ratio|bomb|large|limit",
    ),
    "not what its name says": (
        "table.parquet",
        b"height,width,label\n1,2,a\n3,4,b\n",
        {},
        r"parquet|not",
    ),
}


@pytest.mark.parametrize("case", INVALID, ids=list(INVALID))
def test_a_bad_file_turns_invalid_with_its_reason_and_leaves_no_file(
    case: str, upload: Upload, owner: User, storage_root: Path
) -> None:
    filename, content, fields, reason = INVALID[case]
    response = upload(owner, content, filename, **fields)
    assert response.status_code == 201, response.json()
    dataset_id = response.json()["id"]

    validate_dataset(dataset_id)

    dataset = Dataset.objects.get(pk=dataset_id)
    assert dataset.state == Dataset.State.INVALID
    assert filename in dataset.state_reason, dataset.state_reason
    assert re.search(reason, dataset.state_reason, re.IGNORECASE), dataset.state_reason
    assert dataset.uri == ""
    assert stored_files(storage_root) == []


def test_an_empty_file_is_refused_at_once(upload: Upload, owner: User, storage_root: Path) -> None:
    response = upload(owner, b"", "empty.csv")

    assert response.status_code == 400
    assert response.json()["errors"]["file"] == ["The submitted file is empty."]
    assert stored_files(storage_root) == []
    assert not Dataset.objects.exists()


def test_a_file_over_the_limit_answers_413_and_stores_nothing(
    upload: Upload, owner: User, storage_root: Path, settings: object
) -> None:
    settings.TRAINYARD_DATASET_MAX_BYTES = 4096  # type: ignore[attr-defined]
    content = b"height,width,label\n" + b"1,2,a\n3,4,b\n" * 1000

    response = upload(owner, content, "big.csv")

    assert response.status_code == 413
    assert response.json() == {
        "errors": {"__all__": ["The file is larger than the upload limit of 4096 bytes."]}
    }
    assert stored_files(storage_root) == []
    assert not Dataset.objects.exists()


def test_a_body_declared_far_over_the_limit_is_refused_before_storing(
    upload: Upload, owner: User, storage_root: Path, settings: object
) -> None:
    settings.TRAINYARD_DATASET_MAX_BYTES = 1024  # type: ignore[attr-defined]
    content = b"x" * ((1 << 20) + 4096)

    response = upload(owner, content, "huge.csv")

    assert response.status_code == 413
    assert stored_files(storage_root) == []
