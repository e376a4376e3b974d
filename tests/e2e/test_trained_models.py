"""From an uploaded file to a served model, on the live stack: upload a CSV, a Parquet file, an
.npz and an image zip through the API, train on each (the images with the CNN), register the
best checkpoint, and ask the predict worker for the validation rows' predictions. Their
accuracy is the best checkpoint's validation accuracy: the same rows, the same preprocessing.

The files come from the seeded generators in `workers.datasets.builtins` (the Parquet file is
their CSV rewritten); they are tiny and the jobs a few epochs on one CPU process, so each trains
in seconds.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from portal.accounts.services import api_token_create
from portal.catalog.models import Dataset, ModelArchitecture
from portal.catalog.services import catalog_ensure_builtins
from portal.cluster.models import Node
from portal.jobs.models import Job
from tests.e2e.conftest import Stack, wait_for
from tests.factories import make_user
from workers.datasets import builtins, split_indices

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PREPROCESSING = {
    "missing": "drop",
    "normalization": "minmax",
    "split_seed": 3,
    "val_fraction": 0.25,
    "test_fraction": 0.0,
}


@dataclass(frozen=True)
class Upload:
    """A file as written, the form fields of its upload, and its rows as predict takes them,
    read back from the file in file order (the data has no missing values, so none is
    dropped and row i of the file is row i of the version)."""

    path: Path
    fields: dict[str, str]
    rows: list[Any]
    labels: list[str]
    architecture: str


def _table(table: pa.Table) -> tuple[list[Any], list[str]]:
    # The target stays in each row: rows_to_inputs ignores it.
    rows = table.to_pylist()
    return rows, [str(row["label"]) for row in rows]


def write_csv(directory: Path) -> Upload:
    path = directory / "blobs.csv"
    builtins.write_synthetic_classification(path, seed=1, rows=60, features=3, classes=2)
    rows, labels = _table(pa_csv.read_csv(path))
    return Upload(path, {"target": "label"}, rows, labels, "mlp")


def write_parquet(directory: Path) -> Upload:
    source = directory / "blobs.csv"
    builtins.write_synthetic_classification(source, seed=2, rows=60, features=3, classes=3)
    path = directory / "blobs.parquet"
    pq.write_table(pa_csv.read_csv(source), path)
    rows, labels = _table(pq.read_table(path))
    return Upload(path, {"target": "label"}, rows, labels, "mlp")


def write_npz(directory: Path) -> Upload:
    path = directory / "waves.npz"
    builtins.write_synthetic_sequences(path, seed=3, rows=60, length=8, width=2, classes=2)
    with np.load(path) as arrays:
        x, y = arrays["X"], arrays["y"]
    # Integer targets are the classes "0", "1"; the MLP flattens each [length, width] example.
    return Upload(path, {"target": "y"}, x.tolist(), [str(int(v)) for v in y], "mlp")


def write_images(directory: Path) -> Upload:
    path = directory / "shapes.zip"
    builtins.write_synthetic_images(path, seed=4, per_class=12, size=16)
    rows: list[Any] = []
    labels: list[str] = []
    with zipfile.ZipFile(path) as archive:
        # Rows in sorted path order (class folder, then file), as the version reads them; a
        # row is the image file itself, base64.
        for name in sorted(n for n in archive.namelist() if n.endswith(".png")):
            rows.append(base64.b64encode(archive.read(name)).decode())
            labels.append(name.split("/", 1)[0])
    return Upload(path, {"target": "label"}, rows, labels, "cnn")


WRITERS = {"csv": write_csv, "parquet": write_parquet, "npz": write_npz, "images": write_images}


class Api:
    def __init__(self, stack: Stack, token: str) -> None:
        self.base = stack.base_url
        self.headers = {"Authorization": f"Bearer {token}"}

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(f"{self.base}{path}", headers=self.headers, timeout=60, **kwargs)


def _upload(api: Api, upload: Upload, data_format: str) -> int:
    fields = {
        "name": f"e2e {data_format}",
        "format": data_format,
        "task": "classification",
        **upload.fields,
        **{key: str(value) for key, value in PREPROCESSING.items()},
    }
    with upload.path.open("rb") as handle:
        response = api.post(
            "/api/v1/datasets/", data=fields, files={"file": (upload.path.name, handle)}
        )
    assert response.status_code == 201, response.text
    dataset_id: int = response.json()["id"]
    return dataset_id


def _wait_ready(stack: Stack, dataset_id: int) -> Dataset:
    def settled() -> bool:
        return Dataset.objects.get(pk=dataset_id).state in {"ready", "invalid"}

    wait_for(settled, timeout=90, what=f"dataset {dataset_id} to be validated")
    dataset = Dataset.objects.get(pk=dataset_id)
    assert dataset.state == Dataset.State.READY, f"{dataset.state_reason}\n{stack.logs()}"
    return dataset


def _wait_succeeded(stack: Stack, job_id: int) -> None:
    try:
        wait_for(lambda: Job.objects.get(pk=job_id).is_terminal, timeout=240, what="the job to end")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.logs()}") from exc
    job = Job.objects.get(pk=job_id)
    assert job.state == Job.State.SUCCEEDED, f"{job.state_reason}\n{stack.logs()}"


@pytest.mark.parametrize("data_format", list(WRITERS))
def test_a_model_trained_on_an_upload_predicts_its_validation_accuracy(
    stack: Stack, tmp_path: Path, data_format: str
) -> None:
    catalog_ensure_builtins()
    user = make_user(f"trainer-{data_format}")
    api = Api(stack, api_token_create(user=user, name="e2e").plaintext)
    wait_for(
        lambda: Node.objects.filter(name=stack.node_name, state=Node.State.ONLINE).exists(),
        timeout=30,
        what=f"node {stack.node_name} to register",
    )
    upload = WRITERS[data_format](tmp_path)

    dataset = _wait_ready(stack, _upload(api, upload, data_format))
    model = (
        ModelArchitecture.objects.filter(family=upload.architecture, is_public=True)
        .order_by("pk")
        .first()
    )
    assert model is not None, f"no built-in {upload.architecture} architecture"
    submitted = api.post(
        "/api/v1/jobs/",
        json={
            "name": f"e2e {data_format}",
            "dataset": dataset.pk,
            "model": model.pk,
            "training": {
                "epochs": 4,
                "batch_size": 16,
                "learning_rate": 0.05,
                "optimizer": "adam",
                "loss": "cross_entropy",
                "seed": 5,
            },
            # One process: the validation accuracy is over exactly the validation rows.
            "resources": {"nodes": 1, "procs_per_node": 1},
        },
    )
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["id"]
    _wait_succeeded(stack, job_id)

    registered = api.post("/api/v1/model-versions/", json={"job": job_id, "name": data_format})
    assert registered.status_code == 201, registered.text
    version = registered.json()
    assert version["dataset"]["id"] == dataset.pk
    reported = version["metrics"]["val_accuracy"]
    assert reported is not None

    spec = dataset.node_spec()
    _train, val, _test = split_indices(spec.num_rows, spec.preprocessing)
    rows = [upload.rows[i] for i in val]
    answered = api.post(f"/api/v1/model-versions/{version['id']}/predict/", json={"rows": rows})
    assert answered.status_code == 200, f"{answered.text}\n{stack.logs()}"
    predictions = answered.json()["predictions"]

    assert len(predictions) == len(val)
    correct = sum(
        prediction["label"] == upload.labels[i]
        for prediction, i in zip(predictions, val, strict=True)
    )
    assert abs(correct / len(val) - reported) <= 1 / len(val) + 1e-9, (correct, len(val), reported)

    # A row the preprocessing cannot read is refused with its message, not a 500.
    bad = {"x0": "not a number"} if data_format in {"csv", "parquet"} else [["wrong"]]
    refused = api.post(f"/api/v1/model-versions/{version['id']}/predict/", json={"rows": [bad]})
    assert refused.status_code == 400, refused.text
    assert refused.json()["errors"]["rows"][0]

    # The weights download whole and match the recorded digest.
    weights = httpx.get(
        f"{stack.base_url}{version['urls']['safetensors']}", headers=api.headers, timeout=60
    )
    assert weights.status_code == 200
    assert hashlib.sha256(weights.content).hexdigest() == version["files"]["safetensors"]["sha256"]
