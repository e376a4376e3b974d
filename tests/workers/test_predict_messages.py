"""The trained-model messages: the trainer's model.json and the predict worker's request."""

from __future__ import annotations

import json

import pytest

from workers.messages import (
    PREDICT_MAX_ROWS,
    CnnModel,
    ExportManifest,
    MessageInvalid,
    PredictRequest,
)

MANIFEST = {
    "model": {"architecture": "cnn", "channels": [4, 8]},
    "input_shape": [3, 16, 16],
    "outputs": 3,
    "task": "classification",
    "classes": ["circle", "cross", "square"],
    "target_shift": 0.0,
    "target_scale": 1.0,
    "dataset_sha256": "a" * 64,
    "checkpoint": "attempt-1/best.pt",
    "epoch": 7,
    "best_metric": "val_accuracy",
    "best_value": 0.9,
    "torchscript": True,
    "note": "a field the contract does not name is ignored",
}
DATASET = {
    "uri": "file:///srv/shapes.zip",
    "sha256": "a" * 64,
    "format": "images",
    "task": "classification",
    "target": "label",
    "classes": ["circle", "cross", "square"],
    "features": [{"name": c, "kind": "numeric"} for c in "RGB"],
    "input_shape": [3, 16, 16],
    "num_rows": 36,
    "preprocessing": {
        "missing": "drop",
        "normalization": "none",
        "split_seed": 0,
        "val_fraction": 0.25,
        "test_fraction": 0.0,
    },
}


def test_a_manifest_names_its_architecture_by_tag() -> None:
    manifest = ExportManifest.from_json(json.dumps(MANIFEST).encode())

    assert manifest.model == CnnModel(channels=(4, 8))
    assert manifest.input_shape == (3, 16, 16)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": {"architecture": "gpt"}}, "Invalid value 'gpt' - at `$.model.architecture`"),
        ({"dataset_sha256": "xyz"}, "at `$.dataset_sha256`"),
        ({"outputs": 0}, "Expected `int` >= 1 - at `$.outputs`"),
    ],
)
def test_a_manifest_that_is_not_the_trainers_is_refused(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(MessageInvalid, match=r"^model\.json: ") as refused:
        ExportManifest.from_json(json.dumps(MANIFEST | change).encode())

    assert message in str(refused.value)


def _request(**changes: object) -> dict[str, object]:
    return {
        "version_id": 4,
        "model": MANIFEST["model"],
        "input_shape": [3, 16, 16],
        "outputs": 3,
        "weights": {"uri": "file:///srv/model.safetensors", "sha256": "b" * 64},
        "weights_format": "safetensors",
        "dataset": DATASET,
        "rows": [[[0]]],
    } | changes


def test_a_predict_request_survives_its_round_trip() -> None:
    request = PredictRequest.from_json(_request())

    assert PredictRequest.from_json(request.to_json()) == request


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rows": []}, "Expected `array` of length >= 1 - at `$.rows`"),
        ({"rows": [1] * (PREDICT_MAX_ROWS + 1)}, "of length <= 1000 - at `$.rows`"),
        ({"weights_format": "pickle"}, "Invalid enum value 'pickle' - at `$.weights_format`"),
    ],
)
def test_a_predict_request_out_of_bounds_is_refused(change: dict[str, object], message: str):
    with pytest.raises(MessageInvalid) as refused:
        PredictRequest.from_json(_request(**change))

    assert message in str(refused.value)
