"""`dotted_errors`: the one mapping from pydantic's errors to the API's dotted field paths."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from portal.jobs.schemas import JobRequest, MlpParams, dotted_errors


def errors_of(model: type[pydantic.BaseModel], data: Any, *, prefix: str = "") -> dict[str, Any]:
    with pytest.raises(pydantic.ValidationError) as caught:
        model.model_validate(data, strict=True)
    return dotted_errors(caught.value, prefix=prefix)


def test_it_keys_nested_fields_and_list_items_by_dotted_path() -> None:
    errors = errors_of(
        JobRequest,
        {
            "dataset": 1,
            "model": 1,
            "training": {"epochs": 0},
            "hyperparameters": {"hidden_sizes": [8, 0]},
        },
    )

    assert set(errors) == {"training.epochs", "hyperparameters.hidden_sizes.1"}
    assert errors["training.epochs"] == ["Input should be greater than or equal to 1"]


def test_it_roots_the_paths_under_a_prefix() -> None:
    errors = errors_of(MlpParams, {"dropout": 1.5}, prefix="hyperparameters")

    assert list(errors) == ["hyperparameters.dropout"]


def test_an_error_about_the_whole_object_is_keyed_all_or_the_prefix() -> None:
    assert list(errors_of(JobRequest, [1, 2])) == ["__all__"]
    assert list(errors_of(MlpParams, "relu", prefix="hyperparameters")) == ["hyperparameters"]
