"""The contract between the planes: every node-plane message, declared once.

Each message is a `msgspec.Struct` whose annotations and `Meta` constraints are the whole
contract, and both sides use the same declaration:

- a sender builds the Struct with its constructor (which does not validate: building one costs
  about as much as a tuple, so the trainer can report a metric every step) and sends it with
  `encode()` (a stream entry) or `AttemptSpec.to_json()` (a Celery argument);
- a receiver parses with `decode()` / `AttemptSpec.from_json()`, which check every type and
  constraint and raise `MessageInvalid` naming the field (`$.placement.device`), so a wrong
  value is refused at the door, never deep inside torchrun or an INSERT.

The ranges are what PostgreSQL stores (ids are `bigint`, counts `integer`) and what a node can
run, so anything that passes here can be stored and run; the portal's own, tighter limits on a
job are policy and stay in `portal.jobs.schemas`. `__post_init__` holds the few rules
constraints cannot say; it runs on construction too, so none is on a hot path.
"""

from __future__ import annotations

import json
import math
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, overload

import msgspec
from msgspec import Meta, Struct

# Celery task names on a node's queue (`node.<name>`). The portal sends them by name, so it
# never imports the node code.
RUN_ATTEMPT_TASK = "workers.agent.run_attempt"
CANCEL_ATTEMPT_TASK = "workers.agent.cancel_attempt"
# A run message not taken by its node within this many seconds is dropped (Celery `expires`):
# by then the portal has given up on the attempt. A node may rely on it: a cancel left for an
# attempt longer ago than this cannot belong to a run message that arrives now.
RUN_ATTEMPT_EXPIRES_S = 600

# A runaway line (a progress bar without newlines, a dumped tensor) is cut, not refused.
MAX_LINE_CHARS = 16_384

# PositiveIntegerField is a PostgreSQL `integer`; ids and byte counts are `bigint`.
Id = Annotated[int, Meta(ge=1, le=2**63 - 1)]
Count = Annotated[int, Meta(ge=0, le=2**31 - 1)]
ByteCount = Annotated[int, Meta(ge=0, le=2**63 - 1)]
NodeName = Annotated[str, Meta(min_length=1, max_length=100)]
# Seconds since the epoch, up to the last second Python's datetime can hold (year 9999).
# NaN fails both bounds.
Timestamp = Annotated[float, Meta(ge=0.0, le=253_402_300_799.0)]
Text = Annotated[str, Meta(max_length=1000)]
Column = Annotated[str, Meta(min_length=1, max_length=200)]
# A pool name, or a label key or value, as a node's configuration sets them.
Label = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]


def node_queue(node_name: str) -> str:
    return f"node.{node_name}"


class MessageInvalid(ValueError):
    """A message that does not match its declaration; the text names the field and why."""


# ---- the attempt spec (portal -> node, as a Celery argument) ---------------------------------


