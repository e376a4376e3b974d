"""The table half of the bad-file corpus: each file is refused with its own precise message."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.workers.datasets.conftest import preprocessing
from workers.datasets import DatasetInvalid, inspect
from workers.messages import PreprocessSpec


def _inspect_csv(tmp_path: Path, text: str | bytes, pp: PreprocessSpec, **kw: str) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    inspect(
        path,
        format="csv",
        target=kw.get("target", "label"),
        task=kw.get("task", "classification"),  # type: ignore[arg-type]
        preprocessing=pp,
    )


def _refused(tmp_path: Path, text: str | bytes, pp: PreprocessSpec, **kw: str) -> DatasetInvalid:
    with pytest.raises(DatasetInvalid) as caught:
        _inspect_csv(tmp_path, text, pp, **kw)
    return caught.value


def test_it_refuses_an_empty_file(tmp_path, pp):
    assert str(_refused(tmp_path, b"", pp)) == "data.csv: the file is empty"


def test_it_refuses_a_header_without_rows(tmp_path, pp):
    assert str(_refused(tmp_path, "a,b,label\n", pp)) == (
        "data.csv: the file has a header but no rows"
    )


def test_it_suggests_the_delimiter_of_a_semicolon_file(tmp_path, pp):
    error = _refused(tmp_path, "a;b;label\n1;2;x\n3;4;y\n", pp)
    assert str(error) == (
        "data.csv row 1: the header has a single column 'a;b;label': the file looks "
        "separated by ';', not by commas; save it comma-separated"
    )


def test_it_suggests_the_delimiter_of_a_tab_file(tmp_path, pp):
    error = _refused(tmp_path, "a\tb\tlabel\n1\t2\tx\n", pp)
    assert "looks separated by a tab, not by commas" in str(error)


def test_it_names_the_row_of_a_ragged_row(tmp_path, pp):
    error = _refused(tmp_path, "a,b,label\n1,2,x\n3,4\n5,6,y\n", pp)
    assert str(error) == "data.csv row 3: the row has 2 values but the header has 3 columns"
    assert (error.file, error.row, error.column) == ("data.csv", 3, None)


def test_it_names_row_column_and_value_of_a_non_number_in_a_numeric_column(tmp_path, pp):
    rows = "".join(f"{i},{i * 2},{'xy'[i % 2]}\n" for i in range(8))
    text = "age,b,label\n" + rows.replace("5,10,", "abc,10,")
    error = _refused(tmp_path, text, pp)
    # The header is row 1, so the sixth record (age 5) is row 7.
    assert str(error) == "data.csv row 7, column 'age': 'abc' is not a number"
    assert (error.row, error.column) == (7, "age")


def test_it_refuses_an_infinite_value(tmp_path, pp):
    error = _refused(tmp_path, "a,b,label\n1,2,x\ninf,3,y\n4,5,x\n", pp)
    assert str(error) == "data.csv row 3, column 'a': 'inf' is not a finite number"


def test_a_column_of_words_is_categorical_not_an_error(tmp_path, pp):
    path = tmp_path / "data.csv"
    path.write_text(
        "colour,b,label\n" + "".join(f"c{i % 3},{i},{'xy'[i % 2]}\n" for i in range(20))
    )
    inspection = inspect(
        path, format="csv", target="label", task="classification", preprocessing=pp
    )
    kinds = {field["name"]: field["type"] for field in inspection.schema}
    assert kinds == {"colour": "categorical", "b": "numeric", "label": "categorical"}


def test_it_lists_the_header_when_the_target_column_is_missing(tmp_path, pp):
    error = _refused(tmp_path, "a,b,class\n1,2,x\n3,4,y\n", pp)
    assert (
        str(error)
        == "data.csv: there is no target column 'label'; the header has 'a', 'b', 'class'"
    )


def test_it_refuses_a_single_class(tmp_path, pp):
    error = _refused(tmp_path, "a,b,label\n1,2,x\n3,4,x\n5,6,x\n", pp)
    assert str(error) == (
        "data.csv, column 'label': the target has only one class 'x'; classification needs "
        "at least two"
    )


def test_it_refuses_a_text_target_for_regression(tmp_path, pp):
    error = _refused(tmp_path, "a,y\n1,x\n2,y\n3,z\n", pp, target="y", task="regression")
    assert str(error) == (
        "data.csv, column 'y': the target is text, not numbers; regression needs a numeric target"
    )


def test_it_refuses_a_duplicated_column_name(tmp_path, pp):
    error = _refused(tmp_path, "a,a,label\n1,2,x\n", pp)
    assert str(error) == "data.csv row 1: column 'a' appears twice in the header"


def test_it_refuses_when_dropping_missing_values_leaves_too_few_rows(tmp_path, pp):
    error = _refused(tmp_path, "a,b,label\n1,,x\n,4,y\n5,6,x\n", pp)
    assert str(error) == (
        "data.csv: 1 row(s) remain after dropping 2 with missing values; at least 2 are needed"
    )


def test_it_refuses_bytes_that_are_not_utf8_text(tmp_path, pp):
    error = _refused(tmp_path, "a,b,label\n1,2,caf\xe9\n".encode("latin-1"), pp)
    assert str(error) == ("data.csv: the format is csv but the bytes are binary data, not CSV text")


def test_it_refuses_a_parquet_file_uploaded_as_csv(tmp_path, pp):
    path = tmp_path / "data.csv"
    pq.write_table(pa.table({"a": [1, 2], "label": ["x", "y"]}), path)
    with pytest.raises(DatasetInvalid) as caught:
        inspect(path, format="csv", target="label", task="classification", preprocessing=pp)
    assert str(caught.value) == (
        "data.csv: the format is csv but the bytes are a Parquet file, not CSV text"
    )


def test_it_refuses_csv_text_uploaded_as_parquet(tmp_path, pp):
    path = tmp_path / "data.parquet"
    path.write_text("a,label\n1,x\n")
    with pytest.raises(DatasetInvalid) as caught:
        inspect(path, format="parquet", target="label", task="classification", preprocessing=pp)
    assert str(caught.value) == (
        "data.parquet: the format is parquet but the bytes are text, not a Parquet file"
    )


def test_it_names_the_row_of_a_non_finite_parquet_value(tmp_path, pp):
    path = tmp_path / "data.parquet"
    table = pa.table({"a": [1.0, 2.0, float("inf")], "label": ["x", "y", "x"]})
    pq.write_table(table, path)
    with pytest.raises(DatasetInvalid) as caught:
        inspect(path, format="parquet", target="label", task="classification", preprocessing=pp)
    # Parquet has no header row: the first record is row 1.
    assert str(caught.value) == "data.parquet row 3, column 'a': inf is not a finite number"


def test_it_refuses_a_split_that_leaves_no_training_rows(tmp_path):
    error = _refused(
        tmp_path,
        "a,label\n1,x\n2,y\n3,x\n",
        preprocessing(val_fraction=0.5, test_fraction=0.4),
    )
    assert str(error) == (
        "data.csv: 3 rows leave none to train on after 1 test and 2 validation rows"
    )
