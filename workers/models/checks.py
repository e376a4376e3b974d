"""The dry run: build a model for a dataset's shape and run it once, before a job is queued.

The portal's control worker calls `dry_run` so a model that cannot fit its dataset is refused
with a sentence at submission, not minutes later on a node. It runs on the control worker's
CPU, so a model too large to build there cheaply is shape-checked on torch's `meta` device
(tensors with shapes and no storage) instead: the answer is the same, the memory is not spent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from workers.messages import CustomModel, ModelSpec
from workers.models.architectures import Shape, architecture_name, build_model, describe_shape
from workers.models.errors import ModelShapeError, error_text

# The dry run allocates on the control worker's CPU only a model of at most this many
# parameters (400 MB of float32) whose largest activation for the batch of two is at most
# DRY_RUN_CPU_MAX_ACTIVATION_VALUES (200 MB); a larger one is checked on the meta device only.
DRY_RUN_CPU_MAX_PARAMETERS = 100_000_000
DRY_RUN_CPU_MAX_ACTIVATION_VALUES = 50_000_000
DRY_RUN_BATCH = 2


def dry_run(
    spec: ModelSpec,
    *,
    input_shape: Shape,
    outputs: int,
    cpu_max_parameters: int = DRY_RUN_CPU_MAX_PARAMETERS,
) -> int:
    """Build `spec` for examples of `input_shape`, run a zero batch of two through it, and
    return its parameter count; any failure is a `ModelShapeError` with a plain message.

    The model is built and run on the meta device first (shapes, no memory), which counts its
    parameters and measures its largest activation; only a model under `cpu_max_parameters`
    and `DRY_RUN_CPU_MAX_ACTIVATION_VALUES` is then built and run on the CPU as well.
    """
    if isinstance(spec, CustomModel):
        raise ModelShapeError(
            "custom model code is never run outside the nodes: it is checked when the job "
            "starts on its node, and a shape error then fails the job with its message"
        )
    name = architecture_name(spec)
    meta = torch.device("meta")
    with meta:
        meta_model = _build(spec, input_shape=input_shape, outputs=outputs)
    parameters = parameter_count(meta_model)
    with _largest_output(meta_model) as largest:
        forward_check(meta_model, input_shape=input_shape, outputs=outputs, name=name, device=meta)
    if parameters <= cpu_max_parameters and largest.values <= DRY_RUN_CPU_MAX_ACTIVATION_VALUES:
        model = _build(spec, input_shape=input_shape, outputs=outputs)
        forward_check(model, input_shape=input_shape, outputs=outputs, name=name)
    return parameters


@dataclass
class _Largest:
    values: int = 0


@contextmanager
def _largest_output(model: nn.Module) -> Iterator[_Largest]:
    """Measures, while the block runs, the most values any one module of `model` outputs."""
    largest = _Largest()

    def record(module: nn.Module, args: object, out: object) -> None:
        if isinstance(out, torch.Tensor):
            largest.values = max(largest.values, out.numel())

    hooks = [module.register_forward_hook(record) for module in model.modules()]
    try:
        yield largest
    finally:
        for hook in hooks:
            hook.remove()


def _build(spec: ModelSpec, *, input_shape: Shape, outputs: int) -> nn.Module:
    try:
        return build_model(spec, input_shape=input_shape, outputs=outputs)
    except ModelShapeError:
        raise
    except Exception as exc:  # a build failure is the researcher's message
        raise ModelShapeError(
            f"{architecture_name(spec)} cannot be built for input shape "
            f"{describe_shape(input_shape)}: {error_text(exc)}"
        ) from exc


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_check(
    model: nn.Module,
    *,
    input_shape: Shape,
    outputs: int,
    name: str,
    device: torch.device | None = None,
    source: Path | None = None,
) -> None:
    """Run a zero batch of two through `model` (in eval mode, without gradients) and check it
    answers `[2, outputs]`; raise `ModelShapeError` otherwise.

    Eval mode, so the check never moves a custom model's BatchNorm running statistics, and the
    model's own mode is restored afterwards. `name` is what the message calls the model;
    `source`, a custom model's file, whose line a failure names.
    """
    where = device if device is not None else _device_of(model)
    batch = torch.zeros((DRY_RUN_BATCH, *input_shape), device=where)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(batch)
    except Exception as exc:  # a forward failure is the researcher's message
        raise ModelShapeError(
            f"{name} fails on input shape {describe_shape(input_shape)}: "
            f"{error_text(exc, source=source)}"
        ) from exc
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor):
        raise ModelShapeError(
            f"{name} returns {type(out).__name__} on input shape "
            f"{describe_shape(input_shape)}, not a tensor of shape [batch, {outputs}]"
        )
    if tuple(out.shape) != (DRY_RUN_BATCH, outputs):
        raise ModelShapeError(
            f"{name} returns shape {list(out.shape)} for a batch of {DRY_RUN_BATCH} examples of "
            f"shape {describe_shape(input_shape)}, but the dataset needs "
            f"[{DRY_RUN_BATCH}, {outputs}] (one output per class, or one for regression)"
        )


def _device_of(model: nn.Module) -> torch.device:
    for parameter in model.parameters():
        return parameter.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")
