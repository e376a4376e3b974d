"""One rank of a DDP training run: setup, loop, and a `finally` that always cleans up.

torchrun starts this once per local rank with RANK, LOCAL_RANK, WORLD_SIZE and the rendezvous
in the environment. Every rank trains on its `DistributedSampler` shard of the memory-mapped,
prepared dataset (`workers.train.data`); losses and accuracies are all-reduced so the reporting
rank (`REPORTING_RANK`, 0) reports the whole gang's numbers (a metric point every step), writes the
checkpoints (reporting each as a `CheckpointSavedEntry` on the events stream) and, at the end,
exports the best one (`workers.train.export`). `train` is the references' shape
(pytorch/examples `multigpu_torchrun.py`, torchtitan's trainer): `build`, `resume`, then
`run_epoch` and `save_checkpoint` per epoch; `main` is setup, that loop, and a `finally` that
always cleans up. A GPU placement on a host without CUDA fails at once (`placement_device`),
never silently on the CPU. Every rank prints one `[rank N]` line per epoch so the job's log
shows all of them.

Reporting costs a step a few microseconds: every rank appends one fixed-size record per step
(its own step time and samples; on the reporting rank also the gang's loss) to its spool file
with one `os.write` (`workers.spool`), and the launcher, another process, ships the files to
Redis (`workers.shipper`). No thread of this process touches Redis.

The model is `workers.models.build_model` for a built-in architecture, or the user's code
(`workers.models.custom_model`) for a `CustomModel`: fetched by URI and checked against its
SHA-256 like a dataset. Custom code runs only here, on nodes.

Stopping: once training starts, a SIGTERM (a cancel or a preemption) makes the gang stop at its
next step boundary (`StopSignal`): the reporting rank writes a checkpoint there, prints the
`STOPPED_MARK` line, and every rank exits with `STOPPED_EXIT`.

Resuming: a start resumes from the newest `latest.pt` of this attempt or an earlier one (see
`workers.train.checkpoint`), then continues after its epoch, or inside it after the steps a
stop left done. Within the same attempt the
metric `seq` continues from the checkpoint; a new attempt (a requeue) starts its own `seq` at
0, because the portal keys metrics by `(attempt, seq)`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from workers import attempts, config
from workers.messages import (
    AttemptSpec,
    CheckpointSavedEntry,
    CustomModel,
    Phase,
    encode,
    phase_entry,
)
from workers.models import ModelShapeError, build_model, custom_model, output_width
from workers.spool import EVENTS_FILE, METRIC_TRAIN, METRIC_VAL, STATS, Appender, StepWriter
from workers.storage import StorageError
from workers.train import ERROR_MARK, STOPPED_EXIT, STOPPED_MARK
from workers.train.checkpoint import (
    BEST,
    Best,
    Checkpoint,
    Saved,
    attempt_checkpoint_dir,
    checkpoint_due,
    checkpoint_load,
    checkpoint_save,
    checkpoint_to_resume,
)
from workers.train.data import DatasetInvalid, Rows, Shards, batch_as_is, load_shards
from workers.train.export import export_best
from workers.train.objective import Objective, ObjectiveError, objective_for


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


@dataclass
class Reporters:
    """A rank's spools: its step records (every rank), and the reporting rank's events."""

    steps: StepWriter
    events: Appender | None

    def close(self) -> None:
        self.steps.close()
        if self.events is not None:
            self.events.close()

    def phase(self, spec: AttemptSpec, phase: Phase, ts: float) -> None:
        """The reporting rank's report of a phase of the attempt, on its events spool
        (docs/telemetry.md "Phases"); the other ranks report none."""
        if self.events is not None:
            self.events.write(encode(phase_entry(spec=spec, phase=phase, ts=ts)) + b"\n")


class Metrics:
    """What a rank reports each step; the reporting rank's points keep `seq` contiguous."""

    def __init__(
        self,
        *,
        steps: StepWriter,
        reporting: bool,
        seq: int,
        has_accuracy: bool,
        first_step: Callable[[float], None] = lambda ts: None,
    ) -> None:
        self._steps = steps
        self._reporting = reporting
        self._has_accuracy = has_accuracy
        self._first_step = first_step
        self.seq = seq
        self._last = time.perf_counter()
        # The wall-clock time of this attempt's first training step (the phases), and the
        # monotonic time of its latest (converted only once, at the end: `last_step_at`).
        self.first_step_at: float | None = None
        self._last_step: float | None = None

    @property
    def last_step_at(self) -> float | None:
        """The wall-clock time of the latest training step (None before the first)."""
        if self._last_step is None:
            return None
        return time.time() - (time.perf_counter() - self._last_step)

    def step(self, *, step: int, epoch: int, totals: torch.Tensor, samples: int) -> None:
        """One training step done: this rank's time and samples, and (reporting rank) the
        gang's all-reduced loss. A pack and one write: no Redis, no thread, no JSON."""
        now = time.perf_counter()
        step_time, self._last = now - self._last, now
        self._last_step = now
        if self.first_step_at is None:
            self.first_step_at = time.time()
            self._first_step(self.first_step_at)
        if not self._reporting:
            self._steps.step(
                flags=STATS, step=step, epoch=epoch, step_time_s=step_time, samples=samples
            )
            return
        loss_sum, correct, count = totals.tolist()
        if not count:
            self._steps.step(
                flags=STATS, step=step, epoch=epoch, step_time_s=step_time, samples=samples
            )
            return
        self._steps.step(
            flags=METRIC_TRAIN | STATS,
            seq=self.seq,
            step=step,
            epoch=epoch,
            loss=loss_sum / count,
            accuracy=correct / count if self._has_accuracy else None,
            step_time_s=step_time,
            samples=samples,
        )
        self.seq += 1

    def validated(self, *, step: int, epoch: int, totals: torch.Tensor) -> None:
        """The epoch's validation (reporting rank). The clock restarts: evaluation time is not
        a training step's."""
        self._last = time.perf_counter()
        if not self._reporting:
            return
        loss_sum, correct, count = totals.tolist()
        # An empty shard or a non-finite validation loss reports nothing, so seq stays
        # contiguous (training itself stops on a non-finite loss: check_finite).
        if not count or not math.isfinite(loss_sum):
            return
        self._steps.step(
            flags=METRIC_VAL,
            seq=self.seq,
            step=step,
            epoch=epoch,
            loss=loss_sum / count,
            accuracy=correct / count if self._has_accuracy else None,
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


def node_cache(spec: AttemptSpec) -> Path:
    return attempts.cache_dir(config.node_state_dir(spec.node_name))


def load_data(spec: AttemptSpec) -> Shards:
    return load_shards(spec.dataset, cache_dir=node_cache(spec))


def model_outputs(spec: AttemptSpec) -> int:
    dataset = spec.dataset
    return output_width(spec.model, task=dataset.task, num_classes=len(dataset.classes))


def make_model(spec: AttemptSpec) -> nn.Module:
    """The untrained module: a built-in architecture, or the user's code once its bytes match
    the checksum the portal recorded (`ModelShapeError` when it cannot be built)."""
    input_shape = tuple(spec.dataset.input_shape)
    outputs = model_outputs(spec)
    if isinstance(spec.model, CustomModel):
        return custom_model(
            spec.model, cache_dir=node_cache(spec), input_shape=input_shape, outputs=outputs
        )
    built: nn.Module = build_model(spec.model, input_shape=input_shape, outputs=outputs)
    return built


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


class StopSignal:
    """SIGTERM (a cancel or a preemption, from the launcher or torchrun) asks this rank to stop
    at the next step boundary: the gang agrees on it inside the step's all-reduce, the
    reporting rank writes a checkpoint there, and every rank exits with `STOPPED_EXIT`.
    Installed once training starts; before that a SIGTERM ends the rank at once, with nothing
    new to save."""

    def __init__(self) -> None:
        self.at: float | None = None  # time.monotonic() of the first SIGTERM

    def install(self) -> StopSignal:
        signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if self.at is None:
            self.at = time.monotonic()

    def flag(self, device: torch.device) -> torch.Tensor:
        return torch.tensor(
            [1.0 if self.at is not None else 0.0], dtype=torch.float64, device=device
        )


class Stopped(Exception):
    """The gang agreed to stop on SIGTERM; the checkpoint is written."""


@dataclass
class Run:
    """What one rank trains with, built once by `build` and moved on by `run_epoch`."""

    model: nn.Module
    ddp: DistributedDataParallel
    optimizer: torch.optim.Optimizer
    objective: Objective
    sampler: DistributedSampler[int]
    loader: DataLoader[tuple[torch.Tensor, torch.Tensor]]
    # This rank's `rank::world` slice of the validation rows, read once.
    val: tuple[torch.Tensor, torch.Tensor]
    outputs: int
    epoch: int = 0  # the last completed epoch
    step: int = 0
    epoch_step: int = 0  # steps done of epoch `epoch + 1` (a resume after a stop inside it)
    best: Best | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None


def build(spec: AttemptSpec, shards: Shards, gang: Gang) -> Run:
    """The model, its DDP wrapper, the optimizer and this rank's shard of the data."""
    training = spec.training
    dataset = spec.dataset
    torch.manual_seed(training.seed)
    outputs = model_outputs(spec)
    try:
        objective = objective_for(
            task=dataset.task, width=outputs, classes=len(dataset.classes), loss=training.loss
        )
    except ObjectiveError as exc:
        raise SpecError(str(exc)) from exc
    model = make_model(spec).to(gang.device)
    ddp = DistributedDataParallel(
        model, device_ids=[gang.local_rank] if gang.device.type == "cuda" else None
    )
    optimizer: torch.optim.Optimizer
    if training.optimizer == "adam":
        optimizer = torch.optim.Adam(ddp.parameters(), lr=training.learning_rate)
    else:
        optimizer = torch.optim.SGD(ddp.parameters(), lr=training.learning_rate)
    rows = Rows(shards)
    sampler: DistributedSampler[int] = DistributedSampler(
        rows, num_replicas=gang.world_size, rank=gang.rank, shuffle=True, seed=training.seed
    )
    return Run(
        model=model,
        ddp=ddp,
        optimizer=optimizer,
        objective=objective,
        sampler=sampler,
        loader=DataLoader(
            rows, batch_size=training.batch_size, sampler=sampler, collate_fn=batch_as_is
        ),
        val=shards.rows(shards.val[gang.rank :: gang.world_size]),
        outputs=outputs,
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
    run.epoch, run.step, run.best = checkpoint.epoch, checkpoint.step, checkpoint.best
    run.epoch_step = checkpoint.epoch_step
    run.val_loss, run.val_accuracy = checkpoint.val_loss, checkpoint.val_accuracy
    say(gang.rank, f"resuming after epoch {run.epoch} (step {run.step}) from {resume_from}")
    if run.epoch_step:
        say(gang.rank, f"resuming inside epoch {run.epoch + 1} after {run.epoch_step} steps")
    return checkpoint.seq if checkpoint.attempt == spec.attempt_id else 0


def evaluate(run: Run, gang: Gang) -> torch.Tensor:
    """Validation totals over every rank's `rank::world` slice: each row counted exactly once."""
    x_cpu, y_cpu = run.val
    totals = torch.zeros(3, dtype=torch.float64, device=gang.device)
    if y_cpu.shape[0]:
        x, y = x_cpu.to(gang.device), y_cpu.to(gang.device)
        run.model.eval()
        with torch.no_grad():
            outputs = run.model(x)
            totals = run.objective.totals(outputs, y, run.objective.loss(outputs, y))
        run.model.train()
    dist.all_reduce(totals)
    return totals


def run_epoch(
    spec: AttemptSpec, run: Run, gang: Gang, metrics: Metrics | None, stop: StopSignal
) -> bool:
    """Train one epoch on this rank's shard, then validate; the reporting rank reports both.
    False: the gang stopped at a step boundary inside the epoch (a SIGTERM on some rank)."""
    epochs = spec.training.epochs
    epoch = run.epoch + 1
    objective = run.objective
    run.sampler.set_epoch(epoch)
    run.ddp.train()
    local = torch.zeros(3, dtype=torch.float64, device=gang.device)
    # After a stop inside this epoch, its first steps are done: the sampler's order is seeded
    # by the epoch, so skipping them continues where the checkpoint left off.
    for x_cpu, y_cpu in itertools.islice(run.loader, run.epoch_step, None):
        x, y = x_cpu.to(gang.device), y_cpu.to(gang.device)
        run.optimizer.zero_grad(set_to_none=True)
        outputs = run.ddp(x)
        loss = objective.loss(outputs, y)
        loss.backward()
        run.optimizer.step()
        run.step += 1
        run.epoch_step += 1
        totals = objective.totals(outputs, y, loss)
        local += totals
        # The stop flag rides in the step's one all-reduce: every rank stops after the same
        # step, whichever of them got the SIGTERM.
        packed = torch.cat([totals, stop.flag(gang.device)])
        dist.all_reduce(packed)
        totals = packed[:3]
        check_finite(totals, step=run.step, epoch=epoch)
        if metrics:
            metrics.step(step=run.step, epoch=epoch, totals=totals, samples=y_cpu.shape[0])
        # A stop at the epoch's last step finishes it (validation is short): the checkpoint
        # is then the epoch's own.
        if packed[3] > 0 and run.epoch_step < len(run.loader):
            return False
    val = evaluate(run, gang)
    run.epoch, run.epoch_step = epoch, 0
    loss_sum, _, count = local.tolist()
    say(gang.rank, f"epoch {epoch}/{epochs} local train loss {loss_sum / max(count, 1):.4f}")
    val_loss, val_correct, val_count = val.tolist()
    finite = val_count > 0 and math.isfinite(val_loss)
    run.val_loss = val_loss / val_count if finite else None
    run.val_accuracy = val_correct / val_count if finite and objective.has_accuracy else None
    if metrics:
        metrics.validated(step=run.step, epoch=epoch, totals=val)
    if is_reporting(gang):
        accuracy = "" if run.val_accuracy is None else f" accuracy {run.val_accuracy:.3f}"
        shown = "n/a" if run.val_loss is None else f"{run.val_loss:.4f}"
        say(gang.rank, f"epoch {epoch}/{epochs} step {run.step} val loss {shown}{accuracy}")
    return True


def gang_stopping(stop: StopSignal, gang: Gang) -> bool:
    """Whether any rank got a SIGTERM (between steps: validating, checkpointing)."""
    flag = stop.flag(gang.device)
    dist.all_reduce(flag)
    return bool(flag[0] > 0)


def save_checkpoint(spec: AttemptSpec, run: Run, seq: int) -> Saved:
    """Write this attempt's checkpoint after `run.epoch` (the reporting rank only)."""
    saved = checkpoint_save(
        Path(spec.checkpoint_dir),
        Checkpoint(
            model=run.model.state_dict(),
            optimizer=run.optimizer.state_dict(),
            epoch=run.epoch,
            step=run.step,
            epoch_step=run.epoch_step,
            seq=seq,
            attempt=spec.attempt_id,
            val_loss=run.val_loss,
            val_accuracy=run.val_accuracy,
            best=run.best,
        ),
        keep_last=spec.training.keep_last,
        best_metric=spec.training.best_metric,
    )
    run.best = saved.best
    return saved


def saved_entry(spec: AttemptSpec, run: Run, saved: Saved) -> CheckpointSavedEntry:
    return CheckpointSavedEntry(
        job=spec.job_id,
        attempt=spec.attempt_id,
        epoch=run.epoch,
        step=run.step,
        name=saved.name,
        sha256=saved.sha256,
        size_bytes=saved.size_bytes,
        val_loss=run.val_loss,
        val_accuracy=run.val_accuracy,
        is_best=saved.is_best,
        ts=time.time(),
    )


def export(spec: AttemptSpec, run: Run, gang: Gang) -> None:
    """Export the best checkpoint's weights (the reporting rank, after the last epoch)."""
    if run.best is None:
        say(gang.rank, "no checkpoint to export", error=True)
        return
    checkpoint_dir = Path(spec.checkpoint_dir)
    best_file = checkpoint_dir / run.best.name
    own_best = attempt_checkpoint_dir(checkpoint_dir, spec.attempt_id) / BEST
    source = own_best if own_best.is_file() else best_file
    model = make_model(spec)
    model.load_state_dict(checkpoint_load(source).model)
    directory, problem = export_best(spec, model.cpu(), best=run.best, outputs=run.outputs)
    say(gang.rank, f"exported {run.best.name} (epoch {run.best.epoch}) to {directory}")
    if problem:
        say(gang.rank, f"warning: no TorchScript export: {problem}", error=True)


def train(spec: AttemptSpec, shards: Shards, gang: Gang, reporters: Reporters | None) -> None:
    training = spec.training
    run = build(spec, shards, gang)
    seq = resume(spec, run, gang)
    metrics = (
        Metrics(
            steps=reporters.steps,
            reporting=is_reporting(gang),
            seq=seq,
            has_accuracy=run.objective.has_accuracy,
            first_step=lambda ts: reporters.phase(spec, "first_step", ts),
        )
        if reporters
        else None
    )
    stop = StopSignal().install()
    while run.epoch < training.epochs:
        finished = run_epoch(spec, run, gang, metrics, stop)
        due = finished and checkpoint_due(
            run.epoch, every=training.checkpoint_every, epochs=training.epochs
        )
        stopping = not finished or gang_stopping(stop, gang)
        saved = None
        if is_reporting(gang) and (due or stopping):
            saved = save_checkpoint(spec, run, metrics.seq if metrics else 0)
            if reporters and reporters.events:
                reporters.events.write(encode(saved_entry(spec, run, saved)) + b"\n")
        if stopping:
            # No rank exits before the checkpoint is whole: torchrun would stop the others.
            dist.barrier()
            if saved is not None:
                after = f"{time.monotonic() - stop.at:.2f}s after SIGTERM" if stop.at else ""
                say(
                    gang.rank,
                    f"{STOPPED_MARK} checkpointed {saved.name} (epoch {run.epoch}, "
                    f"step {run.step}) {after}".rstrip(),
                )
            raise Stopped
    if reporters and metrics and (last := metrics.last_step_at) is not None:
        reporters.phase(spec, "last_step", last)
    if is_reporting(gang):
        export(spec, run, gang)
    # The ranks leave together: one that tears its process group down while a peer still
    # works (rank 0's export) can take gloo down with an abort at exit.
    dist.barrier()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.train")
    parser.add_argument("--spec", required=True, help="path to the attempt's spec.json")
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    reporters: Reporters | None = None
    try:
        spec = load_spec(args.spec)
        device = placement_device(spec)
        # Data before the gang: every rank reads the same file, so bad data fails all of them
        # alike, before any of them waits in a collective for a peer that already exited.
        shards = load_data(spec)
        gang = setup(device)
        rendezvous_at = time.time()
        rank = gang.rank
        spool = config.telemetry_dir()
        reporters = Reporters(
            steps=StepWriter(spool, rank=gang.rank, local_rank=gang.local_rank),
            events=Appender(spool / EVENTS_FILE) if is_reporting(gang) else None,
        )
        reporters.phase(spec, "rendezvous_done", rendezvous_at)
        say(rank, f"training on {gang.device} as rank {rank} of {gang.world_size}")
        train(spec, shards, gang, reporters)
        if is_reporting(gang):
            say(rank, "training finished")
        return 0
    except (
        SpecError,
        PlacementError,
        DatasetInvalid,
        ModelShapeError,
        StorageError,
        config.ConfigError,
        TrainingDiverged,
    ) as exc:
        say(rank, f"{ERROR_MARK} {exc}", error=True)
        return 2
    except Stopped:
        return STOPPED_EXIT
    finally:
        if reporters is not None:
            reporters.close()
        if dist.is_initialized():
            dist.destroy_process_group()
