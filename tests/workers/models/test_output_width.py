from __future__ import annotations

import pytest

from workers.messages import CnnModel, LinearModel, MlpModel
from workers.models import ModelShapeError, output_width, sigmoid_binary

SIGMOID = MlpModel(hidden_sizes=(5,), activation="sigmoid", output="sigmoid")


def test_classification_has_one_output_per_class_and_regression_one():
    assert output_width(LinearModel(), task="classification", num_classes=3) == 3
    assert output_width(CnnModel(), task="classification", num_classes=2) == 2
    assert output_width(MlpModel(), task="regression", num_classes=0) == 1


def test_a_sigmoid_mlp_on_two_classes_has_one_output():
    assert output_width(SIGMOID, task="classification", num_classes=2) == 1
    assert sigmoid_binary(SIGMOID)
    assert not sigmoid_binary(MlpModel())
    assert not sigmoid_binary(LinearModel())


def test_a_sigmoid_mlp_is_refused_for_more_classes_or_for_regression():
    with pytest.raises(ModelShapeError, match="for two classes, but this dataset has 3"):
        output_width(SIGMOID, task="classification", num_classes=3)
    with pytest.raises(ModelShapeError, match="regression target is standardised"):
        output_width(SIGMOID, task="regression", num_classes=0)


def test_classification_with_one_class_is_refused():
    with pytest.raises(ModelShapeError, match="at least two classes"):
        output_width(LinearModel(), task="classification", num_classes=1)
