"""Every built-in architecture builds for a fitting input and answers [batch, outputs]."""

from __future__ import annotations

import pytest
import torch

from workers.messages import (
    CnnModel,
    LinearModel,
    MlpModel,
    ModelSpec,
    ResNetModel,
    TransformerModel,
)
from workers.models import ModelShapeError, build_model, dry_run, parameter_count

FITTING: list[tuple[ModelSpec, tuple[int, ...]]] = [
    (LinearModel(), (10,)),
    (LinearModel(), (3, 8, 8)),
    (MlpModel(), (4,)),
    (MlpModel(hidden_sizes=(8, 8, 8), activation="gelu", dropout=0.2), (1, 28, 28)),
    (CnnModel(), (3, 8, 8)),
    (CnnModel(channels=(4, 8, 16), kernel_size=5, dropout=0.1), (1, 8, 8)),
    (CnnModel(channels=(4,)), (3, 17, 40)),
    (ResNetModel(), (3, 8, 8)),
    (ResNetModel(blocks=(2, 1, 1), width=6), (1, 28, 28)),
    (TransformerModel(), (10,)),
    (TransformerModel(d_model=16, heads=2, layers=1, dropout=0.1), (12, 3)),
]


@pytest.mark.parametrize(("spec", "input_shape"), FITTING)
def test_every_architecture_dry_runs_on_a_fitting_input(spec, input_shape):
    count = dry_run(spec, input_shape=input_shape, outputs=3)
    model = build_model(spec, input_shape=input_shape, outputs=3)
    assert count == parameter_count(model) > 0
    # Any batch size, in training mode too (dropout active, gradients flowing).
    out = model(torch.randn(5, *input_shape))
    assert out.shape == (5, 3)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize(("spec", "input_shape"), FITTING)
def test_the_meta_device_dry_run_agrees_with_the_cpu_one(spec, input_shape):
    on_cpu = dry_run(spec, input_shape=input_shape, outputs=4)
    assert dry_run(spec, input_shape=input_shape, outputs=4, cpu_max_parameters=0) == on_cpu


def test_a_linear_model_has_inputs_times_outputs_plus_bias_parameters():
    assert dry_run(LinearModel(), input_shape=(10,), outputs=3) == 10 * 3 + 3
    assert dry_run(LinearModel(), input_shape=(2, 4, 4), outputs=1) == 32 + 1


def test_the_classic_10_5_1_network_has_61_parameters():
    spec = MlpModel(hidden_sizes=(5,), activation="sigmoid", output="sigmoid")
    assert dry_run(spec, input_shape=(10,), outputs=1) == 10 * 5 + 5 + 5 * 1 + 1
    model = build_model(spec, input_shape=(10,), outputs=1)
    out = model(torch.randn(7, 10))
    # A sigmoid output is a probability.
    assert out.shape == (7, 1)
    assert bool(((out > 0) & (out < 1)).all())


def test_a_model_too_large_for_the_control_worker_is_counted_on_the_meta_device():
    # 2.1 billion parameters (8.5 GB of float32) would not fit this machine's memory; on the
    # meta device nothing is allocated, and the count and the shape check are a real build's.
    spec = MlpModel(hidden_sizes=(4096,) * 8)
    count = dry_run(spec, input_shape=(3, 224, 224), outputs=10)
    assert count == 3 * 224 * 224 * 4096 + 4096 + 7 * (4096 * 4096 + 4096) + 4096 * 10 + 10
    # A model with few parameters but huge activations (2 x 512 x 2048 x 2048 values after
    # its first convolution, 17 GB) is not run on the CPU either.
    huge = dry_run(CnnModel(channels=(512,)), input_shape=(3, 2048, 2048), outputs=2)
    assert huge == 3 * 512 * 9 + 512 + 512 * 4 * 2 + 2
    # Over the limit, a shape error is still found.
    with pytest.raises(ModelShapeError, match="cnn with 2 blocks"):
        dry_run(CnnModel(), input_shape=(3, 3, 3), outputs=2, cpu_max_parameters=0)


def test_the_dry_run_leaves_no_gradient_mode_or_default_device_changed():
    dry_run(ResNetModel(), input_shape=(3, 8, 8), outputs=2)
    assert torch.is_grad_enabled()
    assert torch.zeros(1).device.type == "cpu"
