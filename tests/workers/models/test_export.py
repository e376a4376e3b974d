"""Exported weights and TorchScript files give the trained model's own outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import safetensors.torch
import torch
from torch import nn

from workers.messages import (
    CnnModel,
    LinearModel,
    MlpModel,
    ModelSpec,
    ResNetModel,
    TransformerModel,
)
from workers.models import ModelShapeError, build_model
from workers.models.export import (
    export_torchscript,
    load_safetensors,
    load_torchscript,
    save_safetensors,
)

MODELS: list[tuple[ModelSpec, tuple[int, ...]]] = [
    (LinearModel(), (6,)),
    (MlpModel(hidden_sizes=(5,), activation="sigmoid", output="sigmoid", dropout=0.3), (10,)),
    (CnnModel(dropout=0.2), (3, 9, 12)),
    (ResNetModel(), (1, 8, 8)),
    (TransformerModel(d_model=16, heads=2, dropout=0.1), (5, 3)),
]


def _trained(spec: ModelSpec, input_shape: tuple[int, ...]) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(spec, input_shape=input_shape, outputs=1 if spec == MODELS[1][0] else 3)
    # One optimiser step, so the weights are not their initial values.
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.randn(4, *input_shape)).pow(2).mean().backward()
    optimiser.step()
    return model.eval()


@pytest.mark.parametrize(("spec", "input_shape"), MODELS)
def test_safetensors_round_trip_gives_identical_outputs(spec, input_shape, tmp_path: Path):
    model = _trained(spec, input_shape)
    path = tmp_path / "model.safetensors"
    save_safetensors(model, path, metadata={"architecture": "test"})
    torch.manual_seed(1)  # a fresh model with other initial weights
    fresh = build_model(
        spec, input_shape=input_shape, outputs=model(torch.zeros(1, *input_shape)).shape[1]
    )
    load_safetensors(fresh, path)
    x = torch.randn(3, *input_shape)
    with torch.no_grad():
        assert torch.equal(model(x), fresh.eval()(x))
    with safetensors.safe_open(path, framework="pt") as stored:
        assert stored.metadata() == {"architecture": "test"}
    # No temporary file is left behind.
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


@pytest.mark.parametrize(("spec", "input_shape"), MODELS)
def test_torchscript_round_trip_gives_identical_outputs(spec, input_shape, tmp_path: Path):
    model = _trained(spec, input_shape).train()
    path = tmp_path / "model.pt"
    export_torchscript(model, input_shape=input_shape, path=path)
    # The caller's model keeps its mode.
    assert model.training
    loaded = load_torchscript(path)
    model.eval()
    # A batch size other than the trace's.
    x = torch.randn(5, *input_shape)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_weights_of_another_model_are_refused_with_a_sentence(tmp_path: Path):
    path = tmp_path / "model.safetensors"
    save_safetensors(build_model(MlpModel(), input_shape=(4,), outputs=3), path)
    with pytest.raises(ModelShapeError, match="do not fit this model: missing"):
        load_safetensors(build_model(CnnModel(), input_shape=(1, 8, 8), outputs=3), path)
    with pytest.raises(ModelShapeError, match="do not fit this model"):
        load_safetensors(build_model(MlpModel(), input_shape=(5,), outputs=3), path)


class _Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encode = nn.Linear(4, 4, bias=False)
        self.decode = nn.Linear(4, 4, bias=False)
        self.decode.weight = self.encode.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.decode(self.encode(x))
        return out


def test_tied_weights_are_saved_and_stay_tied_after_loading(tmp_path: Path):
    model = _Tied()
    path = tmp_path / "tied.safetensors"
    save_safetensors(model, path)
    fresh = _Tied()
    load_safetensors(fresh, path)
    assert torch.equal(fresh.encode.weight, model.encode.weight)
    assert fresh.decode.weight is fresh.encode.weight
