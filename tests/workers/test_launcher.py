"""The launcher supervising a real torchrun gang: logs, exit reports and cancellation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
from msgspec.structs import replace

from tests.workers.conftest import Node
from tests.workers.support import (
    IRIS,
    entries,
    free_port,
    iris_spec,
    processes_running,
    wait_for,
)
from workers import attempts
from workers.launcher import LaunchSettings, LogPump, torchrun_command
from workers.messages import AttemptSpec, StopRequest
from workers.spool import Appender


def start_launcher(spec: AttemptSpec, node: Node) -> tuple[subprocess.Popen[bytes], Path]:
    directory = attempts.attempt_dir(node.state_dir, spec.attempt_id)
    directory.mkdir(parents=True)
    spec_path = directory / "spec.json"
    spec_path.write_text(spec.dumps())
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.launcher", "--spec", str(spec_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return process, directory


def events_of(client: redis.Redis, node: Node, kind: str) -> list[dict[str, Any]]:
    return [e for e in entries(client, node.stream("events")) if e["type"] == kind]


def test_it_reports_start_every_ranks_lines_and_a_clean_exit(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    spec = iris_spec(node_name=node.name, attempt_id=21, checkpoint_dir=tmp_path / "ck", epochs=2)
    launcher, directory = start_launcher(spec, node)
    launcher.wait(timeout=120)
    logs = entries(redis_client, node.stream("logs"))
    assert launcher.returncode == 0, "\n".join(line["line"] for line in logs[-40:])
    assert attempts.read_pid(directory) == launcher.pid

    [started] = events_of(redis_client, node, "attempt.started")
    [exited] = events_of(redis_client, node, "attempt.exited")
    assert (started["job"], started["attempt"], started["node"]) == (1, 21, node.name)
    assert exited["exit_code"] == 0
    assert exited["cancelled"] is False
    assert exited["retryable"] is True
    assert started["ts"] <= exited["ts"]

    assert [line["seq"] for line in logs] == list(range(len(logs)))
    assert {(line["attempt"], line["node_rank"]) for line in logs} == {(21, 0)}
    stdout = [line for line in logs if line["stream"] == "stdout"]
    for rank in (0, 1):
        # torchrun tags each rank's lines; the launcher strips the tag into the entry.
        [epoch_line] = [
            line for line in stdout if f"[rank {rank}] epoch 2/2 local train loss" in line["line"]
        ]
        assert (epoch_line["rank"], epoch_line["local_rank"]) == (rank, rank)
        assert epoch_line["line"].startswith(f"[rank {rank}]")
    metrics = entries(redis_client, node.stream("metrics"))
    assert [m["seq"] for m in metrics] == list(range(len(metrics)))
    # Every rank's own figures, shipped by the launcher from the ranks' spools.
    ranks = entries(redis_client, node.stream("ranks"))
    assert {r["rank"] for r in ranks} == {0, 1}
    assert all(r["steps"] >= 1 and r["samples_per_s"] > 0 for r in ranks)
    assert {r["gpu_memory_used"] for r in ranks} == {None}
    assert attempts.running_attempts(node.state_dir) == []


def test_it_reports_the_trainers_error_on_bad_data(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    bad = tmp_path / "iris-typo.csv"
    bad.write_text(IRIS.read_text().replace("virginica", "virginca", 1))
    spec = iris_spec(node_name=node.name, attempt_id=22, checkpoint_dir=tmp_path / "ck", data=bad)
    launcher, _ = start_launcher(spec, node)
    launcher.wait(timeout=120)

    [exited] = events_of(redis_client, node, "attempt.exited")
    assert exited["exit_code"] != 0
    assert exited["cancelled"] is False
    assert "trainyard: error:" in exited["reason"]
    # workers.datasets names the row, the column and the value it refused.
    assert "'virginca'" in exited["reason"]
    # Bad data fails every attempt alike: the portal should fail the job, not requeue it.
    assert exited["retryable"] is False


def test_a_gpu_placement_on_a_node_without_cuda_fails_at_once_and_is_not_retried(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this host has CUDA: the placement would be honoured")
    spec = iris_spec(node_name=node.name, attempt_id=29, checkpoint_dir=tmp_path / "ck")
    spec = replace(spec, placement=replace(spec.placement, device="cuda"))
    launcher, _ = start_launcher(spec, node)
    launcher.wait(timeout=120)

    [exited] = events_of(redis_client, node, "attempt.exited")
    assert exited["exit_code"] != 0
    assert "trainyard: error: attempt 29 is placed on GPUs but node" in exited["reason"]
    assert "has no CUDA device" in exited["reason"]
    # Every attempt on this node would fail alike: the portal fails the job, not requeues it.
    assert exited["retryable"] is False
    # It never trained on the CPU instead: no metric, no checkpoint.
    assert entries(redis_client, node.stream("metrics")) == []
    assert not (tmp_path / "ck").exists()


def test_sigterm_takes_every_rank_down_within_ten_seconds(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    spec = iris_spec(
        node_name=node.name, attempt_id=23, checkpoint_dir=tmp_path / "ck", epochs=100_000
    )
    launcher, directory = start_launcher(spec, node)
    spec_path = str(directory / "spec.json")
    try:

        def both_ranks_training() -> bool:
            lines = [e["line"] for e in entries(redis_client, node.stream("logs"))]
            return all(any(f"[rank {r}] epoch" in line for line in lines) for r in (0, 1))

        wait_for(both_ranks_training, timeout=60, interval=0.2, what="both ranks to train")
        assert attempts.running_attempts(node.state_dir) == [23]
        gang = psutil.Process(launcher.pid).children(recursive=True)
        ranks = [p for p in gang if "-u" in p.cmdline()]
        assert len(ranks) == 2, [p.cmdline() for p in gang]

        os.kill(launcher.pid, signal.SIGTERM)
        cancelled_at = time.monotonic()
        _, alive = psutil.wait_procs(gang, timeout=10)
        assert alive == [], f"still alive after 10 s: {alive}"
        assert time.monotonic() - cancelled_at < 10
        launcher.wait(timeout=30)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert processes_running(spec_path) == []

    [exited] = events_of(redis_client, node, "attempt.exited")
    assert exited["cancelled"] is True
    assert exited["reason"] == "cancelled"
    assert exited["retryable"] is True


def test_a_preemption_stop_checkpoints_at_a_step_boundary_and_says_so(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    # The agent leaves the stop in the mark, then SIGTERMs the launcher: the ranks get SIGTERM
    # (torchrun only after them, so its own shutdown timeout cannot cut the grace short),
    # agree to stop after the same step, and rank 0 writes the checkpoint before any exits.
    spec = iris_spec(
        node_name=node.name,
        attempt_id=25,
        checkpoint_dir=tmp_path / "ck",
        epochs=10_000,
        checkpoint_every=10_000,
    )
    launcher, directory = start_launcher(spec, node)
    try:

        def training() -> bool:
            lines = [e["line"] for e in entries(redis_client, node.stream("logs"))]
            return sum("[rank 0] epoch" in line for line in lines) >= 4

        wait_for(training, timeout=60, interval=0.2, what="training")
        attempts.request_cancel(
            directory, StopRequest(kind="preempt", grace_s=30.0, detail="by job #9")
        )
        os.kill(launcher.pid, signal.SIGTERM)
        told = time.monotonic()
        launcher.wait(timeout=40)
        took = time.monotonic() - told
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert took < 10, f"the gang took {took:.1f}s to stop"
    [saved] = events_of(redis_client, node, "checkpoint.saved")
    assert saved["name"].startswith("attempt-25/")
    latest = tmp_path / "ck" / "attempt-25" / "latest.pt"
    assert latest.samefile(tmp_path / "ck" / saved["name"])
    [exited] = events_of(redis_client, node, "attempt.exited")
    assert exited["cancelled"] is True and exited["retryable"] is True
    assert exited["reason"].startswith(
        f"preempted by job #9: checkpointed {saved['name']} (epoch {saved['epoch']}, "
        f"step {saved['step']}) "
    )
    assert exited["reason"].endswith("s after SIGTERM")


def test_a_cancel_while_torchrun_starts_leaves_no_rank_behind(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    # The hard case: torchrun may die before its ranks are up, and they live in sessions of
    # their own, so only the launcher (their subreaper) can still find them.
    spec = iris_spec(
        node_name=node.name, attempt_id=24, checkpoint_dir=tmp_path / "ck", epochs=100_000
    )
    launcher, directory = start_launcher(spec, node)
    spec_path = str(directory / "spec.json")
    try:
        wait_for(lambda: events_of(redis_client, node, "attempt.started"), timeout=30, what="start")
        wait_for(lambda: len(processes_running(spec_path)) >= 3, timeout=30, what="the ranks")
        os.kill(launcher.pid, signal.SIGTERM)
        wait_for(
            lambda: processes_running(spec_path) == [],
            timeout=10,
            interval=0.1,
            what="every rank to exit",
        )
        launcher.wait(timeout=30)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    [exited] = events_of(redis_client, node, "attempt.exited")
    assert exited["cancelled"] is True


def test_a_failure_without_the_trainers_error_line_is_retryable(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    spool = Appender(tmp_path / "logs.jsonl")
    spec = iris_spec(node_name=node.name, attempt_id=25, checkpoint_dir=tmp_path / "ck")
    pump = LogPump(spec=spec, spool=spool, max_bytes=10_000, max_lines=100)
    try:
        pump.emit("stderr", "RuntimeError: Connection reset by peer")
        pump.emit("stderr", "torch.distributed.elastic.multiprocessing.errors.ChildFailedError")
        assert pump.saw_trainer_error is False
        pump.emit("stderr", "[rank 1] trainyard: error: the training loss became nan")
        assert pump.saw_trainer_error is True
        assert pump.failure_reason() == "[rank 1] trainyard: error: the training loss became nan"
    finally:
        spool.close()


def gang_share(spec: AttemptSpec, *, node_rank: int, port: int) -> AttemptSpec:
    """`spec` as node `node_rank`'s share of a two-node gang whose first node is this host."""
    placement = replace(
        spec.placement, nnodes=2, node_rank=node_rank, master_addr="127.0.0.1", master_port=port
    )
    return replace(spec, placement=placement)


