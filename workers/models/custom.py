"""A user's model code: fetched by URI, checked against its SHA-256, imported, built.

Called only by the trainer on a node; the portal's processes never import this code (the dry
run refuses custom models). The file is imported as a module under a fresh name, like any
Python file: its text never passes through `exec` from a message. Every failure (a checksum
that does not match, a syntax error, an exception while importing or building, a wrong
return value) is a `ModelShapeError` naming the file and, where it has one, the line.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.machinery import SourceFileLoader
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from torch import nn

from workers.messages import CustomModel, HParam
from workers.models.architectures import Shape, describe_shape
from workers.models.checks import forward_check
from workers.models.errors import ModelShapeError, error_text
from workers.storage import ChecksumMismatch, StorageError, dataset_fetch

# Two jobs' files (or two versions of one) never share a module, even in one process.
_serial = itertools.count()


@dataclass(frozen=True)
class CustomBuilder:
    """A user's `build_model`, imported, with the job's hyperparameters bound."""

    file_name: str  # as the messages call it: the file's name in its URI
    path: Path  # the verified local copy the module was imported from
    function: Callable[..., Any]
    hparams: Mapping[str, HParam]

    def __call__(self, *, input_shape: Shape, outputs: int) -> nn.Module:
        """`build_model(input_shape, outputs, **hparams)`, checked to be a module."""
        try:
            model = self.function(input_shape, outputs, **self.hparams)
        except Exception as exc:  # the user's exception is the message
            raise ModelShapeError(
                f"custom model code {self.file_name}: build_model failed for input shape "
                f"{describe_shape(input_shape)}: {error_text(exc, source=self.path)}"
            ) from exc
        if not isinstance(model, nn.Module):
            raise ModelShapeError(
                f"custom model code {self.file_name}: build_model returned "
                f"{type(model).__name__}, not a torch.nn.Module"
            )
        return model


def load_custom(spec: CustomModel, *, cache_dir: Path) -> CustomBuilder:
    """Fetch and verify the file at `spec.code_uri`, import it, and find its `build_model`."""
    name = code_file_name(spec.code_uri)
    try:
        # The dataset cache is generic: keyed by checksum, verified before it is renamed in.
        path = dataset_fetch(uri=spec.code_uri, sha256=spec.code_sha256, cache_dir=cache_dir)
    except ChecksumMismatch as exc:
        raise ModelShapeError(
            f"custom model code {name} does not match its recorded SHA-256 "
            f"{spec.code_sha256}: the file changed after it was stored; upload it again"
        ) from exc
    except StorageError as exc:
        raise ModelShapeError(f"custom model code {name} cannot be fetched: {exc}") from exc
    module_name = f"trainyard_custom_{spec.code_sha256[:16]}_{next(_serial)}"
    # An explicit source loader: the cached copy's name is its checksum, whatever its suffix.
    loader = SourceFileLoader(module_name, str(path))
    module_spec = importlib.util.spec_from_loader(module_name, loader)
    assert module_spec is not None
    module = importlib.util.module_from_spec(module_spec)
    # Registered while it runs, as `import` would: dataclasses and pickling look it up there.
    sys.modules[module_name] = module
    try:
        loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # the user's exception is the message
        del sys.modules[module_name]
        raise ModelShapeError(
            f"custom model code {name} fails when imported: {error_text(exc, source=path)}"
        ) from exc
    function = getattr(module, "build_model", None)
    if not callable(function):
        raise ModelShapeError(
            f"custom model code {name} has no function build_model(input_shape, num_classes, "
            "**hparams)"
        )
    try:
        inspect.signature(function).bind((1,), 1, **spec.hparams)
    except TypeError as exc:
        raise ModelShapeError(
            f"custom model code {name}: build_model(input_shape, num_classes, **hparams) "
            f"cannot take this job's hyperparameters {sorted(spec.hparams)}: {exc}"
        ) from exc
    except ValueError:
        pass  # a callable without an inspectable signature is simply called
    return CustomBuilder(file_name=name, path=path, function=function, hparams=spec.hparams)


def custom_model(
    spec: CustomModel, *, cache_dir: Path, input_shape: Shape, outputs: int
) -> nn.Module:
    """The trainer's one call for custom code on its node: load, build, and check one forward
    pass of a zero batch answers `[2, outputs]`, before any training starts."""
    builder = load_custom(spec, cache_dir=cache_dir)
    model = builder(input_shape=input_shape, outputs=outputs)
    forward_check(
        model,
        input_shape=input_shape,
        outputs=outputs,
        name=f"custom model code {builder.file_name}",
        source=builder.path,
    )
    return model


def code_file_name(uri: str) -> str:
    """The file's name in its URI (`model.py`), for messages."""
    tail = unquote(urlsplit(uri).path).rstrip("/").rsplit("/", 1)[-1]
    return tail or uri