class _Spec(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A part of the spec: immutable, and an unknown field is an error, not a silent drop."""


Fraction = Annotated[float, Meta(ge=0.0, lt=1.0)]
Sha256 = Annotated[str, Meta(pattern="^[0-9a-f]{64}$")]
Uri = Annotated[str, Meta(min_length=1, max_length=2000)]
DatasetFormat = Literal["csv", "parquet", "npz", "images"]
Task = Literal["classification", "regression"]


class FeatureSpec(_Spec, frozen=True):
    """One input column and how every node (and the predictor) turns it into numbers.

    Statistics are computed once, by the portal's validation, on the training split only,
    and applied identically everywhere: a numeric value becomes `(value - shift) / scale`, a
    missing one `fill` first (when the preprocessing imputes); a categorical one becomes a
    one-hot block over `categories` (an unseen category is all zeros, a missing one
    `fill_category`). For images there is one numeric feature per channel (`R`, `G`, `B` or
    `L`) whose `shift` and `scale` normalise that channel's 0-1 pixel values.
    """

    name: Column
    kind: Literal["numeric", "categorical"]
    fill: float = 0.0
    shift: float = 0.0
    scale: Annotated[float, Meta(gt=0.0)] = 1.0
    categories: Annotated[tuple[Column, ...], Meta(max_length=1000)] = ()
    fill_category: Annotated[str, Meta(max_length=200)] = ""


class PreprocessSpec(_Spec, frozen=True):
    """The preprocessing a dataset version was validated with: part of the version."""

    missing: Literal["drop", "impute"]
    normalization: Literal["minmax", "standard", "none"]
    # Rows (after dropping) are shuffled with `numpy.random.default_rng(split_seed)`; the first
    # `round(n * test_fraction)` are test, the next `max(1, round(n * val_fraction))` are
    # validation, the rest train (`workers.datasets.split_indices`).
    split_seed: Count
    val_fraction: Annotated[float, Meta(gt=0.0, lt=1.0)]
    test_fraction: Fraction

    def __post_init__(self) -> None:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must leave rows to train on")


class DatasetSpec(_Spec, frozen=True):
    """One dataset version as a node reads it: where, which bytes, and how to prepare them."""

    uri: Uri
    sha256: Sha256
    format: DatasetFormat
    task: Task
    # The target column (CSV, Parquet), `y` (npz) or `label` (images: the folder names).
    target: Column
    # Class names in index order (classification); empty for regression.
    classes: Annotated[tuple[Column, ...], Meta(max_length=10_000)]
    # Tabular inputs in column order; for npz one numeric feature per column of X (`x0`, ...);
    # for images one per channel.
    features: Annotated[tuple[FeatureSpec, ...], Meta(min_length=1, max_length=10_000)]
    # The shape of one prepared example: `(inputs,)` for tables, `(channels, height, width)`
    # for images, `(length, width)` for an npz of sequences.
    input_shape: Annotated[
        tuple[Annotated[int, Meta(ge=1, le=1_000_000)], ...], Meta(min_length=1, max_length=3)
    ]
    # Rows after dropping missing values: a node that prepares another count read other bytes.
    num_rows: Annotated[int, Meta(ge=2, le=2**31 - 1)]
    preprocessing: PreprocessSpec
    # A regression target is trained as `(y - target_shift) / target_scale`.
    target_shift: float = 0.0
    target_scale: Annotated[float, Meta(gt=0.0)] = 1.0


# ---- model architectures: one parameter Struct per architecture, tagged by its name -----------
# Each field's type, default, bounds and `description` are the portal form's field for it
# (`workers.hyperparameters.parameter_fields`), so a hyperparameter is declared here only.

Width = Annotated[int, Meta(ge=1, le=4096)]
Dropout = Annotated[
    float, Meta(ge=0.0, lt=1.0, description="Probability of zeroing an activation in training.")
]
Activation = Literal["relu", "tanh", "gelu", "sigmoid"]


class _Model(_Spec, frozen=True, tag_field="architecture"):
    """A model's architecture and its hyperparameters; `architecture` names which."""


class LinearModel(_Model, frozen=True, tag="linear"):
    """Logistic regression (classification) or linear regression (regression)."""


class MlpModel(_Model, frozen=True, tag="mlp"):
    """A multi-layer perceptron over the flattened input."""

    hidden_sizes: Annotated[
        tuple[Width, ...],
        Meta(min_length=1, max_length=8, description="Units in each hidden layer, in order."),
    ] = (32, 32)
    activation: Annotated[
        Activation, Meta(description="The nonlinearity after each hidden layer.")
    ] = "relu"
    dropout: Dropout = 0.0
    # "sigmoid" needs exactly two classes and gives one output unit (the probability of the
    # second class), as in the classic 10-5-1 network trained with MSE.
    output: Annotated[
        Literal["logits", "sigmoid"],
        Meta(
            description="logits: one output per class (softmax). sigmoid: one unit giving the "
            "probability of the second class; binary classification only."
        ),
    ] = "logits"


class CnnModel(_Model, frozen=True, tag="cnn"):
    """Conv-ReLU-MaxPool blocks, one per entry of `channels`, then a linear head."""

    channels: Annotated[
        tuple[Annotated[int, Meta(ge=1, le=1024)], ...],
        Meta(
            min_length=1,
            max_length=6,
            description="Output channels of each convolution block; each block halves the "
            "image's height and width.",
        ),
    ] = (16, 32)
    kernel_size: Annotated[
        Literal[3, 5, 7], Meta(description="Side of the square convolution kernels.")
    ] = 3
    dropout: Dropout = 0.0


class ResNetModel(_Model, frozen=True, tag="resnet"):
    """A small ResNet: `blocks[i]` basic residual blocks at width `width * 2**i`."""

    blocks: Annotated[
        tuple[Annotated[int, Meta(ge=1, le=8)], ...],
        Meta(
            min_length=1,
            max_length=4,
            description="Residual blocks in each stage; every stage after the first doubles "
            "the channels and halves the image's height and width.",
        ),
    ] = (1, 1)
    width: Annotated[int, Meta(ge=4, le=256, description="Channels of the first stage.")] = 16


class TransformerModel(_Model, frozen=True, tag="transformer"):
    """A Transformer encoder over a sequence (`(length, width)` inputs, or one token per
    feature of a table), mean-pooled into a linear head."""

    d_model: Annotated[
        int,
        Meta(
            ge=8,
            le=1024,
            description="Width of each token inside the encoder; a multiple of heads.",
        ),
    ] = 32
    heads: Annotated[int, Meta(ge=1, le=16, description="Attention heads per layer.")] = 4
    layers: Annotated[int, Meta(ge=1, le=12, description="Encoder layers.")] = 2
    feedforward: Annotated[
        int, Meta(ge=8, le=8192, description="Hidden units of each layer's feed-forward block.")
    ] = 64
    dropout: Dropout = 0.0

    def __post_init__(self) -> None:
        # Every head attends over d_model / heads features, so the split must be whole. Said
        # here, not at build time, so the form's own validation already refuses it.
        if self.d_model % self.heads:
            raise ValueError(
                f"d_model {self.d_model} is not a multiple of heads {self.heads}: each head "
                "gets d_model / heads features; choose a d_model divisible by heads"
            )


HParam = int | float | bool | Annotated[str, Meta(max_length=200)]


class CustomModel(_Model, frozen=True, tag="custom"):
    """A user's Python file exposing `build_model(input_shape, num_classes, **hparams)`: run
    only on nodes, only after its bytes match `code_sha256`."""

    code_uri: Uri
    code_sha256: Sha256
    hparams: Annotated[
        dict[Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")], HParam],
        Meta(max_length=64),
    ] = {}


ModelSpec = LinearModel | MlpModel | CnnModel | ResNetModel | TransformerModel | CustomModel
BUILTIN_ARCHITECTURES: tuple[type[_Model], ...] = (
    LinearModel,
    MlpModel,
    CnnModel,
    ResNetModel,
    TransformerModel,
)


class TrainingSpec(_Spec, frozen=True):
    # What a node can run and store (epochs and steps are `integer` columns). The portal's
    # tighter limits (`portal.jobs.schemas.TrainingParams`) are policy, and policy is its own.
    epochs: Annotated[int, Meta(ge=1, le=2**31 - 1)]
    batch_size: Annotated[int, Meta(ge=1, le=2**31 - 1)]
    learning_rate: Annotated[float, Meta(gt=0.0, le=1e6)]
    optimizer: Literal["adam", "sgd"]
    # cross_entropy and mse for classification (mse on the class probabilities), mse for
    # regression.
    loss: Literal["cross_entropy", "mse"]
    seed: Count
    # A checkpoint after every `checkpoint_every` epochs (and after the last); the newest
    # `keep_last` are kept, and the best by `best_metric` besides.
    checkpoint_every: Annotated[int, Meta(ge=1, le=2**31 - 1)] = 1
    keep_last: Annotated[int, Meta(ge=1, le=1000)] = 2
    best_metric: Literal["val_loss", "val_accuracy"] = "val_loss"


class PlacementSpec(_Spec, frozen=True):
    """Where this node sits in the attempt's gang."""

    nnodes: Annotated[int, Meta(ge=1, le=1024)]
    node_rank: Annotated[int, Meta(ge=0, le=1023)]
    nproc_per_node: Annotated[int, Meta(ge=1, le=1024)]
    device: Literal["cpu", "cuda"]
    master_addr: Annotated[str, Meta(min_length=1, max_length=255)]
    master_port: Annotated[int, Meta(ge=1, le=65_535)]
    # This node's GPUs (NVML indices) or CPU slots that the share holds: the launcher sets
    # CUDA_VISIBLE_DEVICES to the GPUs and pins the ranks to the CPUs of the slots.
    gpu_indices: Annotated[tuple[Annotated[int, Meta(ge=0, le=1023)], ...], Meta(max_length=64)]
    cpu_indices: Annotated[tuple[Annotated[int, Meta(ge=0, le=65_535)], ...], Meta(max_length=1024)]

    def __post_init__(self) -> None:
        if self.node_rank >= self.nnodes:
            raise ValueError(f"node_rank {self.node_rank} is not below nnodes {self.nnodes}")
        if len(set(self.gpu_indices)) != len(self.gpu_indices):
            raise ValueError(f"gpu_indices {list(self.gpu_indices)} name a GPU twice")
        if len(set(self.cpu_indices)) != len(self.cpu_indices):
            raise ValueError(f"cpu_indices {list(self.cpu_indices)} name a CPU slot twice")


class AttemptSpec(_Spec, frozen=True):
    """Everything a node needs to run its share of one attempt of one job."""

    job_id: Id
    attempt_id: Id
    job_name: Annotated[str, Meta(max_length=200)]
    node_name: NodeName
    dataset: DatasetSpec
    model: ModelSpec
    training: TrainingSpec
    placement: PlacementSpec
    checkpoint_dir: Annotated[str, Meta(min_length=1, max_length=4096)]

    def to_json(self) -> dict[str, Any]:
        """The spec as JSON builtins, the form it crosses Celery in."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data

    @classmethod
    def from_json(cls, data: Any) -> AttemptSpec:
        """The spec a node received, checked field by field; `MessageInvalid` says what is wrong."""
        return _convert(data, cls)

    def dumps(self) -> str:
        """The spec as the canonical JSON text a node stores in `spec.json`."""
        return json.dumps(self.to_json(), sort_keys=True)


# The longest grace a stop message may grant (an hour): a node refuses more.
MAX_STOP_GRACE_S = 3600.0


class StopRequest(_Spec, frozen=True):
    """Why and how gently a node stops its share of an attempt: the cancel task's second
    argument (`CANCEL_ATTEMPT_TASK(attempt_id, stop)`), also kept in the attempt's `cancel`
    mark for its launcher.

    A `cancel` (the user's, or the portal ending a gang) and a `preempt` (the scheduler making
    room for a higher-priority job) take the same path: SIGTERM to the ranks, which checkpoint
    at their next step boundary and exit, and SIGKILL after `grace_s`. A preempted attempt's
    exit is reported as stopped with the reason `preempted by ...`."""

    kind: Literal["cancel", "preempt"]
    grace_s: Annotated[float, Meta(ge=0.0, le=MAX_STOP_GRACE_S)]
    # For the exit reason: "by job #12", say.
    detail: Annotated[str, Meta(max_length=200)] = ""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data

    @classmethod
    def from_json(cls, data: Any) -> StopRequest:
        return _convert(data, cls)


class _EnvelopePlacement(Struct):
    node_rank: Annotated[int, Meta(ge=0, le=1023)]


class SpecEnvelope(Struct):
    """What a node can still read of a spec it refuses: enough to address an exit report."""

    job_id: Id
    attempt_id: Id
    node_name: NodeName
    placement: _EnvelopePlacement


def spec_envelope(data: Any) -> SpecEnvelope | None:
    """The addressing fields of a spec that failed `AttemptSpec.from_json`, if they are sound."""
    try:
        return msgspec.convert(data, SpecEnvelope, strict=True)
    except msgspec.ValidationError:
        return None


# ---- trained models: the trainer's export and the predict worker's request ------------------

PREDICT_QUEUE = "predict"
# The most rows one prediction request may carry (the API refuses more before sending).
PREDICT_MAX_ROWS = 1000


class ExportManifest(Struct, kw_only=True):
    """`model.json`, written by the trainer next to the exported weights when a job succeeds
    (`to_json`) and read by the registry and the predict worker (`from_json`): what the
    weights are and how their outputs become answers. Unknown fields are ignored."""

    model: ModelSpec
    input_shape: Annotated[
        tuple[Annotated[int, Meta(ge=1, le=1_000_000)], ...], Meta(min_length=1, max_length=3)
    ]
    outputs: Annotated[int, Meta(ge=1, le=10_000)]
    task: Task
    classes: Annotated[tuple[Column, ...], Meta(max_length=10_000)]
    target_shift: float
    target_scale: Annotated[float, Meta(gt=0.0)]
    # The dataset version the weights were trained on: registration checks it is the job's.
    dataset_sha256: Sha256
    # The checkpoint the weights come from (relative to the job's checkpoint directory), its
    # epoch and its value of the job's best_metric.
    checkpoint: Annotated[str, Meta(min_length=1, max_length=255)]
    epoch: Count
    best_metric: Literal["val_loss", "val_accuracy"]
    best_value: float
    # Whether `model.torchscript.pt` was written (custom code may not trace).
    torchscript: bool

    def to_json(self) -> bytes:
        """The manifest's JSON, as the trainer writes `model.json`."""
        return msgspec.json.format(msgspec.json.encode(self), indent=2)

    @classmethod
    def from_json(cls, raw: bytes) -> ExportManifest:
        try:
            return msgspec.json.decode(raw, type=cls, strict=True)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise MessageInvalid(f"model.json: {exc}") from exc


class ExportFile(_Spec, frozen=True):
    uri: Uri
    sha256: Sha256


class PredictRequest(_Spec, frozen=True):
    """One prediction batch for a registered model version (portal -> `predict` worker).

    Built-in architectures load from safetensors into `workers.models.build_model`; custom
    code loads from its TorchScript export, so a user's Python never runs in the worker.
    """

    version_id: Id
    model: ModelSpec
    input_shape: Annotated[
        tuple[Annotated[int, Meta(ge=1, le=1_000_000)], ...], Meta(min_length=1, max_length=3)
    ]
    outputs: Annotated[int, Meta(ge=1, le=10_000)]
    weights: ExportFile
    weights_format: Literal["safetensors", "torchscript"]
    # The dataset version's preprocessing, applied to the rows as it was in training.
    dataset: DatasetSpec
    rows: Annotated[list[Any], Meta(min_length=1, max_length=PREDICT_MAX_ROWS)]

    def to_json(self) -> dict[str, Any]:
        """The request as JSON builtins, the form it crosses Celery in."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data

    @classmethod
    def from_json(cls, data: Any) -> PredictRequest:
        """The request the worker received, checked field by field (`MessageInvalid`)."""
        return _convert(data, cls)


# ---- Redis Streams (node -> portal) ----------------------------------------------------------
# Each entry has one field, "data", holding the JSON of one of the entries below (`encode`).


StreamKind = Literal["metrics", "ranks", "logs", "events", "health"]


def stream_name(prefix: str, kind: StreamKind) -> str:
    return f"{prefix}:{kind}"


class _Entry(Struct, kw_only=True):
    """A stream entry. Unknown fields are ignored, so a portal can read a node that sends more."""


class MetricEntry(_Entry):
    """One metric point from the trainer's reporting rank, all-reduced across ranks.

    No `__post_init__`: it is built every training step. A diverging run's NaN or infinite loss
    is a fact worth keeping, so `loss` is any float.
    """

    job: Id
    attempt: Id
    seq: Count  # contiguous from 0 within an attempt
    split: Literal["train", "val"]
    step: Count
    epoch: Count
    loss: float
    accuracy: float | None
    ts: Timestamp


class RankStatsEntry(_Entry):
    """One rank's own figures over a window of its training steps (about a second), summed
    up by its node's launcher from the rank's step records. `(attempt, rank, step)` is unique:
    `step` is the window's last step."""

    job: Id
    attempt: Id
    node_rank: Count
    rank: Count
    local_rank: Count
    step: Count
    steps: Annotated[int, Meta(ge=1, le=2**31 - 1)]  # steps in the window
    step_time_s: Annotated[float, Meta(ge=0.0)]  # their mean wall time
    samples_per_s: Annotated[float, Meta(ge=0.0)]  # this rank's examples over their time
    # Memory used on this rank's GPU (NVML) at the window's end; None on CPU.
    gpu_memory_used: ByteCount | None
    ts: Timestamp


class LogEntry(_Entry):
    """One line of a rank's stdout or stderr, captured by the launcher on its node.

    `rank` and `local_rank` name the rank that wrote it (torchrun tags each rank's lines);
    None for torchrun's own lines. A `notice` line is the launcher's own: it says the job's
    log was cut at its cap (`TRAINYARD_LOG_MAX_BYTES_PER_JOB`)."""

    job: Id
    attempt: Id
    node_rank: Count
    rank: Count | None
    local_rank: Count | None
    seq: Count  # contiguous from 0 per (attempt, node_rank)
    stream: Literal["stdout", "stderr", "notice"]
    line: str
    ts: Timestamp

    def __post_init__(self) -> None:
        # PostgreSQL text cannot hold NUL; a binary blob on stdout must not poison the batch.
        if "\x00" in self.line:
            self.line = self.line.replace("\x00", "\ufffd")
        if len(self.line) > MAX_LINE_CHARS:
            self.line = self.line[:MAX_LINE_CHARS]


class AttemptStartedEntry(_Entry, tag_field="type", tag="attempt.started"):
    job: Id
    attempt: Id
    node: NodeName
    node_rank: Count
    ts: Timestamp


class AttemptExitedEntry(_Entry, tag_field="type", tag="attempt.exited"):
    job: Id
    attempt: Id
    node: NodeName
    node_rank: Count
    exit_code: Annotated[int, Meta(ge=-(2**31), le=2**31 - 1)]
    cancelled: bool
    reason: str
    # False when another attempt would fail the same way (bad data or spec, a diverging loss,
    # a dataset checksum mismatch): the portal then fails the job instead of requeueing it.
    retryable: bool
    ts: Timestamp

    def __post_init__(self) -> None:
        if "\x00" in self.reason:
            self.reason = self.reason.replace("\x00", "\ufffd")


class CheckpointSavedEntry(_Entry, tag_field="type", tag="checkpoint.saved"):
    """A checkpoint the reporting rank wrote whole (renamed into place) after `epoch`."""

    job: Id
    attempt: Id
    epoch: Count
    step: Count
    # The file's path under the job's checkpoint directory, e.g. `attempt-7/epoch-3.pt`.
    name: Annotated[str, Meta(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_./-]+$")]
    sha256: Sha256
    size_bytes: ByteCount
    val_loss: float | None
    val_accuracy: float | None
    # Whether it is the best so far by the job's `best_metric` (then `best.pt` is a copy).
    is_best: bool
    ts: Timestamp


# Where an attempt's time goes on a node, in the order they happen: the agent took the run
# message, the dataset is in the node's cache, torchrun was started, the gang finished its
# rendezvous (`init_process_group` returned on the reporting rank), the first and the last
# training step. The portal adds what only it knows: queued, placed and exited.
Phase = Literal[
    "received", "dataset_fetched", "torchrun_started", "rendezvous_done", "first_step", "last_step"
]
NODE_PHASES: tuple[Phase, ...] = (
    "received",
    "dataset_fetched",
    "torchrun_started",
    "rendezvous_done",
    "first_step",
    "last_step",
)


class AttemptPhaseEntry(_Entry, tag_field="type", tag="attempt.phase"):
    """One node reached one phase of an attempt at `ts` (the node's clock)."""

    job: Id
    attempt: Id
    node: NodeName
    node_rank: Count
    phase: Phase
    ts: Timestamp


EventEntry = AttemptStartedEntry | AttemptExitedEntry | CheckpointSavedEntry | AttemptPhaseEntry


def _finite_or_none(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


class GpuHealth(_Entry):
    index: Count
    uuid: Text
    name: Text
    # NVML reads NaN for a sensor that is not there; PostgreSQL's JSON has no NaN, and one such
    # heartbeat would fail its batch on every retry, so a missing reading is None.
    utilization: float | None  # percent
    memory_used: ByteCount
    memory_total: ByteCount
    temperature: float | None  # Celsius
    power: float | None  # watts
    # Uncorrectable ECC errors since the driver loaded (None where NVML cannot say): any makes
    # the node unhealthy, so it takes no new work.
    ecc_uncorrected: Count | None

    def __post_init__(self) -> None:
        self.utilization = _finite_or_none(self.utilization)
        self.temperature = _finite_or_none(self.temperature)
        self.power = _finite_or_none(self.power)


class HealthEntry(_Entry):
    """A node's heartbeat: who it is, what it offers and how it is doing."""

    node: NodeName
    hostname: Text
    address: Text
    pool: Label
    labels: Annotated[dict[Label, Label], Meta(max_length=16)]
    cpu_slots: Count
    gpu_count: Count
    cpu_percent: Annotated[float, Meta(ge=0.0, le=1e6)]
    memory_used: ByteCount
    memory_total: ByteCount
    disk_used: ByteCount
    disk_total: ByteCount
    gpus: list[GpuHealth]
    # Attempts whose launcher is alive on this node.
    running_attempts: list[Id]
    # Attempts this node has taken on and not yet finished: a spec is on disk and no exit has
    # been recorded (it may still be fetching data, or its launcher may be running). The
    # portal loses an active attempt placed here that is in neither list.
    claimed_attempts: list[Id]
    ts: Timestamp


Entry = (
    MetricEntry
    | RankStatsEntry
    | LogEntry
    | AttemptStartedEntry
    | AttemptExitedEntry
    | CheckpointSavedEntry
    | AttemptPhaseEntry
    | HealthEntry
)
E = TypeVar("E")

# Module-level, so `encode()` pays for no set-up: the reporter calls it every training step.
# msgspec writes NaN and infinity as null (JSON has neither).
_encoder = msgspec.json.Encoder()


def encode(entry: Struct) -> bytes:
    """The JSON of `entry` (one of the entries above), the `data` field of its stream entry."""
    return _encoder.encode(entry)


def _convert(data: Any, kind: type[E]) -> E:
    try:
        return msgspec.convert(data, kind, strict=True)
    except msgspec.ValidationError as exc:
        raise MessageInvalid(str(exc)) from exc


@overload
def decode(raw: bytes | str, kind: type[E]) -> E: ...


@overload
def decode(raw: bytes | str, kind: UnionType) -> Entry: ...


def decode(raw: bytes | str, kind: Any) -> Any:
    """Parse and check one entry's JSON as `kind` (an entry Struct, or `EventEntry`).

    msgspec parses and checks in one pass (ingest's hot path). A Python node's `json.dumps`
    writes a diverged loss as `NaN`, which is not JSON and which msgspec's parser refuses, so
    text msgspec cannot parse is read again with the standard library first.
    """
    try:
        return msgspec.json.decode(raw, type=kind, strict=True)
    except msgspec.ValidationError as exc:
        if str(exc).startswith("Expected `object`") and " - at `" not in str(exc):
            raise MessageInvalid(f"data is not a JSON object: {exc}") from exc
        raise MessageInvalid(str(exc)) from exc
    except msgspec.DecodeError:
        pass
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MessageInvalid(f"data is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MessageInvalid("data is not a JSON object")
    return _convert(data, kind)


def phase_entry(*, spec: AttemptSpec, phase: Phase, ts: float) -> AttemptPhaseEntry:
    """The phase report of this node's share of `spec`: the one agent, launcher and trainer send."""
    return AttemptPhaseEntry(
        job=spec.job_id,
        attempt=spec.attempt_id,
        node=spec.node_name,
        node_rank=spec.placement.node_rank,
        phase=phase,
        ts=ts,
    )


def exited_entry(
    *,
    spec: AttemptSpec | SpecEnvelope,
    exit_code: int,
    cancelled: bool,
    reason: str,
    retryable: bool,
    ts: float,
) -> AttemptExitedEntry:
    """The exit report of this node's share of `spec`: the one the launcher and the agent send."""
    return AttemptExitedEntry(
        job=spec.job_id,
        attempt=spec.attempt_id,
        node=spec.node_name,
        node_rank=spec.placement.node_rank,
        exit_code=exit_code,
        cancelled=cancelled,
        reason=reason,
        retryable=retryable,
        ts=ts,
    )
