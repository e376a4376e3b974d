"""A search's space is checked against the architecture's Struct and the training settings."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from portal.experiments.schemas import SearchRequest, grid_points
from portal.experiments.services import search_advance
from tests.experiments.helpers import create, search_body, trials


@pytest.mark.parametrize(
    ("dimension", "problem"),
    [
        ({"name": "hyperparameters.dropout", "kind": "uniform", "low": 0.0, "high": 1.5}, "1.5"),
        (
            {"name": "hyperparameters.depth", "kind": "int", "low": 1, "high": 3},
            "no hyperparameter depth",
        ),
        ({"name": "training.batch_size", "kind": "uniform", "low": 8, "high": 64}, "integer"),
        (
            {"name": "hyperparameters.activation", "kind": "choice", "choices": ["relu", "swish"]},
            "swish",
        ),
        ({"name": "training.learning_rate", "kind": "log_uniform", "low": 0.1, "high": 20}, "20"),
    ],
)
def test_it_refuses_values_the_model_or_training_cannot_take(
    owner: Any, iris: Any, mlp: Any, dimension: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        create(owner, iris, mlp, space=[dimension])
    message = " ".join(caught.value.message_dict["space.0"])
    assert problem in message


def test_a_grid_needs_discrete_dimensions(iris: Any, mlp: Any) -> None:
    body = search_body(iris, mlp, method="grid")
    with pytest.raises(ValueError, match="continuous"):
        SearchRequest.model_validate(body)


def test_a_grid_covers_every_combination(iris: Any, mlp: Any) -> None:
    space = [
        {"name": "training.batch_size", "kind": "int", "low": 8, "high": 24, "step": 8},
        {"name": "hyperparameters.hidden_sizes", "kind": "choice", "choices": [[8], [8, 8]]},
    ]
    request = SearchRequest.model_validate(search_body(iris, mlp, method="grid", space=space))
    assert len(grid_points(list(request.space))) == 6


def test_accuracy_is_maximised_by_default(iris: Any, mlp: Any) -> None:
    request = SearchRequest.model_validate(search_body(iris, mlp, metric="val_accuracy"))
    assert request.resolved_direction == "maximize"


def test_an_int_range_samples_on_its_step(owner: Any, iris: Any, mlp: Any, cpu_node: Any) -> None:
    space = [{"name": "training.batch_size", "kind": "int", "low": 8, "high": 30, "step": 8}]
    search = create(owner, iris, mlp, space=space, parallelism=2)
    search_advance(search_id=search.pk)
    assert {t.params["training.batch_size"] for t in trials(search)} <= {8, 16, 24}


def test_a_huge_int_grid_is_refused_without_listing_it(iris: Any, mlp: Any) -> None:
    space = [{"name": "training.epochs", "kind": "int", "low": 1, "high": 1e15}]
    with pytest.raises(ValueError, match="more than 10000 points"):
        SearchRequest.model_validate(search_body(iris, mlp, method="grid", space=space))
