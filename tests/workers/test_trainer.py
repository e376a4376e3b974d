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
    settings = LaunchSettings.from_env(spec)
    return subprocess.run(
        torchrun_command(spec, spec_path, settings),
        env=torchrun_env(spec, settings, os.environ),
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
    # Each attempt writes only its own checkpoint.
    assert [p.relative_to(checkpoints) for p in checkpoints.rglob("*.pt")] == [
        Path("attempt-11/latest.pt")
    ]

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
    predecessor = (checkpoints / "attempt-11" / "latest.pt").read_bytes()
    requeued = iris_spec(node_name=node.name, attempt_id=12, checkpoint_dir=checkpoints, epochs=33)
    third = run_torchrun(requeued, tmp_path / "run")
    assert third.returncode == 0, third.stderr[-3000:]
    assert f"resuming after epoch 32 (step 128) from {checkpoints}/attempt-11/latest.pt" in (
        third.stdout
    )
    # It wrote its own file and left its predecessor's alone.
    assert (checkpoints / "attempt-11" / "latest.pt").read_bytes() == predecessor
    assert (checkpoints / "attempt-12" / "latest.pt").is_file()
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


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_an_attempt_resumes_from_its_own_or_the_newest_earlier_attempts_checkpoint(
    tmp_path: Path,
) -> None:
    from workers.train.checkpoint import checkpoint_to_resume

    assert checkpoint_to_resume(tmp_path / "none-yet", 5) is None
    # A file at the top is no attempt's: only per-attempt files are ever read.
    touch(tmp_path / "latest.pt")
    third = touch(tmp_path / "attempt-3" / "latest.pt")
    fifth = touch(tmp_path / "attempt-5" / "latest.pt")
    (tmp_path / "attempt-9").mkdir()  # attempt 9 died before its first checkpoint
    twelfth = touch(tmp_path / "attempt-12" / "latest.pt")
    touch(tmp_path / "attempt-x" / "latest.pt")
    # A later attempt's file is never read: it belongs to the attempt that fenced this off.
    assert checkpoint_to_resume(tmp_path, 10) == fifth
    assert checkpoint_to_resume(tmp_path, 4) == third
    assert checkpoint_to_resume(tmp_path, 12) == twelfth
    assert checkpoint_to_resume(tmp_path, 13) == twelfth
    assert checkpoint_to_resume(tmp_path, 2) is None
