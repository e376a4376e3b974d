"""Which loss and which hits a batch is judged by, by task and output width."""

from __future__ import annotations

import pytest
import torch

from workers.train.objective import ObjectiveError, objective_for


@pytest.mark.parametrize(
    ("task", "width", "classes", "loss", "kind"),
    [
        ("classification", 3, 3, "cross_entropy", "logits"),
        ("classification", 3, 3, "mse", "logits"),
        ("classification", 2, 2, "cross_entropy", "logits"),
        ("classification", 1, 2, "mse", "probability"),
        ("classification", 1, 2, "cross_entropy", "probability"),
        ("regression", 1, 0, "mse", "regression"),
    ],
)
def test_the_head_kind_follows_the_task_and_the_width(task, width, classes, loss, kind):
    assert objective_for(task=task, width=width, classes=classes, loss=loss).kind == kind


@pytest.mark.parametrize(
    ("task", "width", "classes", "loss", "message"),
    [
        ("regression", 1, 0, "cross_entropy", "trains with mse"),
        ("regression", 3, 0, "mse", "has 1 output"),
        ("classification", 4, 3, "cross_entropy", "4 outputs for 3 classes"),
        ("classification", 1, 3, "mse", "1 outputs for 3 classes"),
    ],
)
def test_a_loss_or_width_the_task_cannot_use_is_refused(task, width, classes, loss, message):
    with pytest.raises(ObjectiveError, match=message):
        objective_for(task=task, width=width, classes=classes, loss=loss)


def test_a_probability_head_counts_hits_on_the_right_side_of_one_half():
    objective = objective_for(task="classification", width=1, classes=2, loss="mse")
    outputs = torch.tensor([[0.9], [0.2], [0.6], [0.4]])
    targets = torch.tensor([1, 0, 0, 0])
    loss = objective.loss(outputs, targets)
    assert float(loss) == pytest.approx((0.01 + 0.04 + 0.36 + 0.16) / 4)
    assert objective.totals(outputs, targets, loss).tolist() == pytest.approx(
        [float(loss) * 4, 3.0, 4.0]
    )


def test_a_regression_has_no_hits_and_mse_on_the_target():
    objective = objective_for(task="regression", width=1, classes=0, loss="mse")
    outputs = torch.tensor([[1.0], [2.0]])
    targets = torch.tensor([0.0, 2.0])
    loss = objective.loss(outputs, targets)
    assert float(loss) == pytest.approx(0.5)
    assert objective.totals(outputs, targets, loss).tolist() == [1.0, 0.0, 2.0]
    assert objective.has_accuracy is False
