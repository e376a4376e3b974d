"""A trained model's weights and its standalone export, written whole or not at all.

- safetensors holds only tensors (no code, nothing to unpickle): what a model version keeps
  and what the predictor loads into a freshly built module.
- TorchScript (`torch.jit.trace`) is the export a user takes elsewhere and runs without
  Trainyard's code. We load only TorchScript files we wrote ourselves.

Both write through `workers.files.atomic_writer`, so a crash never leaves a half file under
the real name.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import safetensors.torch
import torch
from torch import nn

from workers.files import atomic_writer, write_atomic
from workers.models.architectures import Shape
from workers.models.errors import ModelShapeError

# torch 2.13 deprecates the TorchScript entry points (in favour of torch.export) with a
# DeprecationWarning on every call; TorchScript is still the one portable, Python-free format
# we export, and warnings are errors in the test run, so exactly that warning is silenced
# around exactly those calls.
_JIT_DEPRECATED = r"`torch\.jit\.(trace|trace_method|save|load)` is deprecated"


def save_safetensors(
    model: nn.Module, path: Path, *, metadata: dict[str, str] | None = None
) -> None:
    """Write `model`'s state dict (parameters and persistent buffers) to `path`."""
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        # safetensors refuses tensors that share storage (tied weights); a tied tensor is
        # stored once per name, and loading copies it into both names, which are one tensor.
        storage = tensor.untyped_storage().data_ptr()
        if storage in seen:
            tensor = tensor.clone()
        seen.add(storage)
        tensors[name] = tensor
    write_atomic(path, safetensors.torch.save(tensors, metadata=metadata))


def load_safetensors(model: nn.Module, path: Path) -> None:
    """Load the weights at `path` into `model` (built for the same spec and input shape)."""
    tensors = safetensors.torch.load_file(path, device="cpu")
    missing, unexpected = _key_difference(model, tensors)
    if missing or unexpected:
        raise ModelShapeError(
            f"the weights in {path.name} do not fit this model: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ModelShapeError(
            f"the weights in {path.name} do not fit this model: {first[-1] if first else exc}"
        ) from exc


def _key_difference(
    model: nn.Module, tensors: dict[str, torch.Tensor]
) -> tuple[list[str], list[str]]:
    expected = set(model.state_dict())
    return sorted(expected - set(tensors)), sorted(set(tensors) - expected)


def export_torchscript(model: nn.Module, *, input_shape: Shape, path: Path) -> None:
    """Trace a CPU copy of `model` in eval mode on a zero batch and save it to `path`.

    A copy, so the caller's model keeps its device and mode. The batch has two examples: a
    trace is specialised to what it saw, and a batch of one can hide a batch-size dependence.
    """
    frozen = copy.deepcopy(model).cpu().eval()
    example = torch.zeros((2, *input_shape))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_JIT_DEPRECATED, category=DeprecationWarning)
        # GroupNorm's input check in torch.nn.functional reads a size as a Python bool (it
        # refuses one value per group); the trace keeps it as a constant, which changes no
        # output. Only that module's tracer warnings are silenced: one from the model's own
        # code would still mean a trace that may not generalise.
        warnings.filterwarnings(
            "ignore",
            message="Converting a tensor to a Python boolean",
            module=r"torch\.nn\.functional",
        )
        traced = torch.jit.trace(frozen, example)
        with atomic_writer(path) as out:
            torch.jit.save(traced, out)


def load_torchscript(path: Path) -> torch.jit.ScriptModule:
    """A TorchScript file written by `export_torchscript`, on the CPU, in eval mode."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_JIT_DEPRECATED, category=DeprecationWarning)
        module: torch.jit.ScriptModule = torch.jit.load(str(path), map_location="cpu")
    module.eval()
    return module
