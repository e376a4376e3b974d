"""Checkpoints: written whole or not at all, and loaded without unpickling arbitrary objects."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

LATEST = "latest.pt"


@dataclass(frozen=True)
class Checkpoint:
    model: dict[str, Any]
    optimizer: dict[str, Any]
    epoch: int  # the last completed epoch (1-based)
    step: int  # global steps completed
    seq: int  # next metric seq, meaningful only within `attempt`
    attempt: int


def checkpoint_save(directory: Path, checkpoint: Checkpoint) -> Path:
    """Write `latest.pt` via a temporary file and `os.replace`, so a crash leaves the old one."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / LATEST
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{LATEST}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
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
            out.flush()
            os.fsync(out.fileno())
        Path(tmp_name).replace(target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def checkpoint_load(directory: Path) -> Checkpoint | None:
    path = directory / LATEST
    if not path.is_file():
        return None
    data = torch.load(path, map_location="cpu", weights_only=True)
    return Checkpoint(
        model=data["model"],
        optimizer=data["optimizer"],
        epoch=int(data["epoch"]),
        step=int(data["step"]),
        seq=int(data["seq"]),
        attempt=int(data["attempt"]),
    )
