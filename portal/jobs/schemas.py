"""The job request schema: one pydantic model validates a job from the form and the API alike.

`portal.jobs.services.job_submit` stores the validated request on the job; the scheduler turns
it into the node-side `workers.messages.AttemptSpec`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from portal.lib.text import check_safe_text

HiddenSize = Annotated[int, Field(ge=1, le=4096)]
# No NUL (PostgreSQL refuses it), other control characters or bidi overrides.
SafeName = Annotated[str, AfterValidator(check_safe_text)]
# Pools and label keys and values: short names a node's configuration sets.
LabelText = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
GpuModelText = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MlpParams(_Strict):
    hidden_sizes: list[HiddenSize] = Field(
        default_factory=lambda: [32, 32],
        min_length=1,
        max_length=8,
        description="Width of each hidden layer.",
    )
    activation: Literal["relu", "tanh", "gelu"] = "relu"
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)


class TrainingParams(_Strict):
    epochs: int = Field(default=30, ge=1, le=10_000)
    batch_size: int = Field(default=16, ge=1, le=65_536)
    learning_rate: float = Field(default=0.01, gt=0.0, le=10.0)
    optimizer: Literal["adam", "sgd"] = "adam"
    loss: Literal["cross_entropy", "mse"] = "cross_entropy"
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    val_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)


class Resources(_Strict):
    nodes: int = Field(default=1, ge=1, le=1024)
    procs_per_node: int = Field(
        default=1, ge=1, le=1024, description="Processes per node on CPU nodes."
    )
    gpus_per_node: int = Field(
        default=0, ge=0, le=64, description="GPUs per node; 0 runs on CPU slots."
    )
    pool: LabelText | None = Field(default=None, description="Run only on nodes of this pool.")
    gpu_model: GpuModelText | None = Field(
        default=None,
        description='Run only on nodes whose GPUs\' model name contains this ("H200").',
    )
    labels: dict[LabelText, LabelText] = Field(
        default_factory=dict,
        max_length=16,
        description="Run only on nodes that carry every one of these labels.",
    )


class JobRequest(_Strict):
    name: SafeName = Field(default="", max_length=200)
    dataset: int = Field(description="Id of a ready dataset you can see.")
    model: int = Field(description="Id of a model architecture you can see.")
    hyperparameters: MlpParams = Field(default_factory=MlpParams)
    training: TrainingParams = Field(default_factory=TrainingParams)
    resources: Resources = Field(default_factory=Resources)
    priority: int = Field(default=0, ge=-100, le=100)
    max_restarts: int = Field(default=0, ge=0, le=10)


def dotted_errors(exc: ValidationError, *, prefix: str = "") -> dict[str, list[str]]:
    """pydantic's errors keyed by the dotted path of the field at fault (`"training.epochs"`,
    list items by index: `"hyperparameters.hidden_sizes.1"`), the shape of the API's 400 answer
    and of `job_submit`'s ValidationError. `prefix` roots the paths when only part of a request
    was validated; an error about the whole object is keyed `prefix`, or `"__all__"`."""
    errors: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False):
        key = ".".join([prefix, *map(str, error["loc"])] if prefix else map(str, error["loc"]))
        errors.setdefault(key or "__all__", []).append(error["msg"])
    return errors
