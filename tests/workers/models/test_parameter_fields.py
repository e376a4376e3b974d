"""The form fields of each built-in are read from its Struct, and the form's data validates."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
import pytest
from msgspec import Meta

from workers.hyperparameters import (
    ARCHITECTURES,
    ParameterField,
    architecture_info,
    architecture_of,
    parameter_fields,
    struct_fields,
)
from workers.messages import (
    BUILTIN_ARCHITECTURES,
    CnnModel,
    CustomModel,
    LinearModel,
    MlpModel,
    ModelSpec,
    ResNetModel,
    TransformerModel,
)


def _by_name(architecture: type[msgspec.Struct]) -> dict[str, ParameterField]:
    return {field["name"]: field for field in parameter_fields(architecture)}


def test_a_linear_model_has_no_hyperparameters():
    assert parameter_fields(LinearModel) == []


def test_the_mlp_fields_have_their_kinds_defaults_bounds_and_help():
    fields = _by_name(MlpModel)
    assert list(fields) == ["hidden_sizes", "activation", "dropout", "output"]
    hidden = fields["hidden_sizes"]
    assert hidden["kind"] == "int_list"
    assert hidden["default"] == [32, 32]
    assert (hidden["min"], hidden["max"], hidden["min_items"], hidden["max_items"]) == (
        1,
        4096,
        1,
        8,
    )
    assert hidden["label"] == "Hidden sizes"
    assert hidden["help"] == "Units in each hidden layer, in order."
    assert fields["activation"]["kind"] == "choice"
    assert set(fields["activation"]["choices"] or ()) == {"relu", "tanh", "gelu", "sigmoid"}
    assert fields["activation"]["default"] == "relu"
    dropout = fields["dropout"]
    assert dropout["kind"] == "float"
    assert (dropout["min"], dropout["min_exclusive"]) == (0.0, False)
    assert (dropout["max"], dropout["max_exclusive"]) == (1.0, True)
    assert fields["output"]["choices"] == ["logits", "sigmoid"]


def test_the_cnn_resnet_and_transformer_fields():
    cnn = _by_name(CnnModel)
    assert cnn["channels"]["kind"] == "int_list"
    assert cnn["kernel_size"] == {**cnn["kernel_size"], "kind": "choice", "choices": [3, 5, 7]}
    resnet = _by_name(ResNetModel)
    assert resnet["blocks"]["default"] == [1, 1]
    assert (resnet["width"]["kind"], resnet["width"]["min"], resnet["width"]["max"]) == (
        "int",
        4,
        256,
    )
    transformer = _by_name(TransformerModel)
    assert list(transformer) == ["d_model", "heads", "layers", "feedforward", "dropout"]
    assert all(transformer[name]["kind"] == "int" for name in ("d_model", "heads", "layers"))
    assert transformer["heads"]["default"] == 4


@pytest.mark.parametrize("architecture", BUILTIN_ARCHITECTURES)
def test_every_fields_defaults_validate_as_a_model_spec(architecture):
    name = architecture.__struct_config__.tag
    data = {"architecture": name}
    data |= {field["name"]: field["default"] for field in parameter_fields(architecture)}
    spec = msgspec.convert(data, ModelSpec)
    assert spec == architecture()
    assert architecture_of(name) is architecture
    assert architecture_info(name).description
    # Every field explains itself.
    assert all(field["help"] for field in parameter_fields(architecture))


def test_a_value_outside_a_fields_bounds_is_refused_by_the_same_declaration():
    too_many = {"architecture": "mlp", "hidden_sizes": [8] * 9}
    with pytest.raises(msgspec.ValidationError, match="hidden_sizes"):
        msgspec.convert(too_many, ModelSpec)


def test_integer_bounds_given_as_exclusive_are_shown_inclusive_and_bools_are_bools():
    class Example(msgspec.Struct, tag="example"):
        count: Annotated[int, Meta(gt=0, lt=10)] = 1
        flag: bool = False
        mode: Literal["a", "b"] = "a"

    fields = {f["name"]: f for f in struct_fields(Example)}
    assert (fields["count"]["min"], fields["count"]["max"]) == (1, 9)
    assert not fields["count"]["min_exclusive"]
    assert fields["flag"]["kind"] == "bool"
    assert fields["flag"]["default"] is False


def test_a_field_of_a_type_the_form_cannot_show_is_a_type_error():
    class Example(msgspec.Struct):
        name: str = ""

    with pytest.raises(TypeError, match="'name'"):
        struct_fields(Example)


def test_custom_code_and_unknown_names_have_no_fixed_fields():
    assert architecture_of("custom") is CustomModel
    with pytest.raises(ValueError, match="not a built-in"):
        parameter_fields(CustomModel)
    with pytest.raises(ValueError, match="unknown architecture 'vit'"):
        architecture_of("vit")
    assert [a.name for a in ARCHITECTURES] == [
        "linear",
        "mlp",
        "cnn",
        "resnet",
        "transformer",
        "custom",
    ]
