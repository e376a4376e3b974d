"""The one reader of settings from the environment, for both planes.

`Env` turns environment variables into typed values and fails loudly, naming the variable,
rather than falling back to a default that would hide a typo. It raises the error class it was
built with: the node plane's `ConfigError`, or Django's `ImproperlyConfigured` for the portal's
settings (`portal.env`), so the same rule and the same bound give each plane its own kind of
failure. This module imports nothing of Django: the node plane is the ground floor.

Every variable may also come from `<NAME>_FILE`, a path whose contents are the value, so a
deployment can mount secrets as files instead of exporting them. Values are stripped, and an
empty value counts as unset.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import NoReturn


class ConfigError(ValueError):
    """A node setting in the environment is missing or malformed."""


class Env:
    """Typed, validating reads of the environment; each call reads the environment afresh."""

    def __init__(self, error: type[Exception] = ConfigError) -> None:
        self.error = error

    def fail(self, message: str) -> NoReturn:
        raise self.error(message)

    def raw(self, name: str) -> str | None:
        """The value of `name` (or of the file `<name>_FILE` names), or None when unset."""
        file_name = os.environ.get(f"{name}_FILE", "").strip()
        if file_name:
            try:
                value = Path(file_name).read_text()
            except OSError as exc:
                raise self.error(f"{name}_FILE={file_name!r} cannot be read: {exc}") from exc
        else:
            value = os.environ.get(name, "")
        return value.strip() or None

    def text(self, name: str, default: str | None = None) -> str:
        """A string; without a default the variable must be set."""
        value = self.raw(name)
        if value is not None:
            return value
        if default is None:
            self.fail(f"{name} must be set")
        return default

    def optional(self, name: str) -> str | None:
        return self.raw(name)

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        self.fail(f"{name}={value!r} is not a boolean (use true or false)")

    def integer(
        self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            self.fail(f"{name}={value!r} is not an integer")
        if minimum is not None and number < minimum:
            self.fail(f"{name}={number} must be at least {minimum}")
        if maximum is not None and number > maximum:
            self.fail(f"{name}={number} must be at most {maximum}")
        return number

    def number(
        self,
        name: str,
        default: float,
        *,
        at_least: float | None = None,
        above: float | None = None,
    ) -> float:
        """A finite float, at least `at_least` and strictly greater than `above`."""
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            self.fail(f"{name}={value!r} is not a number")
        if not math.isfinite(number):
            self.fail(f"{name}={value!r} must be a finite number")
        if at_least is not None and number < at_least:
            self.fail(f"{name}={value!r} must be at least {at_least}")
        if above is not None and number <= above:
            self.fail(f"{name}={value!r} must be greater than {above}")
        return number

    def items(self, name: str, default: list[str]) -> list[str]:
        """A comma-separated list; blank items are dropped."""
        value = self.raw(name)
        if value is None:
            return default
        return [item.strip() for item in value.split(",") if item.strip()]
