"""CSV and Parquet: parsed by pyarrow into columns, then turned into numbers column by column.

A CSV is read with every column as text, so that deciding numeric against categorical is ours
and an odd value can be named with its row: a column whose non-empty values are mostly numbers
is numeric, and any value in it that is not a number is an error; a column of words is
categorical. A Parquet column keeps its own type (numbers are numeric, text is inferred as
for a CSV). Empty cells and pyarrow's usual null spellings (`NA`, `null`, `NaN`, ...) are
missing values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from workers.datasets.errors import DatasetInvalid, Limits

Kind = Literal["numeric", "categorical"]
# A decimal number; infinities and NaN are not numbers here (NaN spellings read as missing).
_NUMBER = r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$"
_INFINITY = r"^\s*[+-]?(inf|infinity)\s*$"
_OTHER_DELIMITERS = (";", "\t", "|", ":")
_MAX_NAME = 200


@dataclass(frozen=True)
class RawTable:
    """A parsed table: its columns in header order, and the file row of its first record."""

    file: str
    columns: dict[str, pa.ChunkedArray]
    first_row: int
    num_rows: int

    def row_of(self, index: int) -> int:
        return self.first_row + index


def _check_header(names: list[str], *, file: str, limits: Limits | None) -> None:
    seen: set[str] = set()
    for position, column in enumerate(names, start=1):
        if not column.strip():
            raise DatasetInvalid(f"header column {position} has no name", file=file, row=1)
        if len(column) > _MAX_NAME:
            raise DatasetInvalid(
                f"header column {position} is {len(column)} characters long; at most {_MAX_NAME}",
                file=file,
                row=1,
            )
        if column in seen:
            raise DatasetInvalid(f"column {column!r} appears twice in the header", file=file, row=1)
        seen.add(column)
    if limits is not None and len(names) > limits.max_columns:
        raise DatasetInvalid(
            f"the table has {len(names)} columns; the limit is {limits.max_columns}", file=file
        )


def read_csv(path: Path, *, file: str, limits: Limits | None) -> RawTable:
    invalid: list[Any] = []

    def on_invalid(row: Any) -> str:
        invalid.append(row)
        return "error"

    # Single-threaded, so pyarrow knows the row number of a ragged row.
    read_options = pacsv.ReadOptions(use_threads=False)
    parse_options = pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid)
    try:
        with pacsv.open_csv(path, read_options=read_options, parse_options=parse_options) as reader:
            names = list(reader.schema.names)
        _check_header(names, file=file, limits=limits)
        convert = pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True
        )
        table = pacsv.read_csv(
            path, read_options=read_options, parse_options=parse_options, convert_options=convert
        )
    except pa.ArrowInvalid as exc:
        raise _csv_error(exc, invalid, file=file) from exc
    if len(names) == 1:
        _refuse_one_column(names[0], file=file)
    if table.num_rows == 0:
        raise DatasetInvalid("the file has a header but no rows", file=file)
    _check_rows(table.num_rows, file=file, limits=limits)
    return RawTable(
        file=file,
        columns={name: table.column(name) for name in names},
        first_row=2,
        num_rows=table.num_rows,
    )


def _csv_error(exc: pa.ArrowInvalid, invalid: list[Any], *, file: str) -> DatasetInvalid:
    if invalid:
        row = invalid[0]
        return DatasetInvalid(
            f"the row has {row.actual_columns} values but the header has "
            f"{row.expected_columns} columns",
            file=file,
            row=row.number,
        )
    text = str(exc)
    if "UTF8" in text or "utf8" in text.lower():
        return DatasetInvalid("the file is not UTF-8 text", file=file)
    if "Empty CSV file" in text:
        return DatasetInvalid("the file has no header", file=file)
    return DatasetInvalid(f"cannot be parsed as CSV: {text}", file=file)


def _refuse_one_column(header: str, *, file: str) -> None:
    for delimiter in _OTHER_DELIMITERS:
        if delimiter in header:
            shown = "a tab" if delimiter == "\t" else repr(delimiter)
            raise DatasetInvalid(
                f"the header has a single column {header!r}: the file looks separated by "
                f"{shown}, not by commas; save it comma-separated",
                file=file,
                row=1,
            )
    raise DatasetInvalid(
        f"the header has a single column {header!r}; a table needs a target and at least one "
        "feature",
        file=file,
        row=1,
    )


def _check_rows(count: int, *, file: str, limits: Limits | None) -> None:
    if limits is not None and count > limits.max_rows:
        raise DatasetInvalid(
            f"the table has {count} rows; the limit is {limits.max_rows}", file=file
        )


def read_parquet(path: Path, *, file: str, limits: Limits | None) -> RawTable:
    try:
        parquet = pq.ParquetFile(path)
        meta = parquet.metadata
        names = list(parquet.schema_arrow.names)
        _check_header(names, file=file, limits=limits)
        _check_rows(meta.num_rows, file=file, limits=limits)
        # Read a row group at a time, counting what it inflates to: the metadata's sizes are
        # the file's own claim.
        groups = []
        inflated = 0
        for index in range(parquet.num_row_groups):
            group = parquet.read_row_group(index)
            inflated += group.nbytes
            if limits is not None and inflated > limits.max_uncompressed_bytes:
                raise DatasetInvalid(
                    f"the table inflates past {limits.max_uncompressed_bytes} bytes", file=file
                )
            groups.append(group)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetInvalid(f"cannot be read as Parquet: {exc}", file=file) from exc
    table = pa.concat_tables(groups) if groups else parquet.schema_arrow.empty_table()
    if table.num_rows == 0:
        raise DatasetInvalid("the file has no rows", file=file)
    _check_rows(table.num_rows, file=file, limits=limits)
    if len(names) == 1:
        raise DatasetInvalid(
            f"the file has a single column {names[0]!r}; a table needs a target and at least "
            "one feature",
            file=file,
        )
    return RawTable(
        file=file,
        columns={name: table.column(name) for name in names},
        first_row=1,
        num_rows=table.num_rows,
    )


# ---- columns to values -----------------------------------------------------------------------


def _is_number_type(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_boolean(kind)
    )


def _is_text_type(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def as_text_column(column: pa.ChunkedArray) -> pa.Array:
    """The column as one nullable string array (dictionary-encoded text decoded)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_large_string(array.type):
        array = array.cast(pa.string())
    return array


