"""A prediction request with a bad row is refused with the row, the feature and the reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.workers.datasets.conftest import preprocessing, spec_of
from workers.datasets import MAX_ROWS, DatasetInvalid, inspect, rows_to_inputs
from workers.messages import DatasetSpec


def _table_spec(tmp_path: Path, missing: str = "drop") -> DatasetSpec:
    path = tmp_path / "data.csv"
    path.write_text(
        "age,colour,label\n" + "".join(f"{i},{'rg'[i % 2]},{'ab'[i % 2]}\n" for i in range(10))
    )
    pp = preprocessing(missing=missing, normalization="none")
    inspection = inspect(
        path, format="csv", target="label", task="classification", preprocessing=pp
    )
    return spec_of(inspection, path)


def test_it_refuses_more_than_the_row_limit(tmp_path):
    spec = _table_spec(tmp_path)
    with pytest.raises(DatasetInvalid, match=f"at most {MAX_ROWS} are predicted at once"):
        rows_to_inputs([{"age": 1, "colour": "r"}] * (MAX_ROWS + 1), spec)


def test_it_refuses_no_rows(tmp_path):
    with pytest.raises(DatasetInvalid, match="non-empty list of rows"):
        rows_to_inputs([], _table_spec(tmp_path))


def test_a_missing_feature_is_an_error_when_the_version_drops_missing_values(tmp_path):
    with pytest.raises(DatasetInvalid) as caught:
        rows_to_inputs([{"age": 1, "colour": "r"}, {"colour": "g"}], _table_spec(tmp_path))
    assert str(caught.value) == (
        "input row 2, column 'age': the value is missing, and the version drops rows with "
        "missing values (it has no fill)"
    )


def test_a_missing_feature_is_filled_when_the_version_imputes(tmp_path):
    spec = _table_spec(tmp_path, missing="impute")
    inputs = rows_to_inputs([{"colour": None}], spec)
    age, colour = spec.features
    assert inputs[0, 0] == np.float32(age.fill)
    # The fill category's one-hot position is set.
    assert inputs[0, 1 + colour.categories.index(colour.fill_category)] == 1.0


def test_it_refuses_a_non_number_and_an_unknown_feature(tmp_path):
    spec = _table_spec(tmp_path)
    with pytest.raises(DatasetInvalid, match=r"^input row 1, column 'age': 'old' is not a number$"):
        rows_to_inputs([{"age": "old", "colour": "r"}], spec)
    with pytest.raises(DatasetInvalid, match=r"^input row 1: 'agee' is not a feature"):
        rows_to_inputs([{"agee": 3, "colour": "r"}], spec)


def test_an_unseen_category_is_all_zeros(tmp_path):
    inputs = rows_to_inputs([{"age": 2, "colour": "purple", "label": "a"}], _table_spec(tmp_path))
    assert inputs.tolist() == [[2.0, 0.0, 0.0]]


def test_an_npz_row_of_the_wrong_shape_is_refused(tmp_path):
    path = tmp_path / "data.npz"
    with path.open("wb") as out:
        np.savez(out, X=np.zeros((6, 3)) + np.arange(6)[:, None], y=np.arange(6) % 2)
    inspection = inspect(
        path, format="npz", target="y", task="classification", preprocessing=preprocessing()
    )
    with pytest.raises(
        DatasetInvalid, match=r"^input row 1: the row has shape \[2\]; one example is \[3\]$"
    ):
        rows_to_inputs([[1.0, 2.0]], spec_of(inspection, path))
