"""The predict worker's code (workers.serving): verified loads, an LRU of loaded models, and the
dataset's own preprocessing in front of the model. Real models and files; no Django."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import torch

from workers.datasets import rows_to_inputs
from workers.messages import (
    CustomModel,
    DatasetSpec,
    ExportFile,
    FeatureSpec,
    MlpModel,
    PredictRequest,
    PreprocessSpec,
)
from workers.models import build_model, predict
from workers.models.export import export_torchscript, save_safetensors
from workers.serving import ModelCache, answer

DATASET = DatasetSpec(
    uri="file:///srv/data/points.csv",
    sha256="0" * 64,
    format="csv",
    task="classification",
    target="label",
    classes=("high", "low"),
    features=(
        FeatureSpec(name="x0", kind="numeric", shift=-1.0, scale=2.0),
        FeatureSpec(name="x1", kind="numeric", shift=-1.0, scale=2.0),
    ),
    input_shape=(2,),
    num_rows=40,
    preprocessing=PreprocessSpec(
        missing="drop", normalization="minmax", split_seed=0, val_fraction=0.25, test_fraction=0.0
    ),
)
MLP = MlpModel(hidden_sizes=(4,))
ROWS = [{"x0": 0.5, "x1": 0.25}, {"x0": -0.5, "x1": -0.9}]


def _file(path: Path) -> ExportFile:
    return ExportFile(uri=path.as_uri(), sha256=hashlib.sha256(path.read_bytes()).hexdigest())


def _saved_mlp(tmp_path: Path, seed: int = 0) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(seed)
    model = build_model(MLP, input_shape=(2,), outputs=2)
    path = tmp_path / f"mlp-{seed}.safetensors"
    save_safetensors(model, path)
    return model, path


def _request(weights: ExportFile, **changes: Any) -> PredictRequest:
    fields: dict[str, Any] = {
        "version_id": 1,
        "model": MLP,
        "input_shape": (2,),
        "outputs": 2,
        "weights": weights,
        "weights_format": "safetensors",
        "dataset": DATASET,
        "rows": ROWS,
    }
    return PredictRequest(**(fields | changes))


def _expected(model: torch.nn.Module) -> list[Any]:
    return list(
        predict(
            model,
            rows_to_inputs(ROWS, DATASET),
            task="classification",
            classes=DATASET.classes,
            target_shift=0.0,
            target_scale=1.0,
            sigmoid_binary=False,
        )
    )


def test_a_builtin_model_loads_from_safetensors_and_predicts_like_the_original(
    tmp_path: Path,
) -> None:
    model, path = _saved_mlp(tmp_path)

    result = answer(_request(_file(path)), ModelCache(2))

    assert result == {"predictions": _expected(model)}


def test_custom_code_is_served_from_its_torchscript_export(tmp_path: Path) -> None:
    model, _ = _saved_mlp(tmp_path)
    path = tmp_path / "model.torchscript.pt"
    export_torchscript(model, input_shape=(2,), path=path)
    custom = CustomModel(code_uri="file:///srv/code.py", code_sha256="1" * 64)

    result = answer(
        _request(_file(path), model=custom, weights_format="torchscript"), ModelCache(2)
    )

    assert result == {"predictions": _expected(model)}


def test_a_file_changed_after_registration_is_never_loaded(tmp_path: Path) -> None:
    _, path = _saved_mlp(tmp_path)
    registered = _file(path)
    path.write_bytes(path.read_bytes() + b"tampered")
    cache = ModelCache(2)

    result = answer(_request(registered), cache)

    assert "changed after registration" in result["error"]
    assert cache.loads == 0


def test_rows_the_preprocessing_refuses_are_an_error_answer(tmp_path: Path) -> None:
    _, path = _saved_mlp(tmp_path)

    result = answer(_request(_file(path), rows=[{"x0": "abc", "x1": 1.0}]), ModelCache(2))

    assert set(result) == {"error"}
    assert result["error"]


def test_the_cache_loads_each_model_once_and_keeps_the_most_recent(tmp_path: Path) -> None:
    files = [_file(_saved_mlp(tmp_path, seed)[1]) for seed in range(3)]
    cache = ModelCache(2)
    requests = [_request(file, version_id=index + 1) for index, file in enumerate(files)]

    for request in [requests[0], requests[0], requests[1], requests[0], requests[2]]:
        assert "predictions" in answer(request, cache)

    assert cache.loads == 3
    assert len(cache) == 2
    # 1 was least recently used when 3 arrived: asking for it again loads it again.
    answer(requests[1], cache)
    assert cache.loads == 4


def test_a_cache_must_hold_one_model() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ModelCache(0)
