"""Specs over specs: overrides deep-merge over a stored spec, and the result is a request."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from portal.jobs.schemas import JobRequest
from portal.jobs.specs import request_from_spec, spec_merged

BASE = {"a": 1, "training": {"epochs": 3, "seed": 1}, "hyperparameters": {"hidden_sizes": [8, 8]}}


@pytest.mark.parametrize(
    ("overrides", "merged"),
    [
        ({}, BASE),
        ({"a": 2}, {**BASE, "a": 2}),
        ({"training": {"epochs": 5}}, {**BASE, "training": {"epochs": 5, "seed": 1}}),
        # Lists replace whole: [4] is the new value, not a patch of [8, 8].
        (
            {"hyperparameters": {"hidden_sizes": [4]}},
            {**BASE, "hyperparameters": {"hidden_sizes": [4]}},
        ),
        ({"training": None}, {**BASE, "training": None}),
        ({"new": {"x": 1}}, {**BASE, "new": {"x": 1}}),
    ],
)
def test_overrides_merge_objects_key_by_key_and_replace_the_rest(overrides, merged) -> None:
    assert spec_merged(BASE, overrides) == merged
    assert BASE["training"] == {"epochs": 3, "seed": 1}  # unchanged


def test_a_stored_spec_with_one_override_is_the_same_request_but_that_field() -> None:
    stored = JobRequest(dataset=1, model=2, name="x").model_dump(mode="json")
    request = request_from_spec(stored, {"training": {"learning_rate": 0.5}})
    changed = request.model_dump(mode="json")
    assert changed["training"].pop("learning_rate") == 0.5
    stored["training"].pop("learning_rate")
    assert changed == stored


def test_bad_overrides_are_reported_by_dotted_path() -> None:
    stored = JobRequest(dataset=1, model=2).model_dump(mode="json")
    with pytest.raises(ValidationError) as excinfo:
        request_from_spec(stored, {"training": {"epochs": 0}, "nonsense": 1})
    assert set(excinfo.value.message_dict) == {"training.epochs", "nonsense"}
