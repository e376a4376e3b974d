"""Outputs become labels with probabilities, or values in the target's own units."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from workers.messages import CnnModel
from workers.models import ModelShapeError, build_model, predict
from workers.models.export import export_torchscript, load_torchscript


class _Fixed(nn.Module):
    """Answers the rows of `outputs`, whatever the input; records the input it saw."""

    def __init__(self, outputs: list[list[float]]) -> None:
        super().__init__()
        self.outputs = torch.tensor(outputs)
        self.seen: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x
        return self.outputs[: len(x)]


def test_classification_gives_the_most_probable_label_and_softmax_probabilities():
    model = _Fixed([[2.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    inputs = np.ones((2, 4), dtype=np.float64)
    out = predict(
        model,
        inputs,
        task="classification",
        classes=["setosa", "versicolor", "virginica"],
        target_shift=0.0,
        target_scale=1.0,
        sigmoid_binary=False,
    )
    assert [p["label"] for p in out] == ["setosa", "virginica"]  # type: ignore[typeddict-item]
    first = out[0]["probabilities"]  # type: ignore[typeddict-item]
    e = np.exp(2.0)
    assert first == pytest.approx(
        {"setosa": e / (e + 2), "versicolor": 1 / (e + 2), "virginica": 1 / (e + 2)}
    )
    assert sum(first.values()) == pytest.approx(1.0)
    # The model saw float32 inputs.
    assert model.seen is not None and model.seen.dtype == torch.float32


def test_a_sigmoid_binary_output_is_the_probability_of_the_second_class():
    model = _Fixed([[0.8], [0.2], [0.5]])
    out = predict(
        model,
        np.zeros((3, 10)),
        task="classification",
        classes=["no", "yes"],
        target_shift=0.0,
        target_scale=1.0,
        sigmoid_binary=True,
    )
    assert [p["label"] for p in out] == ["yes", "no", "yes"]  # type: ignore[typeddict-item]
    assert out[0]["probabilities"] == pytest.approx({"no": 0.2, "yes": 0.8})  # type: ignore[typeddict-item]


def test_regression_values_are_de_standardised():
    model = _Fixed([[0.0], [1.5], [-2.0]])
    out = predict(
        model,
        np.zeros((3, 2)),
        task="regression",
        classes=[],
        target_shift=100.0,
        target_scale=10.0,
        sigmoid_binary=False,
    )
    assert out == [{"value": 100.0}, {"value": 115.0}, {"value": 80.0}]


def test_a_model_of_the_wrong_width_is_refused():
    with pytest.raises(
        ModelShapeError, match="answers 3 outputs per example, but 2 classes needs 2"
    ):
        predict(
            _Fixed([[1.0, 2.0, 3.0]]),
            np.zeros((1, 2)),
            task="classification",
            classes=["a", "b"],
            target_shift=0.0,
            target_scale=1.0,
            sigmoid_binary=False,
        )


def test_predict_leaves_a_training_model_in_training_mode():
    model = _Fixed([[0.0]]).train()
    predict(
        model,
        np.zeros((1, 1)),
        task="regression",
        classes=[],
        target_shift=0.0,
        target_scale=1.0,
        sigmoid_binary=False,
    )
    assert model.training


def test_a_torchscript_export_predicts_what_the_model_predicts(tmp_path: Path):
    torch.manual_seed(0)
    model = build_model(CnnModel(), input_shape=(1, 8, 8), outputs=3)
    export_torchscript(model, input_shape=(1, 8, 8), path=tmp_path / "model.pt")
    inputs = np.random.default_rng(0).random((4, 1, 8, 8))
    kwargs: dict[str, Any] = {
        "task": "classification",
        "classes": ["a", "b", "c"],
        "target_shift": 0.0,
        "target_scale": 1.0,
        "sigmoid_binary": False,
    }
    exported = predict(load_torchscript(tmp_path / "model.pt"), inputs, **kwargs)
    assert exported == predict(model, inputs, **kwargs)
