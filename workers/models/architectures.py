"""The built-in architectures: from a hyperparameter Struct and a dataset's shape to a module.

Every builder checks first that the spec fits the input (`ModelShapeError` says what to
change), so a shape problem is a sentence for the researcher, not a matmul error from deep
inside a forward pass. Each module maps a batch `[n, *input_shape]` to `[n, outputs]`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from workers.messages import (
    CnnModel,
    CustomModel,
    LinearModel,
    MlpModel,
    ModelSpec,
    ResNetModel,
    Task,
    TransformerModel,
)
from workers.models.errors import ModelShapeError

Shape = tuple[int, ...]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
}


def output_width(spec: ModelSpec, *, task: Task, num_classes: int) -> int:
    """How many outputs the model has: one per class, one for regression, and one for the
    10-5-1 style binary MLP whose sigmoid unit is the probability of the second class."""
    if task == "regression":
        if sigmoid_binary(spec):
            raise ModelShapeError(
                "mlp output 'sigmoid' squashes predictions into (0, 1), but a regression "
                "target is standardised and can be any number: use output 'logits'"
            )
        return 1
    if num_classes < 2:
        raise ModelShapeError(f"classification needs at least two classes, not {num_classes}")
    if sigmoid_binary(spec):
        if num_classes != 2:
            raise ModelShapeError(
                f"mlp output 'sigmoid' is for two classes, but this dataset has {num_classes}: "
                "use output 'logits'"
            )
        return 1
    return num_classes


def sigmoid_binary(spec: ModelSpec) -> bool:
    """Whether the model ends in one sigmoid unit (the probability of the second class), to be
    trained with MSE against 0/1 targets and read as `p >= 0.5` means the second class."""
    return isinstance(spec, MlpModel) and spec.output == "sigmoid"


def architecture_name(spec: ModelSpec) -> str:
    """The spec's `architecture` tag (`"mlp"`): msgspec keeps a tag on the class, not on
    the instance."""
    return str(type(spec).__struct_config__.tag)


def build_model(spec: ModelSpec, *, input_shape: Shape, outputs: int) -> nn.Module:
    """The module of a built-in architecture for examples of `input_shape`.

    Custom code is not built here: it runs only on nodes, through `load_custom`.
    """
    _check_input(architecture_name(spec), input_shape, outputs)
    if isinstance(spec, LinearModel):
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), outputs))
    if isinstance(spec, MlpModel):
        return _mlp(spec, input_shape, outputs)
    if isinstance(spec, CnnModel):
        return _cnn(spec, input_shape, outputs)
    if isinstance(spec, ResNetModel):
        return _resnet(spec, input_shape, outputs)
    if isinstance(spec, TransformerModel):
        return TransformerClassifier(spec, input_shape, outputs)
    if isinstance(spec, CustomModel):
        raise ModelShapeError(
            "custom model code is built only on the node that runs the job (load_custom), "
            "never by build_model"
        )
    raise ModelShapeError(f"unknown architecture {architecture_name(spec)!r}")


def describe_shape(input_shape: Shape) -> str:
    return (
        "(" + ", ".join(str(n) for n in input_shape) + ("," if len(input_shape) == 1 else "") + ")"
    )


def _check_input(architecture: str, input_shape: Shape, outputs: int) -> None:
    if not input_shape or any(n < 1 for n in input_shape):
        raise ModelShapeError(
            f"{architecture}: the input shape {describe_shape(input_shape)} has no elements; "
            "every example needs at least one value"
        )
    if outputs < 1:
        raise ModelShapeError(f"{architecture}: a model needs at least one output, not {outputs}")


def _mlp(spec: MlpModel, input_shape: Shape, outputs: int) -> nn.Module:
    activation = _ACTIVATIONS[spec.activation]
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for hidden in spec.hidden_sizes:
        layers += [nn.Linear(width, hidden), activation()]
        if spec.dropout > 0:
            layers.append(nn.Dropout(spec.dropout))
        width = hidden
    layers.append(nn.Linear(width, outputs))
    if spec.output == "sigmoid":
        layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


def _image_shape(architecture: str, input_shape: Shape) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        kind = "a table's rows" if len(input_shape) == 1 else "sequences"
        instead = "linear, mlp or transformer" if len(input_shape) == 1 else "transformer"
        raise ModelShapeError(
            f"{architecture} needs image input (channels, height, width), but this dataset's "
            f"examples have shape {describe_shape(input_shape)} ({kind}): use {instead}"
        )
    channels, height, width = input_shape
    return channels, height, width


def _cnn(spec: CnnModel, input_shape: Shape, outputs: int) -> nn.Module:
    channels, height, width = _image_shape("cnn", input_shape)
    blocks = len(spec.channels)
    # Each MaxPool2d(2) floors the size by half: `blocks` of them need 2**blocks pixels a side.
    side = 2**blocks
    if min(height, width) < side:
        fitting = int(math.log2(min(height, width)))
        change = (
            f"use at most {fitting} entries in channels, or larger images"
            if fitting
            else "use mlp or linear for images this small"
        )
        raise ModelShapeError(
            f"cnn with {blocks} blocks halves the image {blocks} times and needs at least "
            f"{side}x{side} pixels, but this dataset's images are {height}x{width} "
            f"(input shape {describe_shape(input_shape)}): {change}"
        )
    layers: list[nn.Module] = []
    previous = channels
    for out in spec.channels:
        layers += [
            nn.Conv2d(previous, out, spec.kernel_size, padding=spec.kernel_size // 2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        previous = out
    # A fixed 2x2 grid before the head, so the head's size does not depend on the image's.
    pooled = min(2, height // side, width // side)
    layers += [nn.AdaptiveAvgPool2d(pooled), nn.Flatten()]
    if spec.dropout > 0:
        layers.append(nn.Dropout(spec.dropout))
    layers.append(nn.Linear(previous * pooled * pooled, outputs))
    return nn.Sequential(*layers)


def _group_norm(channels: int) -> nn.GroupNorm:
    # GroupNorm, not BatchNorm: a DDP rank's batch can be a handful of examples (or one, at the
    # end of an epoch), where batch statistics are noise and BatchNorm refuses a single value
    # per channel; GroupNorm also keeps no running statistics that ranks would have to sync,
    # and behaves the same in training and evaluation.
    return nn.GroupNorm(math.gcd(channels, 8), channels)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (He et al., 2016), GroupNorm'd."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.norm1 = _group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.norm2 = _group_norm(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                _group_norm(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


def _resnet(spec: ResNetModel, input_shape: Shape, outputs: int) -> nn.Module:
    channels, height, width = _image_shape("resnet", input_shape)
    stages = len(spec.blocks)
    # Every stage after the first halves the image with a stride-2 convolution.
    side = 2 ** (stages - 1)
    if min(height, width) < side:
        fitting = int(math.log2(min(height, width))) + 1
        raise ModelShapeError(
            f"resnet with {stages} stages halves the image {stages - 1} times and needs at "
            f"least {side}x{side} pixels, but this dataset's images are {height}x{width} "
            f"(input shape {describe_shape(input_shape)}): use at most {fitting} entries in "
            "blocks, or larger images"
        )
    layers: list[nn.Module] = [
        nn.Conv2d(channels, spec.width, 3, padding=1, bias=False),
        _group_norm(spec.width),
        nn.ReLU(),
    ]
    previous = spec.width
    for stage, count in enumerate(spec.blocks):
        out = spec.width * 2**stage
        for block in range(count):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(previous, out, stride))
            previous = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(previous, outputs)]
    return nn.Sequential(*layers)


class TransformerClassifier(nn.Module):
    """Tokens of width W projected to d_model, plus a learned position embedding, through a
    Transformer encoder, mean-pooled over the sequence into a linear head.

    A table's row `(F,)` is F tokens of width 1, so every feature attends to every other.
    """

    def __init__(self, spec: TransformerModel, input_shape: Shape, outputs: int) -> None:
        super().__init__()
        if len(input_shape) == 1:
            length, token_width = input_shape[0], 1
        elif len(input_shape) == 2:
            length, token_width = input_shape
        else:
            raise ModelShapeError(
                "transformer needs sequence input (length, width) or a table's rows "
                f"(features,), but this dataset's examples have shape "
                f"{describe_shape(input_shape)}: use cnn or resnet for images"
            )
        self.tokens = (length, token_width)
        self.embed = nn.Linear(token_width, spec.d_model)
        self.position = nn.Parameter(torch.zeros(1, length, spec.d_model))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(
            spec.d_model,
            spec.heads,
            dim_feedforward=spec.feedforward,
            dropout=spec.dropout,
            batch_first=True,
        )
        # The nested-tensor fast path only helps padded batches, which we never have.
        self.encoder = nn.TransformerEncoder(layer, spec.layers, enable_nested_tensor=False)
        self.head = nn.Linear(spec.d_model, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], *self.tokens)
        encoded = self.encoder(self.embed(x) + self.position)
        out: torch.Tensor = self.head(encoded.mean(dim=1))
        return out
