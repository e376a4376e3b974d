"""Checkpoints: written whole or not at all, and loaded without unpickling arbitrary objects.

Every attempt of a job writes only its own file, `<checkpoint_dir>/attempt-<id>/latest.pt`,
so an attempt the portal gave up on, but which still runs somewhere, can never overwrite the
checkpoint of the attempt that replaced it. An attempt resumes from the newest file of an
attempt whose id is not greater than its own (attempt ids grow with every placement): its
own, after a restart of the same attempt, or else its latest predecessor's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from workers.files import atomic_writer

LATEST = "latest.pt"
ATTEMPT_PREFIX = "attempt-"


@dataclass(frozen=True)
class Checkpoint:
    model: dict[str, Any]
    optimizer: dict[str, Any]
    epoch: int  # the last completed epoch (1-based)
    step: int  # global steps completed
    seq: int  # next metric seq, meaningful only within `attempt`
    attempt: int


def attempt_checkpoint_dir(checkpoint_dir: Path, attempt_id: int) -> Path:
    """The directory only attempt `attempt_id` writes to."""
    return checkpoint_dir / f"{ATTEMPT_PREFIX}{int(attempt_id)}"


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


def checkpoint_save(directory: Path, checkpoint: Checkpoint) -> Path:
    """Write `latest.pt` whole (`workers.files`), so a crash leaves the previous one."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / LATEST
    with atomic_writer(target) as out:
        torch.save(
            {
                "model": checkpoint.model,
                "optimizer": checkpoint.optimizer,
                "epoch": checkpoint.epoch,
                "step": checkpoint.step,
                "seq": checkpoint.seq,
                "attempt": checkpoint.attempt,
            },
            out,
        )
    return target


def checkpoint_load(path: Path) -> Checkpoint:
    data = torch.load(path, map_location="cpu", weights_only=True)
    return Checkpoint(
        model=data["model"],
        optimizer=data["optimizer"],
        epoch=int(data["epoch"]),
        step=int(data["step"]),
        seq=int(data["seq"]),
        attempt=int(data["attempt"]),
    )
