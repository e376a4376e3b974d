"""The trainer under real `torchrun --nproc-per-node 2` with Gloo, on the shipped Iris data."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import redis

from tests.workers.conftest import Node
from tests.workers.support import entries, free_port, iris_spec, sha256_of
from workers import config
from workers.launcher import LaunchSettings, telemetry_dir, torchrun_command, torchrun_env
from workers.messages import (
    AttemptSpec,
    DatasetSpec,
    FeatureSpec,
    LinearModel,
    MlpModel,
    PreprocessSpec,
)
from workers.shipper import Shipper, drain

# The trainer prepares data with workers.datasets and builds models with workers.models
# (other branches of the catalog work): until they are merged, these tests cannot run.
pytest.importorskip("workers.datasets")
pytest.importorskip("workers.models")


def run_torchrun(spec: AttemptSpec, directory: Path) -> subprocess.CompletedProcess[str]:
    directory.mkdir(parents=True, exist_ok=True)
    spec_path = directory / f"spec-{spec.attempt_id}-{spec.training.epochs}.json"
    spec_path.write_text(spec.dumps())
    settings = LaunchSettings.from_env(spec)
    done = subprocess.run(
        torchrun_command(spec, spec_path, settings),
        env=torchrun_env(spec, settings, os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    ship(spec, telemetry_dir(spec, settings))
    return done


def ship(spec: AttemptSpec, directory: Path) -> None:
    """What the launcher does with the ranks' spools: ship them to Redis (then set them aside,
    since these tests run one attempt more than once)."""
    shipper = Shipper(
        spec=spec,
        directory=directory,
        redis_url=config.redis_url(),
        prefix=config.stream_prefix(),
        stream_maxlen=config.stream_maxlen(),
        start=False,
    )
    drain(shipper)
    shipper.close()
    directory.rename(directory.with_name(f"shipped-{spec.training.epochs}"))


def events(client: redis.Redis, node: Node, kind: str) -> list[dict[str, Any]]:
    return [e for e in entries(client, node.stream("events")) if e["type"] == kind]


def test_it_trains_iris_to_90_percent_and_resumes_from_its_checkpoint(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    checkpoints = tmp_path / "checkpoints"
    spec = iris_spec(
        node_name=node.name,
        attempt_id=11,
        checkpoint_dir=checkpoints,
        epochs=30,
        checkpoint_every=4,
        keep_last=2,
    )
    first = run_torchrun(spec, tmp_path / "run")
    assert first.returncode == 0, first.stderr[-3000:]
    # Both ranks trained and said so; only rank 0 printed the summaries.
    for rank in (0, 1):
        assert f"[rank {rank}] epoch 30/30 local train loss" in first.stdout
    assert "[rank 1] epoch 30/30 step" not in first.stdout

    # A checkpoint every 4 epochs and after the last, each reported once, by rank 0.
    saved = events(redis_client, node, "checkpoint.saved")
    assert [e["epoch"] for e in saved] == [4, 8, 12, 16, 20, 24, 28, 30]
    assert [e["name"] for e in saved] == [f"attempt-11/epoch-{e['epoch']}.pt" for e in saved]
    assert {(e["job"], e["attempt"]) for e in saved} == {(1, 11)}
    assert saved[0]["is_best"] is True
    best = [e for e in saved if e["is_best"]][-1]
    assert best["val_loss"] == min(e["val_loss"] for e in saved)
    # Each attempt writes only its own directory: the newest 2 epochs, the best besides,
    # latest.pt naming the newest and best.pt the best, byte for byte.
    attempt_dir = checkpoints / "attempt-11"
    kept = {p.name for p in attempt_dir.glob("epoch-*.pt")}
    assert kept == {"epoch-28.pt", "epoch-30.pt", Path(best["name"]).name}
    assert [p.name for p in checkpoints.iterdir()] == ["attempt-11"]
    assert sha256_of(attempt_dir / "latest.pt") == saved[-1]["sha256"]
    assert sha256_of(attempt_dir / "best.pt") == best["sha256"]
    assert (attempt_dir / "latest.pt").stat().st_size == saved[-1]["size_bytes"]

    # The best checkpoint is exported, with what it takes to feed it.
    export = attempt_dir / "export"
    manifest = json.loads((export / "model.json").read_text())
    assert manifest["checkpoint"] == best["name"]
    assert manifest["model"]["architecture"] == "mlp"
    assert manifest["input_shape"] == [4]
    assert manifest["outputs"] == 3
    assert manifest["classes"] == ["setosa", "versicolor", "virginica"]
    assert manifest["dataset_sha256"] == spec.dataset.sha256
    assert manifest["torchscript"] is True
    from safetensors.torch import load_file

    weights = load_file(export / "model.safetensors")
    best_state = torch_load(attempt_dir / "best.pt")["model"]
    assert weights.keys() == best_state.keys()
    assert all(bool((weights[k] == best_state[k]).all()) for k in weights)
    assert (export / "model.torchscript.pt").stat().st_size > 0

    metrics = entries(redis_client, node.stream("metrics"))
    assert [m["seq"] for m in metrics] == list(range(len(metrics)))
    assert {(m["job"], m["attempt"]) for m in metrics} == {(1, 11)}
    val = [m for m in metrics if m["split"] == "val"]
    train = [m for m in metrics if m["split"] == "train"]
    assert [m["epoch"] for m in val] == list(range(1, 31))
    # 120 training rows over 2 ranks in batches of 16: 4 steps an epoch.
    assert [m["step"] for m in train] == list(range(1, 121))
    assert val[-1]["accuracy"] >= 0.9
    assert val[-1]["loss"] < val[0]["loss"]

    # Same attempt, two more epochs: it resumes after epoch 30, and seq carries on.
    longer = iris_spec(node_name=node.name, attempt_id=11, checkpoint_dir=checkpoints, epochs=32)
    second = run_torchrun(longer, tmp_path / "run")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming after epoch 30 (step 120)" in second.stdout
    resumed = entries(redis_client, node.stream("metrics"))[len(metrics) :]
    assert [m["seq"] for m in resumed] == list(range(len(metrics), len(metrics) + 10))
    assert {m["epoch"] for m in resumed} == {31, 32}
    assert resumed[0]["step"] == 121
    assert resumed[-1]["accuracy"] >= 0.9

    # A requeue is a new attempt: it resumes the weights after epoch 32, and its own seq
    # starts at 0, because the portal keys metrics by (attempt, seq).
    predecessor = (attempt_dir / "latest.pt").read_bytes()
    requeued = iris_spec(node_name=node.name, attempt_id=12, checkpoint_dir=checkpoints, epochs=33)
    third = run_torchrun(requeued, tmp_path / "run")
    assert third.returncode == 0, third.stderr[-3000:]
    assert f"resuming after epoch 32 (step 128) from {checkpoints}/attempt-11/latest.pt" in (
        third.stdout
    )
    # It wrote its own file and left its predecessor's alone.
    assert (attempt_dir / "latest.pt").read_bytes() == predecessor
    assert (checkpoints / "attempt-12" / "latest.pt").is_file()
    assert (checkpoints / "attempt-12" / "export" / "model.json").is_file()
    fresh = [m for m in entries(redis_client, node.stream("metrics")) if m["attempt"] == 12]
    assert [m["seq"] for m in fresh] == [0, 1, 2, 3, 4]
    assert [(m["epoch"], m["step"]) for m in fresh] == [
        (33, 129),
        (33, 130),
        (33, 131),
        (33, 132),
        (33, 132),
    ]


def torch_load(path: Path) -> dict[str, Any]:
    import torch

    data: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return data


def run_in_process(spec: AttemptSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """One rank (world size 1) of the trainer in this process: cheaper than torchrun for
    checks that need no peer. `main` destroys its process group in its `finally`."""
    from workers.train.main import main

    spec_path = tmp_path / f"spec-{spec.attempt_id}.json"
    spec_path.write_text(spec.dumps())
    spool = tmp_path / f"telemetry-{spec.attempt_id}"
    for name, value in {
        "TRAINYARD_TELEMETRY_DIR": str(spool),
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }.items():
        monkeypatch.setenv(name, value)
    code = main(["--spec", str(spec_path)])
    ship(spec, spool)
    return code


def npz_dataset(
    path: Path, x: np.ndarray[Any, Any], y: np.ndarray[Any, Any], **fields: Any
) -> DatasetSpec:
    with path.open("wb") as out:
        np.savez(out, X=x, y=y)
    values: dict[str, Any] = {
        "uri": path.as_uri(),
        "sha256": sha256_of(path),
        "format": "npz",
        "target": "y",
        "features": tuple(FeatureSpec(name=f"x{i}", kind="numeric") for i in range(x.shape[1])),
        "input_shape": (x.shape[1],),
        "num_rows": len(y),
        "preprocessing": PreprocessSpec(
            missing="drop", normalization="none", split_seed=1, val_fraction=0.2, test_fraction=0.0
        ),
    }
    return DatasetSpec(**(values | fields))


def test_a_regression_trains_on_the_standardised_target_and_reports_no_accuracy(
    node: Node, redis_client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, size=(200, 3)).astype(np.float32)
    y = (100.0 + 40.0 * x @ np.array([1.0, -2.0, 0.5])).astype(np.float32)
    dataset = npz_dataset(
        tmp_path / "line.npz",
        x,
        y,
        task="regression",
        classes=(),
        target_shift=float(y.mean()),
        target_scale=float(y.std()),
    )
    spec = iris_spec(
        node_name=node.name,
        attempt_id=41,
        checkpoint_dir=tmp_path / "ck",
        epochs=20,
        nproc_per_node=1,
        dataset=dataset,
        model=LinearModel(),
    )
    spec = msgspec.structs.replace(
        spec,
        training=msgspec.structs.replace(spec.training, loss="mse", learning_rate=0.05),
    )
    assert run_in_process(spec, tmp_path, monkeypatch) == 0
    metrics = entries(redis_client, node.stream("metrics"))
    val = [m for m in metrics if m["split"] == "val"]
    assert {m["accuracy"] for m in metrics} == {None}
    # A linear target is fit almost exactly; on the raw scale the MSE would be in the 1000s.
    assert val[-1]["loss"] < 0.05 < val[0]["loss"]
    manifest = json.loads((tmp_path / "ck" / "attempt-41" / "export" / "model.json").read_text())
    assert (manifest["task"], manifest["outputs"], manifest["classes"]) == ("regression", 1, [])
    assert manifest["target_shift"] == pytest.approx(float(y.mean()))
    [first, *_] = events(redis_client, node, "checkpoint.saved")
    assert first["val_accuracy"] is None


def test_a_sigmoid_head_of_width_one_trains_a_binary_task_with_mse(
    node: Node, redis_client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # The seed's example: 100 rows of 10 features in [0, 1], a 10-5-1 MLP with a sigmoid and MSE.
    rng = np.random.default_rng(7)
    x = rng.uniform(0, 1, size=(100, 10)).astype(np.float32)
    y = (x[:, :5].sum(axis=1) > x[:, 5:].sum(axis=1)).astype(np.int64)
    dataset = npz_dataset(tmp_path / "binary.npz", x, y, task="classification", classes=("0", "1"))
    spec = iris_spec(
        node_name=node.name,
        attempt_id=42,
        checkpoint_dir=tmp_path / "ck",
        epochs=40,
        nproc_per_node=1,
        dataset=dataset,
        model=MlpModel(hidden_sizes=(5,), activation="sigmoid", output="sigmoid"),
    )
    spec = msgspec.structs.replace(
        spec, training=msgspec.structs.replace(spec.training, loss="mse", learning_rate=0.05)
    )
    assert run_in_process(spec, tmp_path, monkeypatch) == 0
    val = [m for m in entries(redis_client, node.stream("metrics")) if m["split"] == "val"]
    assert val[-1]["accuracy"] >= 0.8
    assert val[-1]["loss"] < 0.25  # MSE of a probability: 0.25 is a coin toss
    manifest = json.loads((tmp_path / "ck" / "attempt-42" / "export" / "model.json").read_text())
    assert manifest["outputs"] == 1


def test_a_non_finite_loss_stops_training_with_a_clear_reason() -> None:
    import torch

    from workers.train.main import TrainingDiverged, check_finite

    check_finite(torch.tensor([12.5, 3.0, 16.0], dtype=torch.float64), step=4, epoch=1)
    for bad in (math.nan, math.inf):
        with pytest.raises(TrainingDiverged, match="lower the learning rate") as caught:
            check_finite(torch.tensor([bad, 3.0, 16.0], dtype=torch.float64), step=7, epoch=2)
        assert "step 7 (epoch 2)" in str(caught.value)
