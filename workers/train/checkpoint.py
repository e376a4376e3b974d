"""Checkpoints: written whole or not at all, and loaded without unpickling arbitrary objects.

Every attempt of a job writes only under its own directory, `<checkpoint_dir>/attempt-<id>/`,
so an attempt the portal gave up on, but which still runs somewhere, can never overwrite the
checkpoints of the attempt that replaced it. In that directory:

- `epoch-<n>.pt`: the state after epoch `n`, every `checkpoint_every` epochs and after the
  last; the newest `keep_last` are kept, and the best by `best_metric` besides;
- `step-<n>.pt`: the state after global step `n`, written when the run was stopped (SIGTERM:
  a cancel or a preemption) inside an epoch;
- `latest.pt`: the newest complete checkpoint file (what a restart resumes from);
- `best.pt`: the best one so far (what the export and a registered model use).

Every file appears by an atomic rename (`workers.files`): `epoch-<n>.pt` is written under a
temporary name, and `latest.pt` / `best.pt` are hard links to it put in place by renaming a
link with a temporary name over them (a copy where the filesystem has no hard links). A crash
or an exception at any point leaves the previous `latest.pt` whole; a stray `.*.tmp` is never
read.

An attempt resumes from the newest `latest.pt` of an attempt whose id is not greater than its
own (attempt ids grow with every placement): its own, after a restart of the same attempt, or
else its latest predecessor's.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from workers.files import CHUNK_BYTES, atomic_writer, sha256_of_path

LATEST = "latest.pt"
BEST = "best.pt"
ATTEMPT_PREFIX = "attempt-"
EXPORT_DIR = "export"
_EPOCH_FILE = re.compile(r"^epoch-(\d+)\.pt$")
_CHUNK = CHUNK_BYTES

Metric = Literal["val_loss", "val_accuracy"]


@dataclass(frozen=True)
class Best:
    """The best checkpoint so far by the job's `best_metric`; `name` is relative to the job's
    checkpoint directory (`attempt-7/epoch-3.pt`), so a requeued attempt still finds it."""

    name: str
    epoch: int
    value: float


@dataclass(frozen=True)
class Checkpoint:
    model: dict[str, Any]
    optimizer: dict[str, Any]
    epoch: int  # the last completed epoch (1-based)
    step: int  # global steps completed
    seq: int  # next metric seq, meaningful only within `attempt`
    attempt: int
    val_loss: float | None = None
    val_accuracy: float | None = None
    best: Best | None = field(default=None)
    # Steps done of epoch `epoch + 1` when the run stopped inside it (on SIGTERM); 0 at an
    # epoch's end. A resume skips that many batches of the epoch's (seeded) order.
    epoch_step: int = 0


@dataclass(frozen=True)
class Saved:
    """A checkpoint file written whole: what the `checkpoint.saved` event reports."""

    path: Path
    name: str  # relative to the job's checkpoint directory
    sha256: str
    size_bytes: int
    is_best: bool
    best: Best | None


def attempt_checkpoint_dir(checkpoint_dir: Path, attempt_id: int) -> Path:
    """The directory only attempt `attempt_id` writes to."""
    return checkpoint_dir / f"{ATTEMPT_PREFIX}{int(attempt_id)}"


def epoch_file(epoch: int) -> str:
    return f"epoch-{int(epoch)}.pt"


def checkpoint_due(epoch: int, *, every: int, epochs: int) -> bool:
    """Whether to write a checkpoint after `epoch`: every `every` epochs, and after the last."""
    return epoch % every == 0 or epoch == epochs


def checkpoint_to_resume(checkpoint_dir: Path, attempt_id: int) -> Path | None:
    """The checkpoint attempt `attempt_id` resumes from, or None to start afresh.

    The newest `attempt-<id>/latest.pt` with `id <= attempt_id`; a later attempt's file is
    never read (it belongs to the attempt that fenced this one off).
    """
    newest: tuple[int, Path] | None = None
    if checkpoint_dir.is_dir():
        for entry in checkpoint_dir.iterdir():
            number = entry.name.removeprefix(ATTEMPT_PREFIX)
            if entry.name == number or not number.isdigit() or int(number) > attempt_id:
                continue
            path = entry / LATEST
            if path.is_file() and (newest is None or int(number) > newest[0]):
                newest = (int(number), path)
    return newest[1] if newest is not None else None


def is_better(value: float | None, than: Best | None, *, metric: Metric) -> bool:
    """Whether a checkpoint with `value` of `metric` beats the best so far (ties keep the
    older one). A checkpoint without the metric is never best, unless nothing is yet."""
    if value is None:
        return than is None
    if than is None:
        return True
    return value > than.value if metric == "val_accuracy" else value < than.value


def _place_atomically(source: Path, target: Path) -> None:
    """Make `target` name the complete file `source`, in one rename."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:
            # No hard links here (some network filesystems): a whole copy, fsynced first.
            with atomic_writer(tmp) as out, source.open("rb") as src:
                shutil.copyfileobj(src, out, _CHUNK)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _prune(directory: Path, *, keep_last: int, keep: set[str]) -> None:
    """Remove all but the newest `keep_last` epoch files (and those in `keep`)."""
    epochs = sorted(
        (int(match.group(1)), entry)
        for entry in directory.iterdir()
        if (match := _EPOCH_FILE.match(entry.name))
    )
    for _epoch, entry in epochs[: max(0, len(epochs) - keep_last)]:
        if entry.name not in keep:
            entry.unlink(missing_ok=True)


