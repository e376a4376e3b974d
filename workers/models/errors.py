"""The one error a model definition raises when it cannot fit a dataset or cannot be loaded."""

from __future__ import annotations

import traceback
from pathlib import Path


class ModelShapeError(ValueError):
    """A model that cannot be built for, or run on, a dataset's examples.

    The message is a plain sentence for the researcher: the architecture, the input shape and
    what to change (`cnn needs image input (channels, height, width), but this dataset's
    examples have shape (10,): use linear, mlp or transformer for tables`). For custom code it
    names the user's file and line. It never carries a raw torch traceback.
    """


def error_text(exc: BaseException, *, source: Path | None = None) -> str:
    """`exc` as one line for a researcher: its type and the first line of its message, and,
    when `source` is given, `line N` of the innermost place in that file where it arose."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(exc, SyntaxError) and exc.msg:
        first = exc.msg
    message = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    line = _line_in(exc, source) if source is not None else None
    return f"line {line}: {message}" if line is not None else message


def _line_in(exc: BaseException, source: Path) -> int | None:
    if isinstance(exc, SyntaxError) and exc.filename == str(source):
        return exc.lineno
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename == str(source)
    ]
    return lines[-1] if lines else None
