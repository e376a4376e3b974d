"""How commands print: rich tables and messages for people, plain JSON for scripts.

With `--json`, stdout carries JSON only (one document, or JSON Lines for `follow`), and errors
go to stderr as `{"error": ..., "status": ...}`; rich never writes markup into it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

# Piped output is read by grep and awk, not by a person at an 80-column terminal: give tables
# room rather than cut names short.
PIPE_WIDTH = 240


def stdout() -> Console:
    # Built per call, not at import: tests and pipes swap sys.stdout.
    width = None if sys.stdout.isatty() else PIPE_WIDTH
    return Console(file=sys.stdout, highlight=False, width=width)


def stderr() -> Console:
    return Console(file=sys.stderr, highlight=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def print_error(message: str, *, as_json: bool, status: int | None = None) -> None:
    if as_json:
        sys.stderr.write(json.dumps({"error": message, "status": status}) + "\n")
    else:
        stderr().print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def dig(item: dict[str, Any], dotted: str) -> Any:
    value: Any = item
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def print_table(
    items: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], *, empty: str
) -> None:
    """`columns` are (heading, dotted field) pairs."""
    console = stdout()
    if not items:
        console.print(empty)
        return
    table = Table(box=None, header_style="bold")
    for heading, _ in columns:
        table.add_column(heading, overflow="fold")  # wrap a long value, never drop it
    for item in items:
        table.add_row(*(cell(dig(item, path)) for _, path in columns))
    console.print(table)