def test_a_multi_node_share_joins_a_c10d_rendezvous_hosted_by_the_first_node(
    node: Node, tmp_path: Path
):
    spec = iris_spec(node_name=node.name, attempt_id=26, checkpoint_dir=tmp_path / "ck")
    settings = LaunchSettings.from_env(spec)
    first = torchrun_command(gang_share(spec, node_rank=0, port=29611), Path("s.json"), settings)
    other = torchrun_command(gang_share(spec, node_rank=1, port=29611), Path("s.json"), settings)
    for command in (first, other):
        joined = " ".join(command)
        assert "--rdzv-backend c10d --rdzv-endpoint 127.0.0.1:29611 --rdzv-id attempt-26" in joined
        assert "--nnodes 2" in joined and "--master-addr" not in joined
        assert f"--local-addr {settings.address}" in joined
    assert "is_host=1,join_timeout=120" in " ".join(first)
    assert "is_host=0,join_timeout=120" in " ".join(other)


def test_a_gang_whose_other_node_never_joins_fails_with_the_rendezvous_as_reason(
    node: Node, redis_client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TRAINYARD_RENDEZVOUS_TIMEOUT_S", "3")
    spec = iris_spec(node_name=node.name, attempt_id=27, checkpoint_dir=tmp_path / "ck")
    port = free_port()
    launcher, _ = start_launcher(gang_share(spec, node_rank=0, port=port), node)
    started = time.monotonic()
    launcher.wait(timeout=90)
    waited = time.monotonic() - started
    [exited] = events_of(redis_client, node, "attempt.exited")
    assert exited["exit_code"] != 0 and exited["cancelled"] is False
    assert exited["reason"].startswith(
        f"the gang's 2 nodes did not all join the rendezvous at 127.0.0.1:{port} within 3s"
    ), exited["reason"]
    assert exited["retryable"] is True
    assert waited < 60, f"the rendezvous timeout of 3s took {waited:.0f}s to end the attempt"
    assert not processes_running(str(node.state_dir))
