"""The search request: one pydantic model validates a search from the form and the API alike.

A dimension names what it varies by a dotted path into the job request: a hyperparameter of
the model's architecture (`hyperparameters.dropout`) or a training setting
(`training.learning_rate`). Its shape (kind, bounds) is checked here; whether its values are
ones the architecture's Struct or `TrainingParams` accepts is checked against the chosen model
by `portal.experiments.services.search_create` (`space_errors`).
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, model_validator

from portal.jobs.schemas import JobRequest, SafeName

# The training settings a search may vary; the rest (loss, checkpointing) stay the base's.
TRAINING_DIMENSIONS = ("learning_rate", "batch_size", "epochs", "optimizer")
DimensionName = Annotated[
    str,
    StringConstraints(
        pattern=r"^(hyperparameters\.[A-Za-z_][A-Za-z0-9_]{0,63}|training\.("
        + "|".join(TRAINING_DIMENSIONS)
        + "))$"
    ),
]
# metric -> (metric point split, field): the value per epoch Optuna is told.
METRICS: dict[str, tuple[str, str]] = {
    "val_loss": ("val", "loss"),
    "val_accuracy": ("val", "accuracy"),
}
Metric = Literal["val_loss", "val_accuracy"]
MAX_GRID = 10_000
MAX_TRIALS = 500


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Dimension(_Strict):
    """One axis of the space: a choice among values, a float range (uniform or log-uniform),
    or an integer range (with a step)."""

    name: DimensionName
    kind: Literal["choice", "uniform", "log_uniform", "int"]
    choices: list[JsonValue] | None = Field(default=None, min_length=1, max_length=64)
    low: float | None = None
    high: float | None = None
    step: int | None = Field(default=None, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.kind == "choice":
            if self.choices is None:
                raise ValueError("A choice needs its choices.")
            if self.low is not None or self.high is not None or self.step is not None:
                raise ValueError("A choice has choices, not low, high or step.")
            if len({canonical(choice) for choice in self.choices}) != len(self.choices):
                raise ValueError("The choices repeat a value.")
            return self
        if self.choices is not None:
            raise ValueError(f"A {self.kind} range has low and high, not choices.")
        if self.low is None or self.high is None:
            raise ValueError(f"A {self.kind} range needs low and high.")
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low >= self.high:
            raise ValueError("low must be below high, both finite.")
        if self.kind == "log_uniform" and self.low <= 0:
            raise ValueError("A log-uniform range needs low above 0.")
        if self.kind == "int":
            if self.low != int(self.low) or self.high != int(self.high):
                raise ValueError("An int range needs whole low and high.")
        elif self.step is not None:
            raise ValueError("Only an int range has a step.")
        return self

    def grid_count(self) -> int | None:
        """How many values the dimension has, or None when it is continuous (counted, not
        listed: an int range may be huge)."""
        if self.kind == "choice":
            return len(self.choices or [])
        if self.kind == "int":
            assert self.low is not None and self.high is not None
            return (int(self.high) - int(self.low)) // (self.step or 1) + 1
        return None

    def grid_values(self) -> list[Any] | None:
        """Every value of the dimension (for a grid, whose size is bounded), or None when it
        is continuous."""
        if self.kind == "choice":
            return list(self.choices or [])
        if self.kind == "int":
            assert self.low is not None and self.high is not None
            return list(range(int(self.low), int(self.high) + 1, self.step or 1))
        return None

    def extremes(self) -> list[Any]:
        """The values whose acceptance shows every value of the dimension is acceptable (the
        bounds a Struct or TrainingParams declares are intervals)."""
        if self.kind == "choice":
            return list(self.choices or [])
        assert self.low is not None and self.high is not None
        if self.kind == "int":
            low, step = int(self.low), self.step or 1
            return [low, low + (int(self.high) - low) // step * step]
        return [float(self.low), float(self.high)]


class EarlyStopping(_Strict):
    """Optuna's pruner and its settings; a step is an epoch."""

    kind: Literal["none", "successive_halving", "hyperband", "median"] = "none"
    min_resource: int = Field(
        default=1, ge=1, le=10_000, description="Epochs before the first judgement (rung 0)."
    )
    reduction_factor: int = Field(
        default=3, ge=2, le=10, description="Keep the best 1/reduction_factor at each rung."
    )
    min_early_stopping_rate: int = Field(default=0, ge=0, le=10)
    startup_trials: int = Field(
        default=2, ge=0, le=100, description="Median: completed trials before any pruning."
    )
    warmup_steps: int = Field(
        default=0, ge=0, le=10_000, description="Median: epochs of a trial before pruning it."
    )


class SearchRequest(_Strict):
    name: SafeName = Field(default="", max_length=200)
    job: JobRequest = Field(description="The base job request every trial starts from.")
    space: list[Dimension] = Field(min_length=1, max_length=16)
    method: Literal["grid", "random", "tpe"] = "random"
    metric: Metric = "val_loss"
    direction: Literal["minimize", "maximize"] | None = Field(
        default=None, description="Blank: minimize a loss, maximize an accuracy."
    )
    max_trials: int = Field(default=10, ge=1, le=MAX_TRIALS)
    parallelism: int = Field(default=2, ge=1, le=64)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    early_stopping: EarlyStopping = Field(default_factory=EarlyStopping)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [dimension.name for dimension in self.space]
        if len(set(names)) != len(names):
            raise ValueError("Each dimension may appear once.")
        if self.method == "grid":
            continuous = [d.name for d in self.space if d.grid_count() is None]
            if continuous:
                raise ValueError(
                    f"A grid needs choices or int ranges; {', '.join(continuous)} is continuous."
                )
            if grid_size(self.space) > MAX_GRID:
                raise ValueError(f"The grid has more than {MAX_GRID} points.")
        return self

    @property
    def resolved_direction(self) -> str:
        if self.direction:
            return self.direction
        return "maximize" if self.metric.endswith("accuracy") else "minimize"


def grid_size(space: list[Dimension]) -> int:
    size = 1
    for dimension in space:
        size *= dimension.grid_count() or 0
        if size > MAX_GRID:
            return size
    return size


def grid_points(space: list[Dimension]) -> list[dict[str, Any]]:
    """Every point of a grid, in order (for the docs and tests; Optuna walks the grid)."""
    names = [dimension.name for dimension in space]
    return [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(dimension.grid_values() or [] for dimension in space))
    ]


def canonical(value: Any) -> str:
    """A JSON value as one string: how a choice travels through Optuna's categorical
    distributions, which take only scalars (a choice may be a list: `hidden_sizes`)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def with_params(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The job request `base` (JSON) with each dotted dimension set to its value."""
    request = {
        key: dict(value) if isinstance(value, dict) else value for key, value in base.items()
    }
    for name, value in params.items():
        section, field = name.split(".", 1)
        request.setdefault(section, {})
        request[section] = {**request[section], field: value}
    return request
