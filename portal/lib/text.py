"""What a name may contain: printable text, no control characters, no bidi overrides.

A NUL byte is refused by PostgreSQL (a 500 if it gets that far); other control characters and
the Unicode bidi controls let a name rewrite what the terminal or the page around it shows
(U+202E turns "gpj.exe" into "exe.jpg"). Every name a user sets passes through here, from the
API and the forms alike.
"""

from __future__ import annotations

import unicodedata

# Bidi embeddings, overrides and isolates, and the implicit marks (Unicode's Bidi_Control).
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
UNSAFE_TEXT_MESSAGE = "Control characters and bidirectional overrides are not allowed."


def text_problem(value: str) -> str | None:
    """Why `value` is not acceptable as a one-line name, or None when it is."""
    for char in value:
        if char in BIDI_CONTROLS or unicodedata.category(char) in {"Cc", "Cs"}:
            return UNSAFE_TEXT_MESSAGE
    return None


def check_safe_text(value: str) -> str:
    """A pydantic after-validator: `value` unchanged, or ValueError with the reason."""
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def validate_safe_text(value: str) -> None:
    """A Django field validator (forms and models) for the same rule."""
    from django.core.exceptions import ValidationError

    problem = text_problem(value)
    if problem is not None:
        raise ValidationError(problem, code="unsafe_text")