def _first(mask: pa.Array) -> int:
    return int(np.flatnonzero(pc.fill_null(mask, False).to_numpy(zero_copy_only=False))[0])


def infer_kind(table: RawTable, name: str) -> Kind:
    """Numeric or categorical, as the module docstring says."""
    array = as_text_column(table.columns[name])
    if _is_number_type(array.type):
        return "numeric"
    if not _is_text_type(array.type):
        raise DatasetInvalid(
            f"the type {array.type} is neither numeric nor text", file=table.file, column=name
        )
    present = len(array) - array.null_count
    if present == 0:
        raise DatasetInvalid("the column has no values", file=table.file, column=name)
    numbers = pc.sum(pc.cast(pc.match_substring_regex(array, _NUMBER), pa.int64())).as_py() or 0
    return "numeric" if 2 * numbers > present else "categorical"


def number_values(table: RawTable, name: str) -> np.ndarray:
    """The column as float64, NaN where a value is missing; a non-number is an error."""
    array = as_text_column(table.columns[name])
    if _is_number_type(array.type):
        values = np.asarray(
            pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64
        )
    elif _is_text_type(array.type):
        is_number = pc.match_substring_regex(array, _NUMBER)
        bad = pc.invert(pc.fill_null(is_number, True))
        if pc.any(bad).as_py():
            index = _first(bad)
            raw = array[index].as_py()
            what = (
                "is not a finite number"
                if pc.match_substring_regex(pa.array([raw]), _INFINITY, ignore_case=True)[0].as_py()
                else "is not a number"
            )
            raise DatasetInvalid(
                f"{raw!r} {what}", file=table.file, row=table.row_of(index), column=name
            )
        cast = pc.cast(pc.utf8_trim_whitespace(array), pa.float64())
        values = np.asarray(cast.to_numpy(zero_copy_only=False), dtype=np.float64)
    else:
        raise DatasetInvalid(f"the type {array.type} is not numeric", file=table.file, column=name)
    infinite = np.isinf(values)
    if infinite.any():
        index = int(np.flatnonzero(infinite)[0])
        raise DatasetInvalid(
            f"{array[index].as_py()!r} is not a finite number",
            file=table.file,
            row=table.row_of(index),
            column=name,
        )
    return values


def text_values(table: RawTable, name: str) -> pa.Array:
    """The column as nullable text (numbers as pyarrow formats them), for classes and categories."""
    array = as_text_column(table.columns[name])
    if _is_text_type(array.type):
        return array
    if _is_number_type(array.type):
        floats = pa.types.is_floating(array.type)
        if floats:
            # NaN in a float column is a missing value, as it is for a numeric feature.
            array = pc.if_else(pc.is_nan(array), pa.scalar(None, array.type), array)
        return pc.cast(array, pa.string())
    raise DatasetInvalid(
        f"the type {array.type} is neither numeric nor text", file=table.file, column=name
    )


def preview_rows(table: RawTable, *, rows: int, columns: int, target: str) -> list[dict[str, str]]:
    """The first rows as the file holds them, as text (a missing value is empty): the first
    `columns` columns, and the target wherever it is."""
    shown = list(table.columns)[:columns]
    if target not in shown:
        shown = [*shown[: columns - 1], target]
    out: list[dict[str, str]] = [{} for _ in range(min(rows, table.num_rows))]
    for name in shown:
        head = as_text_column(table.columns[name].slice(0, len(out)))
        for index, value in enumerate(head.to_pylist()):
            out[index][name] = "" if value is None else str(value)
    return out
