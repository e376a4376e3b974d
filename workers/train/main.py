"""One rank of a DDP training run: setup, loop, and a `finally` that always cleans up.

torchrun starts this once per local rank with RANK, LOCAL_RANK, WORLD_SIZE and the rendezvous
in the environment. Every rank trains on its `DistributedSampler` shard; losses and accuracies
are all-reduced so rank 0 reports the whole gang's numbers as `MetricEntry`s and writes the
checkpoints. Every rank prints one `[rank N]` line per epoch so the job's log shows all of them.

Resuming: rank 0 writes `checkpoint_dir/attempt-<id>/latest.pt`, and a start resumes from
the newest checkpoint of this attempt or an earlier one (see `workers.train.checkpoint`), then
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


@dataclass(frozen=True)
class Gang:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device


class Metrics:
    """Numbers rank 0 reports, with `seq` contiguous within the attempt."""

    def __init__(self, *, spec: AttemptSpec, reporter: StreamReporter, seq: int) -> None:
        self._spec = spec
        self._reporter = reporter
        self.seq = seq

    def report(
        self, *, split: Literal["train", "val"], step: int, epoch: int, totals: torch.Tensor
    ) -> None:
        loss_sum, correct, count = (float(value) for value in totals.tolist())
        entry: MetricEntry = {
            "job": self._spec.job_id,
            "attempt": self._spec.attempt_id,
            "seq": self.seq,
            "split": split,
            "step": step,
            "epoch": epoch,
            "loss": loss_sum / count if count else math.nan,
            "accuracy": correct / count if count else None,
            "ts": time.time(),
        }
        # JSON has no NaN; training stops on a non-finite loss (check_finite), and an empty
        # shard reports nothing, so seq stays contiguous.
        if count and math.isfinite(entry["loss"]):
            self._reporter.report(entry)
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
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SpecError(f"cannot read the attempt spec {path}: {exc}") from exc


def load_data(spec: AttemptSpec) -> Splits:
    state_dir = config.node_state_dir(spec.node_name)
    local = dataset_fetch(
        uri=spec.dataset.uri, sha256=spec.dataset.sha256, cache_dir=attempts.cache_dir(state_dir)
    )
    features, labels = load_csv(local, spec.dataset)
    return split(features, labels, seed=spec.training.seed, val_fraction=spec.training.val_fraction)


def setup(spec: AttemptSpec) -> Gang:
    if "RANK" not in os.environ:
        raise SpecError("run the trainer under torchrun: RANK and WORLD_SIZE are not set")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if spec.placement.device == "cuda" and torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        dist.init_process_group(backend="nccl", device_id=device)
    else:
        device = torch.device("cpu")
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


def train(spec: AttemptSpec, splits: Splits, gang: Gang, reporter: StreamReporter | None) -> None:
    training = spec.training
    classes = len(spec.dataset.classes)
    torch.manual_seed(training.seed)
    model = build_model(spec.model, inputs=splits.train_x.shape[1], outputs=classes)
    checkpoint_dir = Path(spec.checkpoint_dir)
    resume_from = checkpoint_to_resume(checkpoint_dir, spec.attempt_id)
    checkpoint = checkpoint_load(resume_from) if resume_from else None
    agree_on_start(checkpoint, gang)
    if checkpoint is not None:
        model.load_state_dict(checkpoint.model)
    model.to(gang.device)
    ddp = DistributedDataParallel(
        model, device_ids=[gang.local_rank] if gang.device.type == "cuda" else None
    )
    optimizer: torch.optim.Optimizer
    if training.optimizer == "adam":
        optimizer = torch.optim.Adam(ddp.parameters(), lr=training.learning_rate)
    else:
        optimizer = torch.optim.SGD(ddp.parameters(), lr=training.learning_rate)
    start_epoch, step, seq = 0, 0, 0
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint.optimizer)
        start_epoch, step = checkpoint.epoch, checkpoint.step
        seq = checkpoint.seq if checkpoint.attempt == spec.attempt_id else 0
        say(gang.rank, f"resuming after epoch {start_epoch} (step {step}) from {resume_from}")
    metrics = Metrics(spec=spec, reporter=reporter, seq=seq) if reporter else None
    loss_fn = loss_function(training.loss, classes)

    dataset = TensorDataset(splits.train_x, splits.train_y)
    sampler: DistributedSampler[int] = DistributedSampler(
        dataset, num_replicas=gang.world_size, rank=gang.rank, shuffle=True, seed=training.seed
    )
    loader = DataLoader(dataset, batch_size=training.batch_size, sampler=sampler)

    for epoch in range(start_epoch + 1, training.epochs + 1):
        sampler.set_epoch(epoch)
        ddp.train()
        local = torch.zeros(3, dtype=torch.float64, device=gang.device)
        for x_cpu, y_cpu in loader:
            x, y = x_cpu.to(gang.device), y_cpu.to(gang.device)
            optimizer.zero_grad(set_to_none=True)
            outputs = ddp(x)
            loss = loss_fn(outputs, y)
            loss.backward()
            optimizer.step()
            step += 1
            totals = batch_totals(outputs, y, loss)
            local += totals
            dist.all_reduce(totals)
            check_finite(totals, step=step, epoch=epoch)
            if metrics:
                metrics.report(split="train", step=step, epoch=epoch, totals=totals)
        val = evaluate(model, splits, gang, loss_fn)
        loss_sum, _, count = local.tolist()
        say(gang.rank, f"epoch {epoch}/{training.epochs} local train loss {loss_sum / count:.4f}")
        if metrics:
            metrics.report(split="val", step=step, epoch=epoch, totals=val)
            val_loss, val_correct, val_count = val.tolist()
            say(
                gang.rank,
                f"epoch {epoch}/{training.epochs} step {step} "
                f"val loss {val_loss / val_count:.4f} accuracy {val_correct / val_count:.3f}",
            )
        if gang.rank == 0:
            checkpoint_save(
                attempt_checkpoint_dir(checkpoint_dir, spec.attempt_id),
                Checkpoint(
                    model=model.state_dict(),
                    optimizer=optimizer.state_dict(),
                    epoch=epoch,
                    step=step,
                    seq=metrics.seq if metrics else 0,
                    attempt=spec.attempt_id,
                ),
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.train")
    parser.add_argument("--spec", required=True, help="path to the attempt's spec.json")
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    reporter: StreamReporter | None = None
    try:
        spec = load_spec(args.spec)
        # Data first: every rank reads the same file, so bad data fails all of them alike,
        # before any of them waits in a collective for a peer that already exited.
        splits = load_data(spec)
        gang = setup(spec)
        rank = gang.rank
        if rank == 0:
            reporter = StreamReporter(
                redis_url=config.redis_url(),
                stream=stream_name(config.stream_prefix(), "metrics"),
                stream_maxlen=config.stream_maxlen(),
            )
        say(rank, f"training on {gang.device} as rank {rank} of {gang.world_size}")
        train(spec, splits, gang, reporter)
        if rank == 0:
            say(rank, "training finished")
        return 0
    except (SpecError, DatasetError, StorageError, config.ConfigError, TrainingDiverged) as exc:
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
