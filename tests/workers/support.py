"""Shared helpers for the node-plane tests: specs, stream reads and waiting."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import socket
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import psutil
import redis

from workers import signing
from workers.messages import (
    CANCEL_ATTEMPT_TASK,
    RUN_ATTEMPT_TASK,
    AttemptSpec,
    DatasetSpec,
    FeatureSpec,
    MlpModel,
    ModelSpec,
    PlacementSpec,
    PreprocessSpec,
    StopRequest,
    TrainingSpec,
)

IRIS = Path(__file__).resolve().parents[2] / "portal" / "catalog" / "data" / "iris.csv"
IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
IRIS_CLASSES = ("setosa", "versicolor", "virginica")

T = TypeVar("T")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def iris_dataset(data: Path, *, sha256: str | None = None) -> DatasetSpec:
    """Iris as a validated version at `data` (standardised with the mean and deviation of the
    shipped file's rows, whatever `data` holds: a test may point it at bad bytes)."""
    with IRIS.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    features = tuple(
        FeatureSpec(
            name=name,
            kind="numeric",
            shift=statistics.fmean(float(row[name]) for row in rows),
            scale=statistics.pstdev(float(row[name]) for row in rows) or 1.0,
        )
        for name in IRIS_FEATURES
    )
    return DatasetSpec(
        uri=data.as_uri(),
        sha256=sha256 or sha256_of(data),
        format="csv",
        task="classification",
        target="species",
        classes=IRIS_CLASSES,
        features=features,
        input_shape=(len(IRIS_FEATURES),),
        num_rows=len(rows),
        preprocessing=PreprocessSpec(
            missing="drop",
            normalization="standard",
            split_seed=0,
            val_fraction=0.2,
            test_fraction=0.0,
        ),
    )


def iris_spec(
    *,
    node_name: str,
    attempt_id: int,
    checkpoint_dir: Path,
    epochs: int = 30,
    job_id: int = 1,
    data: Path | None = None,
    sha256: str | None = None,
    nproc_per_node: int = 2,
    model: ModelSpec | None = None,
    dataset: DatasetSpec | None = None,
    checkpoint_every: int = 1,
    keep_last: int = 2,
) -> AttemptSpec:
    data = data or iris_in_storage()
    return AttemptSpec(
        job_id=job_id,
        attempt_id=attempt_id,
        job_name="iris",
        node_name=node_name,
        dataset=dataset or iris_dataset(data, sha256=sha256),
        model=model or MlpModel(hidden_sizes=(16, 16)),
        training=TrainingSpec(
            epochs=epochs,
            batch_size=16,
            learning_rate=0.01,
            optimizer="adam",
            loss="cross_entropy",
            seed=0,
            checkpoint_every=checkpoint_every,
            keep_last=keep_last,
        ),
        placement=PlacementSpec(
            nnodes=1,
            node_rank=0,
            nproc_per_node=nproc_per_node,
            device="cpu",
            master_addr="127.0.0.1",
            master_port=29500,
            gpu_indices=(),
            cpu_indices=(),
        ),
        checkpoint_dir=str(checkpoint_dir),
    )


def iris_in_storage() -> Path:
    """Iris under the node's TRAINYARD_STORAGE_ROOT: a node reads datasets only from there."""
    root = Path(os.environ["TRAINYARD_STORAGE_ROOT"])
    copy = root / "datasets" / "iris.csv"
    if not copy.exists():
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(IRIS, copy)
    return copy


def signed_run(spec_json: dict[str, Any]) -> list[Any]:
    """A run message's arguments as the portal sends them: the spec and its signature."""
    return signing.signed_args(RUN_ATTEMPT_TASK, [spec_json])


def signed_cancel(attempt_id: int, stop: StopRequest | None = None) -> list[Any]:
    """A stop message's arguments as the portal sends them (default: a cancel, 3 s grace)."""
    stop = stop or StopRequest(kind="cancel", grace_s=3.0)
    return signing.signed_args(CANCEL_ATTEMPT_TASK, [attempt_id, stop.to_json()])


def entries(client: redis.Redis, stream: str) -> list[dict[str, Any]]:
    """Every entry of a stream, decoded from its `data` field."""
    raw = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(stream))
    return [json.loads(fields[b"data"]) for _, fields in raw]


def processes_running(marker: str) -> list[psutil.Process]:
    """Live processes whose command line mentions `marker` (a spec path unique to a test)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if process.info["status"] != psutil.STATUS_ZOMBIE and any(marker in a for a in cmdline):
            found.append(process)
    return found


def wait_for(
    probe: Callable[[], T], *, timeout: float, interval: float = 0.05, what: str = "condition"
) -> T:
    """Poll until `probe()` returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
