"""A model's outputs as predictions: class probabilities, or a de-standardised value."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import numpy as np
import torch
from torch import nn

from workers.messages import Task
from workers.models.errors import ModelShapeError


class ClassPrediction(TypedDict):
    label: str
    probabilities: dict[str, float]


class ValuePrediction(TypedDict):
    value: float


Prediction = ClassPrediction | ValuePrediction


def predict(
    model: nn.Module,
    inputs: np.ndarray,
    *,
    task: Task,
    classes: Sequence[str],
    target_shift: float,
    target_scale: float,
    sigmoid_binary: bool,
) -> list[Prediction]:
    """Predictions for a batch of prepared inputs `[n, *input_shape]` (preprocessing applied).

    Classification: the label with the highest probability and every class's probability
    (softmax of the logits; for a sigmoid binary model its one output is the probability of
    the second class, which wins at 0.5 or more). Regression: the value in the target's own
    units, `output * target_scale + target_shift`.
    """
    outputs = _forward(model, inputs)
    if task == "regression":
        _expect_width(outputs, 1, "regression")
        values = outputs[:, 0].double() * target_scale + target_shift
        return [ValuePrediction(value=float(v)) for v in values.tolist()]
    if sigmoid_binary:
        if len(classes) != 2:
            raise ModelShapeError(f"a sigmoid binary model needs two classes, not {len(classes)}")
        _expect_width(outputs, 1, "a sigmoid binary model")
        second = outputs[:, 0].double().clamp(0.0, 1.0)
        probabilities = torch.stack([1.0 - second, second], dim=1)
    else:
        _expect_width(outputs, len(classes), f"{len(classes)} classes")
        probabilities = torch.softmax(outputs.double(), dim=1)
    # argmax takes the first of equal values; a sigmoid's 0.5 is the second class's.
    labels = (second >= 0.5).long() if sigmoid_binary else probabilities.argmax(dim=1)
    return [
        ClassPrediction(
            label=classes[index],
            probabilities={name: float(p) for name, p in zip(classes, row, strict=True)},
        )
        for index, row in zip(labels.tolist(), probabilities.tolist(), strict=True)
    ]


def _forward(model: nn.Module, inputs: np.ndarray) -> torch.Tensor:
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    batch = torch.as_tensor(np.ascontiguousarray(inputs, dtype=np.float32), device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out: torch.Tensor = model(batch)
    finally:
        model.train(was_training)
    return out.detach().float().cpu().reshape(len(inputs), -1)


def _expect_width(outputs: torch.Tensor, width: int, what: str) -> None:
    if outputs.shape[1] != width:
        raise ModelShapeError(
            f"the model answers {outputs.shape[1]} outputs per example, but {what} needs {width}"
        )
