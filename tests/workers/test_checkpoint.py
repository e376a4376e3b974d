"""Checkpoint files: every N epochs, the newest K kept and the best besides, and a write that
dies half way never becomes `latest.pt`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.workers.support import wait_for
from workers.train.checkpoint import (
    Best,
    Checkpoint,
    checkpoint_due,
    checkpoint_load,
    checkpoint_save,
    checkpoint_to_resume,
    is_better,
)


def state(epoch: int, *, val_loss: float | None = None, best: Best | None = None) -> Checkpoint:
    return Checkpoint(
        model={"weight": torch.full((2, 2), float(epoch))},
        optimizer={"state": {}, "param_groups": []},
        epoch=epoch,
        step=epoch * 10,
        seq=epoch * 11,
        attempt=7,
        val_loss=val_loss,
        val_accuracy=None,
        best=best,
    )


def test_a_checkpoint_is_due_every_n_epochs_and_after_the_last():
    due = [epoch for epoch in range(1, 11) if checkpoint_due(epoch, every=3, epochs=10)]
    assert due == [3, 6, 9, 10]
    assert [e for e in range(1, 4) if checkpoint_due(e, every=1, epochs=3)] == [1, 2, 3]


@pytest.mark.parametrize(
    ("value", "best", "metric", "expected"),
    [
        (0.5, None, "val_loss", True),
        (0.4, Best("attempt-1/epoch-1.pt", 1, 0.5), "val_loss", True),
        (0.5, Best("attempt-1/epoch-1.pt", 1, 0.5), "val_loss", False),  # a tie keeps the older
        (0.6, Best("attempt-1/epoch-1.pt", 1, 0.5), "val_loss", False),
        (0.9, Best("attempt-1/epoch-1.pt", 1, 0.8), "val_accuracy", True),
        (0.7, Best("attempt-1/epoch-1.pt", 1, 0.8), "val_accuracy", False),
        (None, None, "val_accuracy", True),
        (None, Best("attempt-1/epoch-1.pt", 1, 0.8), "val_accuracy", False),
    ],
)
def test_the_best_checkpoint_is_lowest_loss_or_highest_accuracy(value, best, metric, expected):
    assert is_better(value, best, metric=metric) is expected


def test_it_keeps_the_newest_k_and_the_best_and_points_latest_and_best_at_them(tmp_path: Path):
    best: Best | None = None
    losses = {1: 0.9, 2: 0.3, 3: 0.5, 4: 0.6, 5: 0.4}
    reported = []
    for epoch, loss in losses.items():
        saved = checkpoint_save(
            tmp_path, state(epoch, val_loss=loss, best=best), keep_last=2, best_metric="val_loss"
        )
        best = saved.best
        reported.append((saved.name, saved.is_best))
    assert reported == [
        ("attempt-7/epoch-1.pt", True),
        ("attempt-7/epoch-2.pt", True),
        ("attempt-7/epoch-3.pt", False),
        ("attempt-7/epoch-4.pt", False),
        ("attempt-7/epoch-5.pt", False),
    ]
    directory = tmp_path / "attempt-7"
    assert sorted(p.name for p in directory.iterdir()) == [
        "best.pt",
        "epoch-2.pt",  # the best, kept besides the newest two
        "epoch-4.pt",
        "epoch-5.pt",
        "latest.pt",
    ]
    assert checkpoint_load(directory / "latest.pt").epoch == 5
    loaded_best = checkpoint_load(directory / "best.pt")
    assert loaded_best.epoch == 2
    # What a resumed attempt needs to go on judging "best".
    assert checkpoint_load(directory / "latest.pt").best == Best("attempt-7/epoch-2.pt", 2, 0.3)
    assert saved.sha256 and saved.size_bytes == (directory / "epoch-5.pt").stat().st_size


class Unpicklable:
    def __reduce__(self) -> tuple[object, ...]:
        raise RuntimeError("the disk filled up half way")


def test_a_checkpoint_inside_an_epoch_is_its_own_file_never_the_best_and_resumes_there(
    tmp_path: Path,
):
    first = checkpoint_save(tmp_path, state(2, val_loss=0.5), keep_last=2, best_metric="val_loss")
    inside = replace(state(2, val_loss=0.1, best=first.best), step=23, epoch_step=3)
    saved = checkpoint_save(tmp_path, inside, keep_last=2, best_metric="val_loss")
    # Named by its step; it keeps the last epoch's validation numbers, so it is never best.
    assert (saved.name, saved.is_best, saved.best) == ("attempt-7/step-23.pt", False, first.best)
    assert (tmp_path / "attempt-7" / "epoch-2.pt").is_file()
    latest = checkpoint_load(tmp_path / "attempt-7" / "latest.pt")
    assert (latest.epoch, latest.step, latest.epoch_step) == (2, 23, 3)
    assert checkpoint_load(tmp_path / "attempt-7" / "best.pt").epoch_step == 0


def test_an_exception_while_writing_leaves_the_previous_latest(tmp_path: Path):
    checkpoint_save(tmp_path, state(1, val_loss=0.5), keep_last=2, best_metric="val_loss")
    broken = state(2, val_loss=0.1)
    broken.model["weight"] = Unpicklable()
    with pytest.raises(RuntimeError, match="half way"):
        checkpoint_save(tmp_path, broken, keep_last=2, best_metric="val_loss")
    directory = tmp_path / "attempt-7"
    # No half file under any real name, no temporary left, and resume takes epoch 1.
    assert sorted(p.name for p in directory.iterdir()) == ["best.pt", "epoch-1.pt", "latest.pt"]
    resume_from = checkpoint_to_resume(tmp_path, 7)
    assert resume_from == directory / "latest.pt"
    assert checkpoint_load(resume_from).epoch == 1


KILLED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import torch
    from workers.train.checkpoint import Checkpoint, checkpoint_save

    root, ready = Path(sys.argv[1]), Path(sys.argv[2])
    def stall(fd):  # the bytes are out, the rename has not happened: die here
        ready.write_text("writing")
        time.sleep(600)
    os.fsync = stall
    checkpoint_save(
        root,
        Checkpoint(model={"w": torch.zeros(256, 256)}, optimizer={}, epoch=2, step=20, seq=0,
                   attempt=7, val_loss=0.1),
        keep_last=2,
        best_metric="val_loss",
    )
    """
)


def test_a_process_killed_while_writing_never_makes_its_file_latest(tmp_path: Path):
    checkpoint_save(tmp_path, state(1, val_loss=0.5), keep_last=2, best_metric="val_loss")
    before = (tmp_path / "attempt-7" / "latest.pt").read_bytes()
    ready = tmp_path / "ready"
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path), str(ready)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        wait_for(ready.exists, timeout=60, what="the writer to be half way")
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
    finally:
        if writer.poll() is None:
            writer.kill()
    directory = tmp_path / "attempt-7"
    names = sorted(p.name for p in directory.iterdir())
    # The killed write left only a temporary file, which nothing reads.
    assert [n for n in names if not n.startswith(".")] == ["best.pt", "epoch-1.pt", "latest.pt"]
    assert any(n.startswith(".epoch-2.pt.") and n.endswith(".tmp") for n in names)
    assert (directory / "latest.pt").read_bytes() == before
    resume_from = checkpoint_to_resume(tmp_path, 7)
    assert resume_from is not None and checkpoint_load(resume_from).epoch == 1


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
