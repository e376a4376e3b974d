"""The on-disk layout of a node's attempts, shared by the agent, the launcher and health.

    <state_dir>/attempts/<attempt_id>/spec.json      the spec as the portal sent it
    <state_dir>/attempts/<attempt_id>/launcher.pid   the supervising launcher's pid
    <state_dir>/attempts/<attempt_id>/launcher.log   the launcher's own log
    <state_dir>/attempts/<attempt_id>/cancel         present once a cancel was asked for
    <state_dir>/attempts/<attempt_id>/exit.json      how it ended (also sent as an event)
    <state_dir>/cache/                               datasets keyed by SHA-256

Creating the attempt directory is the claim: `mkdir` either creates it or fails, so a message
delivered twice (Celery guarantees at least once) starts one launcher, even with a threaded pool.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import psutil

LAUNCHER_MODULE = "workers.launcher"


def attempts_root(state_dir: Path) -> Path:
    return state_dir / "attempts"


def attempt_dir(state_dir: Path, attempt_id: int) -> Path:
    return attempts_root(state_dir) / str(int(attempt_id))


def cache_dir(state_dir: Path) -> Path:
    return state_dir / "cache"


def write_atomic(path: Path, text: str) -> None:
    """Write a small file so that readers see the old content or the new, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, sort_keys=True, indent=2) + "\n")


def write_pid(directory: Path, pid: int) -> None:
    write_atomic(directory / "launcher.pid", f"{pid}\n")


def read_pid(directory: Path) -> int | None:
    try:
        return int((directory / "launcher.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def launcher_process(directory: Path) -> psutil.Process | None:
    """The live launcher supervising this attempt, or None once it is gone.

    A zombie (exited, not yet reaped by the agent) counts as gone, and so does a recycled pid
    that now belongs to some other program.
    """
    pid = read_pid(directory)
    if pid is None:
        return None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        if LAUNCHER_MODULE not in process.cmdline():
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return process


def running_attempts(state_dir: Path) -> list[int]:
    """Ids of the attempts whose launcher is alive on this node."""
    root = attempts_root(state_dir)
    if not root.is_dir():
        return []
    running = []
    for entry in root.iterdir():
        if entry.name.isdigit() and launcher_process(entry) is not None:
            running.append(int(entry.name))
    return sorted(running)


def request_cancel(directory: Path) -> None:
    """Leave a mark that a launcher checks before it starts torchrun."""
    with contextlib.suppress(FileExistsError):
        (directory / "cancel").touch(exist_ok=False)


def cancel_requested(directory: Path) -> bool:
    return (directory / "cancel").exists()
