"""The trainer under real `torchrun --nproc-per-node 2` with Gloo, on the shipped Iris data."""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import pytest
import redis

from tests.workers.conftest import Node
from tests.workers.support import entries, iris_spec
from workers.launcher import LaunchSettings, torchrun_command, torchrun_env
from workers.messages import AttemptSpec


def run_torchrun(spec: AttemptSpec, directory: Path) -> subprocess.CompletedProcess[str]:
    directory.mkdir(parents=True, exist_ok=True)
    spec_path = directory / f"spec-{spec.attempt_id}-{spec.training.epochs}.json"
    spec_path.write_text(spec.dumps())
    env = torchrun_env(spec, LaunchSettings.from_env(spec), os.environ)
    return subprocess.run(
        torchrun_command(spec, spec_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_it_trains_iris_to_90_percent_and_resumes_from_its_checkpoint(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    checkpoints = tmp_path / "checkpoints"
    spec = iris_spec(node_name=node.name, attempt_id=11, checkpoint_dir=checkpoints, epochs=30)
    first = run_torchrun(spec, tmp_path / "run")
    assert first.returncode == 0, first.stderr[-3000:]
    # Both ranks trained and said so; only rank 0 printed the summaries.
    for rank in (0, 1):
        assert f"[rank {rank}] epoch 30/30 local train loss" in first.stdout
    assert "[rank 1] epoch 30/30 step" not in first.stdout
    assert (checkpoints / "latest.pt").is_file()

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
    requeued = iris_spec(node_name=node.name, attempt_id=12, checkpoint_dir=checkpoints, epochs=33)
    third = run_torchrun(requeued, tmp_path / "run")
    assert third.returncode == 0, third.stderr[-3000:]
    fresh = [m for m in entries(redis_client, node.stream("metrics")) if m["attempt"] == 12]
    assert [m["seq"] for m in fresh] == [0, 1, 2, 3, 4]
    assert [(m["epoch"], m["step"]) for m in fresh] == [
        (33, 129),
        (33, 130),
        (33, 131),
        (33, 132),
        (33, 132),
    ]


def test_a_non_finite_loss_stops_training_with_a_clear_reason() -> None:
    import torch

    from workers.train.main import TrainingDiverged, check_finite

    check_finite(torch.tensor([12.5, 3.0, 16.0], dtype=torch.float64), step=4, epoch=1)
    for bad in (math.nan, math.inf):
        with pytest.raises(TrainingDiverged, match="lower the learning rate") as caught:
            check_finite(torch.tensor([bad, 3.0, 16.0], dtype=torch.float64), step=7, epoch=2)
        assert "step 7 (epoch 2)" in str(caught.value)
