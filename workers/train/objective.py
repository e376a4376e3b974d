"""What a batch's outputs are judged by: the loss and, for classification, the hits.

Three kinds of head, chosen by the task and the model's output width
(`workers.models.output_width`):

- `logits` (classification, one output per class): cross-entropy, or MSE between the softmax
  probabilities and the one-hot target;
- `probability` (classification with two classes and a sigmoid head of width 1: the model
  itself outputs the probability of the second class): binary cross-entropy or MSE on that
  probability, a hit when it is on the right side of 0.5;
- `regression` (width 1): MSE on the standardised target; no accuracy.

`totals` are `[loss_sum, correct, count]` in float64, the shape the trainer all-reduces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

Kind = Literal["logits", "probability", "regression"]


class ObjectiveError(Exception):
    """The training spec asks for a loss the task cannot use."""


@dataclass(frozen=True)
class Objective:
    kind: Kind
    loss_name: Literal["cross_entropy", "mse"]
    classes: int

    @property
    def has_accuracy(self) -> bool:
        return self.kind != "regression"

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.kind == "logits":
            if self.loss_name == "cross_entropy":
                return F.cross_entropy(outputs, targets)
            one_hot = F.one_hot(targets, num_classes=self.classes).to(outputs.dtype)
            return F.mse_loss(outputs.softmax(dim=1), one_hot)
        values = outputs.reshape(-1)
        if self.kind == "probability":
            wanted = targets.to(values.dtype)
            if self.loss_name == "cross_entropy":
                return F.binary_cross_entropy(values.clamp(1e-7, 1 - 1e-7), wanted)
            return F.mse_loss(values, wanted)
        return F.mse_loss(values, targets.to(values.dtype))

    def totals(
        self, outputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor
    ) -> torch.Tensor:
        """`[loss_sum, correct, count]` of one batch (float64, on the batch's device)."""
        count = targets.shape[0]
        with torch.no_grad():
            if self.kind == "logits":
                correct = (outputs.argmax(dim=1) == targets).sum().to(torch.float64)
            elif self.kind == "probability":
                correct = ((outputs.reshape(-1) > 0.5).long() == targets).sum().to(torch.float64)
            else:
                correct = torch.zeros((), dtype=torch.float64, device=outputs.device)
            return torch.stack(
                [
                    loss.detach().to(torch.float64) * count,
                    correct,
                    torch.tensor(count, dtype=torch.float64, device=outputs.device),
                ]
            )


def objective_for(
    *, task: str, width: int, classes: int, loss: Literal["cross_entropy", "mse"]
) -> Objective:
    """The objective of a model with `width` outputs on a `task` dataset with `classes`."""
    if task == "regression":
        if loss != "mse":
            raise ObjectiveError(f"a regression dataset trains with mse, not {loss}")
        if width != 1:
            raise ObjectiveError(f"a regression model has 1 output, this one has {width}")
        return Objective(kind="regression", loss_name="mse", classes=0)
    if width == 1 and classes == 2:
        return Objective(kind="probability", loss_name=loss, classes=classes)
    if width != classes:
        raise ObjectiveError(f"the model has {width} outputs for {classes} classes")
    return Objective(kind="logits", loss_name=loss, classes=classes)
