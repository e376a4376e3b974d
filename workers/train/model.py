"""The model architectures a job can name. Today: a multi-layer perceptron."""

from __future__ import annotations

from torch import nn

from workers.messages import ModelSpec

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def build_model(spec: ModelSpec, *, inputs: int, outputs: int) -> nn.Module:
    if spec.architecture != "mlp":
        raise ValueError(f"unknown architecture {spec.architecture!r}")
    activation = _ACTIVATIONS[spec.activation]
    layers: list[nn.Module] = []
    width = inputs
    for hidden in spec.hidden_sizes:
        layers += [nn.Linear(width, hidden), activation()]
        if spec.dropout > 0:
            layers.append(nn.Dropout(spec.dropout))
        width = hidden
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)
