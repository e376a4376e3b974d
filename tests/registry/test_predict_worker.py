"""Predictions through a real `predict` worker process (the process table's own command): the
web side sends the request and waits, the worker loads the exported weights and answers."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from django.contrib.auth.models import User

from portal.ops.processes import PREDICT, process_table
from portal.ops.supervisor import ProcessSupervisor
from portal.registry.models import ModelVersion
from portal.registry.services import SAFETENSORS_FILE
from tests.registry.conftest import TokenClient
from tests.registry.support import make_model_version, signed_in
from workers.datasets import rows_to_inputs
from workers.messages import MlpModel
from workers.models import build_model, predict
from workers.models.export import load_safetensors, save_safetensors

ROWS = [{"a": 0.5, "b": 1.0}, {"a": -0.5, "b": -2.0}, {"a": 0.0, "b": 0.5}]


@pytest.fixture(scope="module")
def predict_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessSupervisor]:
    state_dir = tmp_path_factory.mktemp("predict")
    specs = process_table(
        python=sys.executable,
        web_host="127.0.0.1",
        web_port=1,
        node_name="unused",
        state_dir=state_dir,
        include=[PREDICT],
    )
    env = dict(os.environ, TRAINYARD_STATE_DIR=str(state_dir), TRAINYARD_DEV="1")
    with ProcessSupervisor(specs, log_dir=state_dir / "logs", env=env) as supervisor:
        yield supervisor


@pytest.fixture
def version(owner: User, settings: Any) -> ModelVersion:
    """A registered version whose safetensors are a real MLP's weights."""
    # The worker's first answer waits for it to start and import torch.
    settings.TRAINYARD_PREDICT_TIMEOUT_S = 90.0
    version = make_model_version(owner)
    torch.manual_seed(0)
    model = build_model(MlpModel(hidden_sizes=(4,)), input_shape=(2,), outputs=2)
    path = Path(version.safetensors_uri.removeprefix("file://"))
    save_safetensors(model, path)
    ModelVersion.objects.filter(pk=version.pk).update(
        architecture={"architecture": "mlp", "hidden_sizes": [4]},
        safetensors_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
    )
    version.refresh_from_db()
    return version


def _expected(version: ModelVersion) -> list[Any]:
    model = build_model(MlpModel(hidden_sizes=(4,)), input_shape=(2,), outputs=2)
    path = Path(version.safetensors_uri.removeprefix("file://"))
    load_safetensors(model, path)
    return list(
        predict(
            model,
            rows_to_inputs(ROWS, version.dataset.node_spec()),
            task="classification",
            classes=tuple(version.classes),
            target_shift=0.0,
            target_scale=1.0,
            sigmoid_binary=False,
        )
    )


def test_the_predict_worker_answers_with_the_models_predictions(
    api: TokenClient,
    owner: User,
    version: ModelVersion,
    predict_worker: ProcessSupervisor,
) -> None:
    response = api(owner).post(
        f"/api/v1/model-versions/{version.pk}/predict/", {"rows": ROWS}, format="json"
    )

    assert response.status_code == 200, f"{response.json()}\n{predict_worker.tail(PREDICT)}"
    assert response.json() == {"predictions": _expected(version)}


def test_rows_the_preprocessing_refuses_are_a_400_with_its_message(
    api: TokenClient,
    owner: User,
    version: ModelVersion,
    predict_worker: ProcessSupervisor,
) -> None:
    response = api(owner).post(
        f"/api/v1/model-versions/{version.pk}/predict/",
        {"rows": [{"a": "abc", "b": 1.0}]},
        format="json",
    )

    assert response.status_code == 400
    [message] = response.json()["errors"]["rows"]
    assert "'abc'" in message


def test_weights_changed_after_registration_are_refused(
    api: TokenClient,
    owner: User,
    version: ModelVersion,
    predict_worker: ProcessSupervisor,
) -> None:
    path = Path(version.safetensors_uri.removeprefix("file://"))
    path.write_bytes(path.read_bytes() + b"tampered")

    response = api(owner).post(
        f"/api/v1/model-versions/{version.pk}/predict/", {"rows": ROWS}, format="json"
    )

    assert response.status_code == 400
    assert "changed after registration" in response.json()["errors"]["rows"][0]
    assert path.name == SAFETENSORS_FILE


def test_the_try_it_form_shows_each_rows_prediction(
    owner: User, version: ModelVersion, predict_worker: ProcessSupervisor
) -> None:
    response = signed_in(owner).post(
        f"/trained-models/{version.pk}/try/", {"rows": json.dumps(ROWS)}
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-testid="predictions"' in page
    labels = [prediction["label"] for prediction in _expected(version)]
    assert page.count("<strong>") >= len(labels)
    assert all(f"<strong>{label}</strong>" in page for label in labels)
