"""Predictions for registered model versions, as the `predict` worker makes them.

Node-plane code (no Django): the portal's `predict` Celery worker calls `answer()` with a
`PredictRequest` it received. Each model is loaded once per process and kept in a small LRU
cache keyed by the weights' checksum, so a burst of requests for one version pays for one load.

Nothing is loaded before its bytes matched the digest recorded at registration: the file is
copied to a private temporary file while it is hashed, and only that verified copy is opened,
so a file changed on the shared filesystem after the check is never the one loaded. Built-in
architectures are rebuilt with `workers.models.build_model` and given their safetensors
weights (no pickle anywhere; weights that do not fit are a `ModelShapeError`); custom code is
served from its TorchScript export, so a user's Python never runs here. Each request's rows go
through the dataset version's own preprocessing (`workers.datasets.rows_to_inputs`), exactly
as in training.
"""

from __future__ import annotations

import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TypedDict

import torch

from workers.datasets import DatasetInvalid, rows_to_inputs
from workers.files import sha256_of
from workers.messages import ExportFile, PredictRequest
from workers.models import ModelShapeError, Prediction, build_model, predict, sigmoid_binary
from workers.models.export import load_safetensors, load_torchscript
from workers.storage import StorageError, local_path_for


class PredictAnswer(TypedDict, total=False):
    """The task's JSON answer: the predictions, or why the request was refused."""

    predictions: list[Prediction]
    error: str


class ModelFileInvalid(Exception):
    """An exported file is missing or is not the file that was registered."""


def _verified_copy(file: ExportFile, directory: Path) -> Path:
    """A private copy of `file`, whose bytes matched its SHA-256 while they were copied."""
    try:
        source = local_path_for(file.uri)
    except StorageError as exc:
        raise ModelFileInvalid(str(exc)) from exc
    target = directory / source.name
    try:
        with source.open("rb") as src, target.open("wb") as out:
            actual, _ = sha256_of(src, copy_to=out)
    except OSError as exc:
        raise ModelFileInvalid(f"cannot read {source.name}: {exc.strerror or exc}") from exc
    if actual != file.sha256:
        raise ModelFileInvalid(
            f"{source.name} has SHA-256 {actual}, but {file.sha256} was registered: "
            "the file changed after registration, so it is not loaded"
        )
    return target


def load_model(request: PredictRequest) -> torch.nn.Module:
    """The request's model in eval mode, from its verified export."""
    with tempfile.TemporaryDirectory(prefix="trainyard-predict-") as scratch:
        path = _verified_copy(request.weights, Path(scratch))
        model: torch.nn.Module
        if request.weights_format == "torchscript":
            model = load_torchscript(path)
        else:
            model = build_model(
                request.model, input_shape=request.input_shape, outputs=request.outputs
            )
            load_safetensors(model, path)
    model.eval()
    return model


class ModelCache:
    """The most recently used `max_models` loaded models of this process (an LRU)."""

    def __init__(self, max_models: int) -> None:
        if max_models < 1:
            raise ValueError("max_models must be at least 1")
        self.max_models = max_models
        self._models: OrderedDict[tuple[int, str], torch.nn.Module] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, request: PredictRequest) -> torch.nn.Module:
        key = (request.version_id, request.weights.sha256)
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                return model
            model = load_model(request)
            self.loads += 1
            self._models[key] = model
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
            return model

    def __len__(self) -> int:
        return len(self._models)


def answer(request: PredictRequest, cache: ModelCache) -> PredictAnswer:
    """Predictions for `request.rows`, or `{"error": ...}` for rows or files that are wrong."""
    try:
        inputs = rows_to_inputs(request.rows, request.dataset)
    except (DatasetInvalid, ValueError) as exc:
        return {"error": str(exc)}
    dataset = request.dataset
    try:
        model = cache.get(request)
        predictions = predict(
            model,
            inputs,
            task=dataset.task,
            classes=dataset.classes,
            target_shift=dataset.target_shift,
            target_scale=dataset.target_scale,
            # A custom model's TorchScript answers one output per class.
            sigmoid_binary=sigmoid_binary(request.model),
        )
    except (ModelFileInvalid, ModelShapeError) as exc:
        return {"error": str(exc)}
    return {"predictions": predictions}
