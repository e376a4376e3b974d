"""A spec that cannot fit the dataset's examples is refused with a sentence saying what to do."""

from __future__ import annotations

import msgspec
import pytest
from torch import nn

from workers.messages import (
    CnnModel,
    CustomModel,
    LinearModel,
    MlpModel,
    ModelSpec,
    ResNetModel,
    TransformerModel,
)
from workers.models import ModelShapeError, build_model, dry_run, forward_check

WRONG: list[tuple[ModelSpec, tuple[int, ...], list[str]]] = [
    (CnnModel(), (10,), ["cnn needs image input", "(10,)", "use linear, mlp or transformer"]),
    (CnnModel(), (12, 3), ["cnn needs image input", "(12, 3)", "use transformer"]),
    (
        CnnModel(channels=(8, 8, 8, 8)),
        (1, 8, 8),
        ["cnn with 4 blocks", "at least 16x16", "8x8", "at most 3 entries in channels"],
    ),
    (CnnModel(channels=(4,)), (3, 1, 9), ["needs at least 2x2", "use mlp or linear"]),
    (ResNetModel(), (4,), ["resnet needs image input", "(4,)"]),
    (
        ResNetModel(blocks=(1, 1, 1, 1)),
        (3, 4, 4),
        ["resnet with 4 stages", "at least 8x8", "4x4", "at most 3 entries in blocks"],
    ),
    (TransformerModel(), (3, 8, 8), ["transformer needs sequence input", "use cnn or resnet"]),
    (LinearModel(), (0,), ["linear", "(0,)", "no elements"]),
]


@pytest.mark.parametrize(("spec", "input_shape", "phrases"), WRONG)
def test_a_spec_that_does_not_fit_its_input_says_what_to_change(spec, input_shape, phrases):
    with pytest.raises(ModelShapeError) as caught:
        dry_run(spec, input_shape=input_shape, outputs=3)
    for phrase in phrases:
        assert phrase in str(caught.value)
    # build_model says the same, so the node's message is the dry run's.
    with pytest.raises(ModelShapeError):
        build_model(spec, input_shape=input_shape, outputs=3)


def test_a_d_model_that_heads_do_not_divide_is_refused_with_the_form_data():
    with pytest.raises(msgspec.ValidationError, match="d_model 30 is not a multiple of heads 4"):
        msgspec.convert(
            {"architecture": "transformer", "d_model": 30, "heads": 4},
            ModelSpec,
        )


def test_the_dry_run_never_runs_custom_code():
    spec = CustomModel(code_uri="file:///tmp/model.py", code_sha256="0" * 64)
    with pytest.raises(ModelShapeError, match="checked when the job starts on its node"):
        dry_run(spec, input_shape=(4,), outputs=2)
    with pytest.raises(ModelShapeError, match="only on the node"):
        build_model(spec, input_shape=(4,), outputs=2)


class _WrongWidth(nn.Module):
    def forward(self, x):
        return x.flatten(1)


class _Broken(nn.Module):
    def forward(self, x):
        return nn.functional.linear(x, x.new_zeros(3, 7))


def test_the_forward_check_reports_a_wrong_output_shape_without_a_traceback():
    with pytest.raises(ModelShapeError, match=r"returns shape \[2, 4\].*needs \[2, 3\]"):
        forward_check(_WrongWidth(), input_shape=(4,), outputs=3, name="mine")
    with pytest.raises(ModelShapeError) as caught:
        forward_check(_Broken(), input_shape=(4,), outputs=3, name="mine")
    message = str(caught.value)
    assert message.startswith("mine fails on input shape (4,): RuntimeError: ")
    assert "\n" not in message
    assert "Traceback" not in message


@pytest.mark.parametrize("mode", [True, False])
def test_the_forward_check_restores_the_models_mode(mode):
    model = build_model(MlpModel(dropout=0.5), input_shape=(4,), outputs=2)
    model.train(mode)
    forward_check(model, input_shape=(4,), outputs=2, name="mlp")
    assert model.training is mode
