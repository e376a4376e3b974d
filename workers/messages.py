"""The contract between the planes: the attempt spec a node receives, and what it reports.

The portal validates a job with pydantic and serialises it into the plain JSON of
`AttemptSpec.to_json()`; the node rebuilds the frozen dataclasses with `AttemptSpec.from_json()`.
Stream entries are `TypedDict`s because they cross a process boundary as JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal, NotRequired, TypedDict

# Celery task names on a node's queue (`node.<name>`). The portal sends them by name, so it
# never imports the node code.
RUN_ATTEMPT_TASK = "workers.agent.run_attempt"
CANCEL_ATTEMPT_TASK = "workers.agent.cancel_attempt"
# A run message not taken by its node within this many seconds is dropped (Celery `expires`):
# by then the portal has given up on the attempt. A node may rely on it: a cancel left for an
# attempt longer ago than this cannot belong to a run message that arrives now.
RUN_ATTEMPT_EXPIRES_S = 600


def node_queue(node_name: str) -> str:
    return f"node.{node_name}"


@dataclass(frozen=True)
class DatasetSpec:
    uri: str
    sha256: str
    format: Literal["csv"]
    feature_columns: tuple[str, ...]
    label_column: str
    classes: tuple[str, ...]


@dataclass(frozen=True)
class ModelSpec:
    architecture: Literal["mlp"]
    hidden_sizes: tuple[int, ...]
    activation: Literal["relu", "tanh", "gelu"]
    dropout: float


@dataclass(frozen=True)
class TrainingSpec:
    epochs: int
    batch_size: int
    learning_rate: float
    optimizer: Literal["adam", "sgd"]
    loss: Literal["cross_entropy", "mse"]
    seed: int
    val_fraction: float


@dataclass(frozen=True)
class PlacementSpec:
    """Where this node sits in the attempt's gang."""

    nnodes: int
    node_rank: int
    nproc_per_node: int
    device: Literal["cpu", "cuda"]
    master_addr: str
    master_port: int
    # This node's GPUs (NVML indices) or CPU slots that the share holds: the launcher sets
    # CUDA_VISIBLE_DEVICES to the GPUs and pins the ranks to the CPUs of the slots.
    gpu_indices: tuple[int, ...]
    cpu_indices: tuple[int, ...]


@dataclass(frozen=True)
class AttemptSpec:
    """Everything a node needs to run its share of one attempt of one job."""

    job_id: int
    attempt_id: int
    job_name: str
    node_name: str
    dataset: DatasetSpec
    model: ModelSpec
    training: TrainingSpec
    placement: PlacementSpec
    checkpoint_dir: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AttemptSpec:
        dataset = dict(data["dataset"])
        dataset["feature_columns"] = tuple(dataset["feature_columns"])
        dataset["classes"] = tuple(dataset["classes"])
        model = dict(data["model"])
        model["hidden_sizes"] = tuple(model["hidden_sizes"])
        placement = dict(data["placement"])
        placement["gpu_indices"] = tuple(placement["gpu_indices"])
        placement["cpu_indices"] = tuple(placement["cpu_indices"])
        return cls(
            job_id=int(data["job_id"]),
            attempt_id=int(data["attempt_id"]),
            job_name=str(data["job_name"]),
            node_name=str(data["node_name"]),
            dataset=DatasetSpec(**dataset),
            model=ModelSpec(**model),
            training=TrainingSpec(**data["training"]),
            placement=PlacementSpec(**placement),
            checkpoint_dir=str(data["checkpoint_dir"]),
        )

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)


# ---- Redis Streams ---------------------------------------------------------------------------
# Each entry has one field, "data", holding the JSON of one of the payloads below.


def stream_name(prefix: str, kind: Literal["metrics", "logs", "events", "health"]) -> str:
    return f"{prefix}:{kind}"


class MetricEntry(TypedDict):
    """One metric point from the trainer's rank 0, all-reduced across ranks."""

    job: int
    attempt: int
    seq: int  # contiguous from 0 within an attempt
    split: Literal["train", "val"]
    step: int
    epoch: int
    loss: float
    accuracy: float | None
    ts: float


class LogEntry(TypedDict):
    """One line of a rank's stdout or stderr, captured by the launcher on its node."""

    job: int
    attempt: int
    node_rank: int
    seq: int  # contiguous from 0 per (attempt, node_rank)
    stream: Literal["stdout", "stderr"]
    line: str
    ts: float


class AttemptStartedEntry(TypedDict):
    type: Literal["attempt.started"]
    job: int
    attempt: int
    node: str
    node_rank: int
    ts: float


class AttemptExitedEntry(TypedDict):
    type: Literal["attempt.exited"]
    job: int
    attempt: int
    node: str
    node_rank: int
    exit_code: int
    cancelled: bool
    reason: str
    ts: float
    # False when another attempt would fail the same way (bad data, a diverging loss, a
    # dataset checksum mismatch): the portal then fails the job instead of requeueing it.
    # Absent (a node from before this field) means True.
    retryable: NotRequired[bool]


EventEntry = AttemptStartedEntry | AttemptExitedEntry


class GpuHealth(TypedDict):
    index: int
    uuid: str
    name: str
    utilization: float  # percent
    memory_used: int  # bytes
    memory_total: int
    temperature: float | None  # Celsius
    power: float | None  # watts
    # Uncorrectable ECC errors since the driver loaded (None where NVML cannot say): any makes
    # the node unhealthy, so it takes no new work.
    ecc_uncorrected: int | None


class HealthEntry(TypedDict):
    """A node's heartbeat: who it is, what it offers and how it is doing."""

    node: str
    hostname: str
    address: str
    pool: str
    labels: dict[str, str]
    cpu_slots: int
    gpu_count: int
    cpu_percent: float
    memory_used: int
    memory_total: int
    disk_used: int
    disk_total: int
    gpus: list[GpuHealth]
    # Attempts whose launcher is alive on this node.
    running_attempts: list[int]
    # Attempts this node has taken on and not yet finished: a spec is on disk and no exit has
    # been recorded (it may still be fetching data, or its launcher may be running). The
    # portal loses an active attempt placed here that is in neither list. Absent (a node from
    # before this field): the portal does no such reconciliation for this node.
    claimed_attempts: NotRequired[list[int]]
    ts: float
