"""The job request schema: one pydantic model validates a job from the form and the API alike.

`hyperparameters` is an object whose shape depends on the chosen architecture, so it is
checked in two steps: here only that it is a small JSON object, then by `model_spec_for`
against that architecture's msgspec Struct (`workers.messages`, the one declaration the node
parses too), over the architecture's defaults. `portal.jobs.services.job_submit` stores the
validated request (hyperparameters merged) on the job; the scheduler turns it into the
node-side `workers.messages.AttemptSpec`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from portal.catalog.models import ModelArchitecture
from portal.lib.text import check_safe_text
from workers.messages import CustomModel, ModelSpec

# No NUL (PostgreSQL refuses it), other control characters or bidi overrides.
SafeName = Annotated[str, AfterValidator(check_safe_text)]
# Pools and label keys and values: short names a node's configuration sets.
LabelText = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
GpuModelText = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}$")]


HParamName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainingParams(_Strict):
    epochs: int = Field(default=30, ge=1, le=10_000)
    batch_size: int = Field(default=16, ge=1, le=65_536)
    learning_rate: float = Field(default=0.01, gt=0.0, le=10.0)
    optimizer: Literal["adam", "sgd"] = "adam"
    loss: Literal["cross_entropy", "mse"] = "cross_entropy"
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    checkpoint_every: int = Field(
        default=1, ge=1, le=10_000, description="Write a checkpoint every this many epochs."
    )
    keep_last: int = Field(
        default=2, ge=1, le=100, description="Keep this many newest checkpoints (and the best)."
    )
    best_metric: Literal["val_loss", "val_accuracy"] = Field(
        default="val_loss", description="What makes a checkpoint the best one."
    )


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


class SchedulingParams(_Strict):
    max_run_time_minutes: int | None = Field(
        default=None,
        ge=1,
        le=30 * 24 * 60,
        description="Stop an attempt that runs longer than this (blank: the cluster default).",
    )
    preemptible: bool = Field(
        default=False,
        description="A higher-priority job may stop this one; it is requeued and resumes "
        "from its last checkpoint.",
    )


class JobRequest(_Strict):
    name: SafeName = Field(default="", max_length=200)
    dataset: int = Field(description="Id of a ready dataset you can see.")
    model: int = Field(description="Id of a model architecture you can see.")
    hyperparameters: dict[HParamName, Any] = Field(
        default_factory=dict,
        max_length=64,
        description="The architecture's hyperparameters (its defaults fill the rest); "
        "validated against the chosen model's architecture.",
    )
    training: TrainingParams = Field(default_factory=TrainingParams)
    resources: Resources = Field(default_factory=Resources)
    priority: int = Field(default=0, ge=-100, le=100)
    max_restarts: int = Field(default=0, ge=0, le=10)
    team: SafeName | None = Field(
        default=None,
        max_length=100,
        description="Name of one of your teams to charge the job to (blank: your first team).",
    )
    scheduling: SchedulingParams = Field(default_factory=SchedulingParams)


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


class HyperparametersInvalid(ValueError):
    """Hyperparameters the architecture refuses: `errors` keyed like `dotted_errors`."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


# msgspec says where with a JSON path: "Expected `int` >= 1 - at `$.hidden_sizes[1]`".
_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`$")


def _msgspec_errors(exc: msgspec.ValidationError, *, prefix: str) -> dict[str, list[str]]:
    match = _AT.match(str(exc))
    assert match is not None  # the pattern matches any text
    message, path = match["message"], match["path"] or ""
    parts = [part for part in re.split(r"[.\[\]]+", path) if part]
    if not parts and (unknown := _UNKNOWN.match(message)):
        parts = [unknown["name"]]
    return {".".join([prefix, *parts]): [message]}


def model_spec_for(architecture: ModelArchitecture, hyperparameters: dict[str, Any]) -> ModelSpec:
    """The node-side model spec: `hyperparameters` over the architecture's defaults, checked
    against its Struct. Raises `HyperparametersInvalid` keyed `hyperparameters.<field>` (or
    `model` when the architecture's own defaults are wrong)."""
    if "architecture" in hyperparameters:
        raise HyperparametersInvalid(
            {"hyperparameters.architecture": ["The model decides the architecture."]}
        )
    defaults: dict[str, Any] = dict(architecture.default_params)
    if architecture.family == ModelArchitecture.Family.CUSTOM:
        # The user's hyperparameters are passed to their `build_model(**hparams)` as they are.
        custom = {
            "architecture": "custom",
            "code_uri": architecture.code_uri,
            "code_sha256": architecture.code_sha256,
            "hparams": {**defaults, **hyperparameters},
        }
        try:
            return msgspec.convert(custom, CustomModel, strict=True)
        except msgspec.ValidationError as exc:
            [(key, messages)] = _msgspec_errors(exc, prefix="").items()
            if key.startswith(".hparams"):
                key = "hyperparameters" + key.removeprefix(".hparams")
            else:
                key = "model"
            raise HyperparametersInvalid({key: messages}) from exc
    family = architecture.family
    try:
        msgspec.convert({**defaults, "architecture": family}, ModelSpec, strict=True)
    except msgspec.ValidationError as exc:
        raise HyperparametersInvalid(
            {"model": [f"{architecture.name}'s default hyperparameters are invalid: {exc}"]}
        ) from exc
    try:
        spec: ModelSpec = msgspec.convert(
            {**defaults, **hyperparameters, "architecture": family}, ModelSpec, strict=True
        )
    except msgspec.ValidationError as exc:
        # msgspec stops at the first error; each field over the (valid) defaults alone finds
        # every bad one. What none explains alone (d_model against heads) is the whole's.
        errors: dict[str, list[str]] = {}
        for name, value in hyperparameters.items():
            try:
                msgspec.convert(
                    {**defaults, name: value, "architecture": family}, ModelSpec, strict=True
                )
            except msgspec.ValidationError as field_exc:
                errors.update(_msgspec_errors(field_exc, prefix="hyperparameters"))
        raise HyperparametersInvalid(
            errors or _msgspec_errors(exc, prefix="hyperparameters")
        ) from exc
    return spec


def model_params(spec: ModelSpec) -> dict[str, Any]:
    """The hyperparameters of `spec` as the job stores them (JSON, without `architecture`)."""
    data: dict[str, Any] = msgspec.to_builtins(spec)
    data.pop("architecture", None)
    if isinstance(spec, CustomModel):
        return dict(data["hparams"])
    return data
