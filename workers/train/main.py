"""One rank of a DDP training run: setup, loop, and a `finally` that always cleans up.

torchrun starts this once per local rank with RANK, LOCAL_RANK, WORLD_SIZE and the rendezvous
in the environment. Every rank trains on its `DistributedSampler` shard; losses and accuracies
are all-reduced so the reporting rank (`REPORTING_RANK`, 0) reports the whole gang's numbers as
`MetricEntry`s and writes the checkpoints. `train` is the references' shape (pytorch/examples
`multigpu_torchrun.py`, torchtitan's trainer): `build`, `resume`, then `run_epoch` and
`save_checkpoint` per epoch; `main` is setup, that loop, and a `finally` that always cleans up.
A GPU placement on a host without CUDA fails at once (`placement_device`), never silently on
the CPU. Every rank prints one `[rank N]` line per epoch so the job's log shows all of them.

Resuming: the reporting rank writes `checkpoint_dir/attempt-<id>/latest.pt`, and a start resumes
from the newest checkpoint of this attempt or an earlier one (see `workers.train.checkpoint`), then
continues after its epoch. Within the same attempt the metric `seq` continues from the
checkpoint; a new attempt (a requeue) starts its own `seq` at 0, because the portal keys
metrics by `(attempt, seq)`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from workers import attempts, config
from workers.messages import AttemptSpec, MetricEntry, stream_name
from workers.reporter import StreamReporter
from workers.storage import StorageError, dataset_fetch
from workers.train import ERROR_MARK
from workers.train.checkpoint import (
    Checkpoint,
    attempt_checkpoint_dir,
    checkpoint_load,
    checkpoint_save,
    checkpoint_to_resume,
)
from workers.train.data import DatasetError, Splits, load_csv, split
from workers.train.model import build_model

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class SpecError(Exception):
    """The spec file is missing or malformed."""


class PlacementError(Exception):
    """The placement asks for something this node does not have (a GPU on a CPU-only host)."""


class TrainingDiverged(Exception):
    """The gang's loss stopped being a finite number: more steps cannot bring it back."""


def check_finite(totals: torch.Tensor, *, step: int, epoch: int) -> None:
    """Stop every rank alike: the totals are all-reduced, so all ranks see the same value."""
    loss_sum = float(totals[0])
    if not math.isfinite(loss_sum):
        raise TrainingDiverged(
            f"the training loss became {loss_sum} at step {step} (epoch {epoch}); "
            "lower the learning rate or check the data for extreme values"
        )


# The one rank that reports metrics and writes checkpoints. Its numbers are the gang's: the
# totals it reports are all-reduced over every rank.
REPORTING_RANK = 0


@dataclass(frozen=True)
class Gang:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device


def is_reporting(gang: Gang) -> bool:
    return gang.rank == REPORTING_RANK


class Metrics:
    """Numbers the reporting rank reports, with `seq` contiguous within the attempt."""

    def __init__(self, *, spec: AttemptSpec, reporter: StreamReporter, seq: int) -> None:
        self._spec = spec
        self._reporter = reporter
        self.seq = seq

    def report(
        self, *, split: Literal["train", "val"], step: int, epoch: int, totals: torch.Tensor
    ) -> None:
        loss_sum, correct, count = (float(value) for value in totals.tolist())
        # JSON has no NaN: training stops on a non-finite loss (check_finite), and an empty
        # shard or a non-finite validation loss reports nothing, so seq stays contiguous.
        if not count or not math.isfinite(loss_sum):
            return
        self._reporter.report(
            MetricEntry(
                job=self._spec.job_id,
                attempt=self._spec.attempt_id,
                seq=self.seq,
                split=split,
                step=step,
                epoch=epoch,
                loss=loss_sum / count,
                accuracy=correct / count,
                ts=time.time(),
            )
        )
        self.seq += 1


def say(rank: int, message: str, *, error: bool = False) -> None:
    stream = sys.stderr if error else sys.stdout
    # One write per line: ranks share the launcher's pipe, and a single short write to a pipe
    # is atomic, so lines from different ranks never splice together.
    stream.write(f"[rank {rank}] {message}\n")
    stream.flush()


def load_spec(path: str) -> AttemptSpec:
    try:
        return AttemptSpec.from_json(json.loads(Path(path).read_text()))
    except (OSError, ValueError) as exc:  # MessageInvalid is a ValueError
        raise SpecError(f"cannot read the attempt spec {path}: {exc}") from exc


def load_data(spec: AttemptSpec) -> Splits:
    state_dir = config.node_state_dir(spec.node_name)
    local = dataset_fetch(
        uri=spec.dataset.uri, sha256=spec.dataset.sha256, cache_dir=attempts.cache_dir(state_dir)
    )
    features, labels = load_csv(local, spec.dataset)
    return split(features, labels, seed=spec.training.seed, val_fraction=spec.training.val_fraction)


