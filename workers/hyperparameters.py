"""What the portal shows of the architectures: their names, descriptions and typed form fields.

Imports no torch: the web process reads it for the job form and the search space. The fields
are read from the hyperparameter Structs in `workers/messages.py` with
`msgspec.inspect`, so the form and the validation (`msgspec.convert(data, ModelSpec)`) can
never disagree: a field's kind, default, bounds, choices and help text are declared once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypedDict

import msgspec
import msgspec.inspect as mi

from workers.messages import BUILTIN_ARCHITECTURES, CustomModel, ModelSpec

FieldKind = Literal["int", "float", "bool", "choice", "int_list"]


class ParameterField(TypedDict):
    """One hyperparameter as a form field. Every key is always present (None where it does
    not apply), so a template or a serializer reads one shape."""

    name: str
    label: str
    kind: FieldKind
    default: Any  # a JSON value: int, float, bool, str, or a list of ints for int_list
    # Bounds of the value, or of each item of an int_list. Integer bounds are inclusive;
    # a float bound given as `gt`/`lt` is exclusive, and says so.
    min: int | float | None
    max: int | float | None
    min_exclusive: bool
    max_exclusive: bool
    # The length bounds of an int_list.
    min_items: int | None
    max_items: int | None
    choices: list[Any] | None
    help: str


@dataclass(frozen=True)
class Architecture:
    """An architecture as the catalog lists it."""

    name: str  # the `architecture` tag
    title: str
    description: str
    # Which dataset shapes it fits, in words.
    inputs: str


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture(
        "linear",
        "Linear / logistic regression",
        "One linear layer over the flattened input: logistic regression for classification, "
        "linear regression for regression. A baseline worth beating.",
        "tables, images (flattened), sequences (flattened)",
    ),
    Architecture(
        "mlp",
        "Multi-layer perceptron",
        "Fully connected hidden layers over the flattened input. With one hidden layer of "
        "five sigmoid units and a sigmoid output it is the classic 10-5-1 network.",
        "tables, images (flattened), sequences (flattened)",
    ),
    Architecture(
        "cnn",
        "Small CNN",
        "Convolution, ReLU and 2x2 max-pooling blocks, then a linear head. For small images.",
        "images (channels, height, width)",
    ),
    Architecture(
        "resnet",
        "ResNet",
        "A small residual network: stages of basic residual blocks with GroupNorm, each "
        "stage after the first doubling the channels and halving the image.",
        "images (channels, height, width)",
    ),
    Architecture(
        "transformer",
        "Transformer encoder",
        "A Transformer encoder over a sequence, mean-pooled into a linear head. A table's "
        "row is read as one token per feature.",
        "sequences (length, width), tables (one token per feature)",
    ),
    Architecture(
        "custom",
        "Custom code",
        "Your own Python file exposing build_model(input_shape, num_classes, **hparams). "
        "Needs the permission an admin grants; it runs only on the nodes.",
        "whatever your code accepts",
    ),
)

_KNOWN: tuple[type[msgspec.Struct], ...] = (*BUILTIN_ARCHITECTURES, CustomModel)
_BY_NAME: dict[str, type[Any]] = {str(cls.__struct_config__.tag): cls for cls in _KNOWN}


def architecture_of(name: str) -> type[ModelSpec]:
    """The hyperparameter Struct of the architecture called `name` (`"mlp"` -> `MlpModel`)."""
    try:
        cls: type[ModelSpec] = _BY_NAME[name]
    except KeyError:
        known = ", ".join(sorted(_BY_NAME))
        raise ValueError(f"unknown architecture {name!r} (known: {known})") from None
    return cls


def architecture_info(name: str) -> Architecture:
    for architecture in ARCHITECTURES:
        if architecture.name == name:
            return architecture
    raise ValueError(f"unknown architecture {name!r}")


def parameter_fields(architecture: type[msgspec.Struct]) -> list[ParameterField]:
    """The form fields of a built-in architecture's hyperparameters, in declaration order.

    Custom code has no fixed fields (its `hparams` are the user's), so it is refused here.
    """
    if architecture not in BUILTIN_ARCHITECTURES:
        raise ValueError(
            f"{architecture.__name__} is not a built-in architecture with fixed hyperparameters"
        )
    return struct_fields(architecture)


def struct_fields(struct: type[msgspec.Struct]) -> list[ParameterField]:
    """The form fields of any Struct whose fields are ints, floats, bools, literals or int
    tuples; `TypeError` for another type (it needs a form widget first)."""
    info = mi.type_info(struct)
    assert isinstance(info, mi.StructType)
    return [_field(field) for field in info.fields]


def _field(field: mi.Field) -> ParameterField:
    kind_type = field.type
    help_text = ""
    if isinstance(kind_type, mi.Metadata):
        help_text = str((kind_type.extra_json_schema or {}).get("description", ""))
        kind_type = kind_type.type
    out = ParameterField(
        name=field.name,
        label=field.name.replace("_", " ").capitalize(),
        kind="int",
        # Through JSON, so the default is what the form posts back (a tuple becomes a list).
        default=(
            msgspec.json.decode(msgspec.json.encode(field.default))
            if field.default is not msgspec.NODEFAULT
            else None
        ),
        min=None,
        max=None,
        min_exclusive=False,
        max_exclusive=False,
        min_items=None,
        max_items=None,
        choices=None,
        help=help_text,
    )
    if isinstance(kind_type, (mi.VarTupleType, mi.ListType)) and isinstance(
        kind_type.item_type, mi.IntType
    ):
        out["kind"] = "int_list"
        out["min_items"] = kind_type.min_length
        out["max_items"] = kind_type.max_length
        _bounds(out, kind_type.item_type)
    elif isinstance(kind_type, mi.BoolType):
        out["kind"] = "bool"
    elif isinstance(kind_type, mi.IntType):
        out["kind"] = "int"
        _bounds(out, kind_type)
    elif isinstance(kind_type, mi.FloatType):
        out["kind"] = "float"
        _bounds(out, kind_type)
    elif isinstance(kind_type, mi.LiteralType):
        out["kind"] = "choice"
        out["choices"] = list(kind_type.values)
    else:
        # A new hyperparameter of another type needs a form widget first.
        raise TypeError(f"hyperparameter {field.name!r} has a type the form cannot show")
    return out


def _bounds(out: ParameterField, constraint: mi.IntType | mi.FloatType) -> None:
    ge, gt, le, lt = constraint.ge, constraint.gt, constraint.le, constraint.lt
    if isinstance(constraint, mi.IntType):
        # Integers: an exclusive bound is the next integer in, so the form's are inclusive.
        gt, ge = None, ge if ge is not None else (gt + 1 if gt is not None else None)
        lt, le = None, le if le is not None else (lt - 1 if lt is not None else None)
    out["min"], out["min_exclusive"] = (ge, False) if gt is None else (gt, True)
    out["max"], out["max_exclusive"] = (le, False) if lt is None else (lt, True)