def checkpoint_save(
    checkpoint_dir: Path, checkpoint: Checkpoint, *, keep_last: int, best_metric: Metric
) -> Saved:
    """Write `attempt-<id>/epoch-<n>.pt` whole, then point `latest.pt` (and `best.pt`, when
    it is the best so far by `best_metric`) at it, then prune to the newest `keep_last`.

    An exception (or a crash) before the rename leaves no `epoch-<n>.pt` and the previous
    `latest.pt` untouched."""
    directory = attempt_checkpoint_dir(checkpoint_dir, checkpoint.attempt)
    directory.mkdir(parents=True, exist_ok=True)
    # A stop inside an epoch writes `step-<n>.pt`: its validation numbers are the last
    # epoch's, so it is never the best, and it must not replace that epoch's file.
    file = f"step-{checkpoint.step}.pt" if checkpoint.epoch_step else epoch_file(checkpoint.epoch)
    name = f"{directory.name}/{file}"
    value = checkpoint.val_loss if best_metric == "val_loss" else checkpoint.val_accuracy
    is_best = not checkpoint.epoch_step and is_better(value, checkpoint.best, metric=best_metric)
    best = (
        Best(name=name, epoch=checkpoint.epoch, value=value if value is not None else 0.0)
        if is_best
        else checkpoint.best
    )
    target = directory / file
    with atomic_writer(target) as out:
        torch.save(
            {
                "model": checkpoint.model,
                "optimizer": checkpoint.optimizer,
                "epoch": checkpoint.epoch,
                "epoch_step": checkpoint.epoch_step,
                "step": checkpoint.step,
                "seq": checkpoint.seq,
                "attempt": checkpoint.attempt,
                "val_loss": checkpoint.val_loss,
                "val_accuracy": checkpoint.val_accuracy,
                "best": None
                if best is None
                else {"name": best.name, "epoch": best.epoch, "value": best.value},
            },
            out,
        )
    _place_atomically(target, directory / LATEST)
    if is_best:
        _place_atomically(target, directory / BEST)
    keep = {Path(best.name).name} if best and best.name.startswith(f"{directory.name}/") else set()
    _prune(directory, keep_last=keep_last, keep=keep)
    return Saved(
        path=target,
        name=name,
        sha256=sha256_of_path(target),
        size_bytes=target.stat().st_size,
        is_best=is_best,
        best=best,
    )


def checkpoint_load(path: Path) -> Checkpoint:
    data = torch.load(path, map_location="cpu", weights_only=True)
    best = data.get("best")
    return Checkpoint(
        model=data["model"],
        optimizer=data["optimizer"],
        epoch=int(data["epoch"]),
        epoch_step=int(data["epoch_step"]),
        step=int(data["step"]),
        seq=int(data["seq"]),
        attempt=int(data["attempt"]),
        val_loss=data.get("val_loss"),
        val_accuracy=data.get("val_accuracy"),
        best=None
        if best is None
        else Best(name=str(best["name"]), epoch=int(best["epoch"]), value=float(best["value"])),
    )
