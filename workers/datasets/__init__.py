"""Datasets on the node plane: validate an upload, prepare a version, preprocess predictions.

The contract is `docs/catalog.md` ("workers.datasets"). Nothing here imports torch except
`workers.datasets.mapped` (`MappedDataset`), so the portal's control worker can validate an
upload without loading it.
"""

from workers.datasets.errors import DatasetInvalid, Limits
from workers.datasets.inspection import Inspection, SchemaField
from workers.datasets.predict import MAX_ROWS, rows_to_inputs
from workers.datasets.prepare import Prepared, cache_key, prepare
from workers.datasets.split import split_indices
from workers.datasets.targets import ClassChart, HistogramChart, Summary
from workers.datasets.validate import inspect

__all__ = [
    "MAX_ROWS",
    "ClassChart",
    "DatasetInvalid",
    "HistogramChart",
    "Inspection",
    "Limits",
    "Prepared",
    "SchemaField",
    "Summary",
    "cache_key",
    "inspect",
    "prepare",
    "rows_to_inputs",
    "split_indices",
]
