"""`dotted_errors`: the one mapping from pydantic's errors to the API's dotted field paths."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from portal.catalog.models import ModelArchitecture
from portal.jobs.schemas import (
    HyperparametersInvalid,
    JobRequest,
    Resources,
    dotted_errors,
    model_spec_for,
)


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
            "resources": {"labels": {"zone": "a", "-bad": "b"}},
        },
    )

    assert set(errors) == {"training.epochs", "resources.labels.-bad.[key]"}
    assert errors["training.epochs"] == ["Input should be greater than or equal to 1"]


def test_it_roots_the_paths_under_a_prefix() -> None:
    errors = errors_of(Resources, {"nodes": 0}, prefix="resources")

    assert list(errors) == ["resources.nodes"]


def test_an_error_about_the_whole_object_is_keyed_all_or_the_prefix() -> None:
    assert list(errors_of(JobRequest, [1, 2])) == ["__all__"]
    assert list(errors_of(Resources, "big", prefix="resources")) == ["resources"]


def hyperparameter_errors(family: str, given: dict[str, Any]) -> dict[str, list[str]]:
    architecture = ModelArchitecture(name=family, family=family, default_params={})
    with pytest.raises(HyperparametersInvalid) as caught:
        model_spec_for(architecture, given)
    return caught.value.errors


def test_hyperparameters_are_keyed_by_dotted_path_every_bad_field_at_once() -> None:
    errors = hyperparameter_errors(
        "mlp", {"hidden_sizes": [8, 0], "activation": "swish", "dropout": 0.5, "depth": 3}
    )
    assert errors == {
        "hyperparameters.hidden_sizes.1": ["Expected `int` >= 1"],
        "hyperparameters.activation": [
            "Invalid enum value 'swish'",
        ],
        "hyperparameters.depth": ["Object contains unknown field `depth`"],
    }


def test_a_rule_across_hyperparameters_is_keyed_on_hyperparameters() -> None:
    errors = hyperparameter_errors("transformer", {"d_model": 30, "heads": 4})
    [message] = errors["hyperparameters"]
    assert message.startswith("d_model 30 is not a multiple of heads 4")
