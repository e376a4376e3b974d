"""The npz part of the bad-file corpus."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from tests.workers.datasets.conftest import write_zip
from workers.datasets import DatasetInvalid, inspect
from workers.messages import PreprocessSpec


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    with path.open("wb") as out:
        np.savez(out, **arrays)  # type: ignore[arg-type]
    return path


def _refused(path: Path, pp: PreprocessSpec, task: str = "classification") -> str:
    with pytest.raises(DatasetInvalid) as caught:
        inspect(path, format="npz", target="y", task=task, preprocessing=pp)  # type: ignore[arg-type]
    return str(caught.value)


def _xy(rows: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(rows, 3)), np.arange(rows) % 2


def test_it_names_the_row_of_a_nan(tmp_path, pp):
    x, y = _xy()
    x[4, 2] = np.nan
    assert _refused(_npz(tmp_path / "data.npz", X=x, y=y), pp) == "data.npz row 5: X[4, 2] is NaN"


def test_it_names_the_row_of_an_infinity(tmp_path, pp):
    x, y = _xy()
    x[0, 1] = -np.inf
    assert _refused(_npz(tmp_path / "data.npz", X=x, y=y), pp) == (
        "data.npz row 1: X[0, 1] is infinite"
    )


def test_it_refuses_an_archive_without_y(tmp_path, pp):
    x, _ = _xy()
    assert _refused(_npz(tmp_path / "data.npz", X=x), pp) == (
        "data.npz: an npz dataset holds exactly the arrays X and y; this one has X"
    )


def test_it_refuses_rows_that_do_not_match(tmp_path, pp):
    x, y = _xy()
    assert _refused(_npz(tmp_path / "data.npz", X=x, y=y[:7]), pp) == (
        "data.npz: y has shape [7]; it must be [n] with n = 10, the rows of X"
    )


def test_it_refuses_pickled_objects_without_unpickling_them(tmp_path, pp):
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}, {"b": 2}], dtype=object), allow_pickle=True)
    _, y = _xy(2)
    plain = io.BytesIO()
    np.save(plain, y)
    path = write_zip(tmp_path / "data.npz", {"X.npy": buffer.getvalue(), "y.npy": plain.getvalue()})
    assert _refused(path, pp) == "data.npz: X holds Python objects; only numbers or text"


def test_it_refuses_a_header_that_declares_more_than_the_bytes(tmp_path, pp):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 3)}
    )
    _, y = _xy(2)
    plain = io.BytesIO()
    np.save(plain, y)
    path = write_zip(tmp_path / "data.npz", {"X.npy": header.getvalue(), "y.npy": plain.getvalue()})
    assert _refused(path, pp).startswith(
        "data.npz: X declares shape [1000000000, 3] but holds only"
    )


def test_it_refuses_a_single_npy_uploaded_as_npz(tmp_path, pp):
    path = tmp_path / "data.npz"
    with path.open("wb") as out:
        np.save(out, np.zeros(3))
    assert _refused(path, pp) == (
        "data.npz: the format is npz but the bytes are a single NumPy .npy array, not a NumPy "
        ".npz archive (a zip of .npy arrays)"
    )


def test_it_refuses_a_text_target_for_regression(tmp_path, pp):
    x, _ = _xy()
    y = np.array(["a", "b"] * 5)
    assert _refused(_npz(tmp_path / "data.npz", X=x, y=y), pp, task="regression") == (
        "data.npz: y has dtype <U1; regression needs a numeric target"
    )


def test_it_refuses_a_zip_of_other_files_uploaded_as_npz(tmp_path, pp):
    members = {f"circle/{i}.png": b"x" for i in range(7)}
    path = write_zip(tmp_path / "data.npz", members)
    assert _refused(path, pp) == (
        "data.npz: an npz dataset holds exactly the arrays X and y; this one has "
        "circle/0.png, circle/1.png, circle/2.png, circle/3.png, circle/4.png and 2 more"
    )


def test_it_refuses_an_array_member_that_is_not_npy(tmp_path, pp):
    path = write_zip(tmp_path / "data.npz", {"X.npy": b"not an array", "y.npy": b"nor this"})
    assert _refused(path, pp).startswith("data.npz: X cannot be read as a NumPy array")