def placement_device(spec: AttemptSpec) -> torch.device:
    """The device this rank trains on; a GPU placement on a host without CUDA fails at once.

    Training such a job on the CPU instead would run it slowly on resources nobody asked
    for, and another attempt on this node would fail the same way: a `PlacementError`.
    """
    if spec.placement.device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise PlacementError(
            f"attempt {spec.attempt_id} is placed on GPUs but node {spec.node_name} has no "
            "CUDA device (no NVIDIA driver, or a CPU-only torch build)"
        )
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def setup(device: torch.device) -> Gang:
    """Join the gang: NCCL on GPUs, Gloo on CPUs."""
    if "RANK" not in os.environ:
        raise SpecError("run the trainer under torchrun: RANK and WORLD_SIZE are not set")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl", device_id=device)
    else:
        dist.init_process_group(backend="gloo")
    return Gang(
        rank=dist.get_rank(),
        local_rank=local_rank,
        world_size=dist.get_world_size(),
        device=device,
    )


def loss_function(name: str, classes: int) -> LossFn:
    if name == "cross_entropy":
        return F.cross_entropy

    def mse(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        target = F.one_hot(labels, classes).to(outputs.dtype)
        return F.mse_loss(outputs.softmax(dim=1), target)

    return mse


def batch_totals(outputs: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
    """`[loss * count, correct, count]` in float64, ready for an all-reduce sum."""
    count = labels.shape[0]
    correct = (outputs.argmax(dim=1) == labels).sum()
    return torch.stack(
        [
            loss.detach().double() * count,
            correct.double(),
            torch.tensor(float(count), dtype=torch.float64, device=outputs.device),
        ]
    )


def evaluate(model: nn.Module, splits: Splits, gang: Gang, loss_fn: LossFn) -> torch.Tensor:
    """Validation totals over every rank's `rank::world` slice: each row counted exactly once."""
    x = splits.val_x[gang.rank :: gang.world_size].to(gang.device)
    y = splits.val_y[gang.rank :: gang.world_size].to(gang.device)
    totals = torch.zeros(3, dtype=torch.float64, device=gang.device)
    if y.shape[0]:
        model.eval()
        with torch.no_grad():
            outputs = model(x)
            totals = batch_totals(outputs, y, loss_fn(outputs, y))
        model.train()
    dist.all_reduce(totals)
    return totals


def agree_on_start(checkpoint: Checkpoint | None, gang: Gang) -> None:
    """Every rank must resume from the same epoch, or the gang would train out of step."""
    mine = torch.tensor([checkpoint.epoch if checkpoint else 0], device=gang.device)
    rank0 = mine.clone()
    dist.broadcast(rank0, src=0)
    if int(rank0.item()) != int(mine.item()):
        raise SpecError(
            f"rank {gang.rank} sees checkpoint epoch {int(mine.item())} but rank 0 sees "
            f"{int(rank0.item())}: is checkpoint_dir on storage every node shares?"
        )


@dataclass
class Run:
    """What one rank trains with, built once by `build` and moved on by `run_epoch`."""

    model: nn.Module
    ddp: DistributedDataParallel
    optimizer: torch.optim.Optimizer
    loss_fn: LossFn
    sampler: DistributedSampler[int]
    loader: DataLoader[tuple[torch.Tensor, ...]]
    epoch: int = 0  # the last completed epoch
    step: int = 0


def build(spec: AttemptSpec, splits: Splits, gang: Gang) -> Run:
    """The model, its DDP wrapper, the optimizer and this rank's shard of the data."""
    training = spec.training
    classes = len(spec.dataset.classes)
    torch.manual_seed(training.seed)
    model = build_model(spec.model, inputs=splits.train_x.shape[1], outputs=classes).to(gang.device)
    ddp = DistributedDataParallel(
        model, device_ids=[gang.local_rank] if gang.device.type == "cuda" else None
    )
    optimizer: torch.optim.Optimizer
    if training.optimizer == "adam":
        optimizer = torch.optim.Adam(ddp.parameters(), lr=training.learning_rate)
    else:
        optimizer = torch.optim.SGD(ddp.parameters(), lr=training.learning_rate)
    dataset = TensorDataset(splits.train_x, splits.train_y)
    sampler: DistributedSampler[int] = DistributedSampler(
        dataset, num_replicas=gang.world_size, rank=gang.rank, shuffle=True, seed=training.seed
    )
    return Run(
        model=model,
        ddp=ddp,
        optimizer=optimizer,
        loss_fn=loss_function(training.loss, classes),
        sampler=sampler,
        loader=DataLoader(dataset, batch_size=training.batch_size, sampler=sampler),
    )


def resume(spec: AttemptSpec, run: Run, gang: Gang) -> int:
    """Load the checkpoint this attempt resumes from, if any; returns the next metric seq.

    Within the same attempt the seq continues; a new attempt starts its own at 0."""
    resume_from = checkpoint_to_resume(Path(spec.checkpoint_dir), spec.attempt_id)
    checkpoint = checkpoint_load(resume_from) if resume_from else None
    agree_on_start(checkpoint, gang)
    if checkpoint is None:
        return 0
    # Loaded into the module DDP wraps: DDP keeps the parameters, not copies of them.
    run.model.load_state_dict(checkpoint.model)
    run.optimizer.load_state_dict(checkpoint.optimizer)
    run.epoch, run.step = checkpoint.epoch, checkpoint.step
    say(gang.rank, f"resuming after epoch {run.epoch} (step {run.step}) from {resume_from}")
    return checkpoint.seq if checkpoint.attempt == spec.attempt_id else 0


def run_epoch(
    spec: AttemptSpec, run: Run, splits: Splits, gang: Gang, metrics: Metrics | None
) -> None:
    """Train one epoch on this rank's shard, then validate; the reporting rank reports both."""
    epochs = spec.training.epochs
    epoch = run.epoch + 1
    run.sampler.set_epoch(epoch)
    run.ddp.train()
    local = torch.zeros(3, dtype=torch.float64, device=gang.device)
    for x_cpu, y_cpu in run.loader:
        x, y = x_cpu.to(gang.device), y_cpu.to(gang.device)
        run.optimizer.zero_grad(set_to_none=True)
        outputs = run.ddp(x)
        loss = run.loss_fn(outputs, y)
        loss.backward()
        run.optimizer.step()
        run.step += 1
        totals = batch_totals(outputs, y, loss)
        local += totals
        dist.all_reduce(totals)
        check_finite(totals, step=run.step, epoch=epoch)
        if metrics:
            metrics.report(split="train", step=run.step, epoch=epoch, totals=totals)
    val = evaluate(run.model, splits, gang, run.loss_fn)
    run.epoch = epoch
    loss_sum, _, count = local.tolist()
    say(gang.rank, f"epoch {epoch}/{epochs} local train loss {loss_sum / count:.4f}")
    if metrics:
        metrics.report(split="val", step=run.step, epoch=epoch, totals=val)
        val_loss, val_correct, val_count = val.tolist()
        say(
            gang.rank,
            f"epoch {epoch}/{epochs} step {run.step} "
            f"val loss {val_loss / val_count:.4f} accuracy {val_correct / val_count:.3f}",
        )


def save_checkpoint(spec: AttemptSpec, run: Run, seq: int) -> Path:
    """Write this attempt's checkpoint after `run.epoch` (the reporting rank only)."""
    return checkpoint_save(
        attempt_checkpoint_dir(Path(spec.checkpoint_dir), spec.attempt_id),
        Checkpoint(
            model=run.model.state_dict(),
            optimizer=run.optimizer.state_dict(),
            epoch=run.epoch,
            step=run.step,
            seq=seq,
            attempt=spec.attempt_id,
        ),
    )


def train(spec: AttemptSpec, splits: Splits, gang: Gang, reporter: StreamReporter | None) -> None:
    run = build(spec, splits, gang)
    seq = resume(spec, run, gang)
    metrics = Metrics(spec=spec, reporter=reporter, seq=seq) if reporter else None
    while run.epoch < spec.training.epochs:
        run_epoch(spec, run, splits, gang, metrics)
        if is_reporting(gang):
            save_checkpoint(spec, run, metrics.seq if metrics else 0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.train")
    parser.add_argument("--spec", required=True, help="path to the attempt's spec.json")
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    reporter: StreamReporter | None = None
    try:
        spec = load_spec(args.spec)
        device = placement_device(spec)
        # Data before the gang: every rank reads the same file, so bad data fails all of them
        # alike, before any of them waits in a collective for a peer that already exited.
        splits = load_data(spec)
        gang = setup(device)
        rank = gang.rank
        if is_reporting(gang):
            reporter = StreamReporter(
                redis_url=config.redis_url(),
                stream=stream_name(config.stream_prefix(), "metrics"),
                stream_maxlen=config.stream_maxlen(),
            )
        say(rank, f"training on {gang.device} as rank {rank} of {gang.world_size}")
        train(spec, splits, gang, reporter)
        if is_reporting(gang):
            say(rank, "training finished")
        return 0
    except (
        SpecError,
        PlacementError,
        DatasetError,
        StorageError,
        config.ConfigError,
        TrainingDiverged,
    ) as exc:
        say(rank, f"{ERROR_MARK} {exc}", error=True)
        return 2
    finally:
        if reporter is not None and not reporter.close(timeout=10.0):
            say(
                rank,
                f"warning: metrics not fully delivered ({reporter.dropped} dropped, "
                f"{reporter.pending} undelivered)",
                error=True,
            )
        if dist.is_initialized():
            dist.destroy_process_group()
