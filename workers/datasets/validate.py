"""`inspect()`: the one entry point of validation, for every format."""

from __future__ import annotations

from pathlib import Path

from workers.datasets import arrays, images, tables, tabular
from workers.datasets.errors import DatasetInvalid, Limits
from workers.datasets.inspection import Inspection, checked
from workers.datasets.sniff import check_file
from workers.messages import DatasetFormat, PreprocessSpec, Task


def inspect(
    path: Path,
    *,
    format: DatasetFormat,
    target: str,
    task: Task,
    preprocessing: PreprocessSpec,
    limits: Limits | None = None,
    name: str | None = None,
) -> Inspection:
    """Parse and check a dataset file; `DatasetInvalid` says precisely what is wrong.

    `target` is the column for CSV and Parquet; an npz's target is always `y` and an image
    set's `label` (its folders), whatever is passed. `name` is the file name messages show
    (the uploaded name; `path.name` by default). Statistics come from the training rows of
    `split_indices` only.
    """
    limits = limits or Limits()
    file = name or path.name
    try:
        return _inspect(
            path,
            file=file,
            format=format,
            target=target,
            task=task,
            preprocessing=preprocessing,
            limits=limits,
        )
    except DatasetInvalid as exc:
        if exc.file is not None:
            raise
        # A refusal that does not name its file (the split's) is about this one.
        raise DatasetInvalid(
            exc.reason, file=file, row=exc.row, column=exc.column, member=exc.member
        ) from exc


def _inspect(
    path: Path,
    *,
    file: str,
    format: DatasetFormat,
    target: str,
    task: Task,
    preprocessing: PreprocessSpec,
    limits: Limits,
) -> Inspection:
    check_file(path, format=format, name=file, limits=limits)
    if format == "csv" or format == "parquet":
        read = tables.read_csv if format == "csv" else tables.read_parquet
        table = read(path, file=file, limits=limits)
        inspection = tabular.inspect_table(
            table, format=format, target=target, task=task, preprocessing=preprocessing
        )
    elif format == "npz":
        x, y = arrays.read_npz(path, file=file, limits=limits)
        inspection = arrays.inspect_npz(x, y, file=file, task=task, preprocessing=preprocessing)
    else:
        inspection = images.inspect_images(
            path, file=file, task=task, preprocessing=preprocessing, limits=limits
        )
    return checked(inspection, file=file)
