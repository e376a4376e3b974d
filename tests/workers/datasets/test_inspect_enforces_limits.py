"""Over a limit, a file is refused before it costs more, and the message names the limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.datasets import DatasetInvalid, Limits, inspect
from workers.messages import PreprocessSpec


def _csv(tmp_path: Path, rows: int, columns: int) -> Path:
    path = tmp_path / "data.csv"
    header = ",".join(f"c{j}" for j in range(columns)) + ",label\n"
    body = "".join(",".join(["1"] * columns) + f",{'xy'[i % 2]}\n" for i in range(rows))
    path.write_text(header + body)
    return path


def _inspect(path: Path, pp: PreprocessSpec, limits: Limits) -> None:
    inspect(
        path, format="csv", target="label", task="classification", preprocessing=pp, limits=limits
    )


def test_it_refuses_too_many_rows(tmp_path, pp):
    with pytest.raises(DatasetInvalid, match=r"^data.csv: the table has 11 rows; the limit is 10$"):
        _inspect(_csv(tmp_path, 11, 2), pp, Limits(max_rows=10))


def test_it_refuses_too_many_columns(tmp_path, pp):
    with pytest.raises(
        DatasetInvalid, match=r"^data.csv: the table has 5 columns; the limit is 4$"
    ):
        _inspect(_csv(tmp_path, 4, 4), pp, Limits(max_columns=4))


def test_it_refuses_a_file_over_the_size_limit(tmp_path, pp):
    path = _csv(tmp_path, 40, 2)
    size = path.stat().st_size
    assert size > 100
    with pytest.raises(
        DatasetInvalid, match=rf"^data.csv: the file is {size} bytes; the limit is 100 bytes$"
    ):
        _inspect(path, pp, Limits(max_bytes=100))


def test_the_same_file_passes_within_the_limits(tmp_path, pp):
    inspection = inspect(
        _csv(tmp_path, 10, 2),
        format="csv",
        target="label",
        task="classification",
        preprocessing=pp,
        limits=Limits(max_rows=10, max_columns=3),
    )
    assert inspection.num_rows == 10
