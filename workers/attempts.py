"""The on-disk layout of a node's attempts, shared by the agent, the launcher and health.

    <state_dir>/attempts/<attempt_id>/spec.json      the spec as the portal sent it
    <state_dir>/attempts/<attempt_id>/launcher.pid   the supervising launcher's pid
    <state_dir>/attempts/<attempt_id>/launcher.log   the launcher's own log
    <state_dir>/attempts/<attempt_id>/cancel         present once a stop was asked for: its
                                                     `StopRequest` (cancel or preempt, grace)
    <state_dir>/attempts/<attempt_id>/exit.json      how it ended (also sent as an event)
    <state_dir>/attempts/stale/<attempt_id>-<when>/  a directory set aside for a different spec
    <state_dir>/cache/                               datasets keyed by SHA-256

Creating the attempt directory is the claim: `mkdir` either creates it or fails, so a message
delivered twice (Celery guarantees at least once) starts one launcher, even with a threaded pool.
An attempt is *claimed* from the moment its spec is on disk until its exit is recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from workers.files import write_atomic
from workers.messages import AttemptExitedEntry, MessageInvalid, StopRequest, encode

LAUNCHER_MODULE = "workers.launcher"
SPEC = "spec.json"
EXIT = "exit.json"
STALE = "stale"


def attempts_root(state_dir: Path) -> Path:
    return state_dir / "attempts"


def attempt_dir(state_dir: Path, attempt_id: int) -> Path:
    return attempts_root(state_dir) / str(int(attempt_id))


def cache_dir(state_dir: Path) -> Path:
    return state_dir / "cache"


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, sort_keys=True, indent=2) + "\n")


def write_exit(directory: Path, entry: AttemptExitedEntry) -> None:
    """Record how the attempt ended, as the `attempt.exited` entry that reported it."""
    write_atomic(directory / EXIT, encode(entry))


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


def _attempt_dirs(state_dir: Path) -> list[Path]:
    root = attempts_root(state_dir)
    if not root.is_dir():
        return []
    return [entry for entry in root.iterdir() if entry.name.isdigit()]


def running_attempts(state_dir: Path) -> list[int]:
    """Ids of the attempts whose launcher is alive on this node."""
    return sorted(
        int(entry.name) for entry in _attempt_dirs(state_dir) if launcher_process(entry) is not None
    )


def exit_recorded(directory: Path) -> bool:
    return (directory / EXIT).exists()


def is_claimed(directory: Path) -> bool:
    """Taken on (its spec is on disk) and not finished (no exit recorded)."""
    return (directory / SPEC).exists() and not exit_recorded(directory)


def claimed_attempts(state_dir: Path) -> list[int]:
    """Ids of the attempts this node has taken on and not finished, launcher alive or not."""
    return sorted(int(entry.name) for entry in _attempt_dirs(state_dir) if is_claimed(entry))


def attempt_processes(spec_path: Path) -> list[psutil.Process]:
    """Live processes started for the attempt whose spec is `spec_path`: its launcher,
    torchrun and the ranks all carry `--spec <spec_path>` on their command line."""
    wanted = str(spec_path)
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            if process.pid == os.getpid() or process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if wanted in (process.info["cmdline"] or []):
                found.append(process)
    return found


def kill_attempt_processes(spec_path: Path, *, timeout_s: float = 2.0) -> int:
    """SIGKILL whatever still runs for an attempt whose launcher is gone; returns how many.

    No grace: with the launcher dead nobody is left to report a graceful stop, and a rank
    only ever replaces its checkpoint atomically."""
    processes = attempt_processes(spec_path)
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(processes, timeout=timeout_s)
    return len(processes)


def set_aside(state_dir: Path, directory: Path) -> Path:
    """Move an attempt directory that belongs to another run under `attempts/stale/`."""
    stale = attempts_root(state_dir) / STALE
    stale.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = stale / f"{directory.name}-{stamp}-{uuid.uuid4().hex[:6]}"
    directory.rename(target)
    return target


def request_cancel(directory: Path, stop: StopRequest) -> None:
    """Leave a mark that a launcher checks before it starts torchrun and while it runs; it
    holds the stop's kind and grace. The first stop asked for stands (its grace is running)."""
    mark = directory / "cancel"
    if not mark.exists():
        write_atomic(mark, json.dumps(stop.to_json(), sort_keys=True))


def read_stop(directory: Path) -> StopRequest | None:
    """The stop the mark asks for, or None without a (readable) mark."""
    try:
        return StopRequest.from_json(json.loads((directory / "cancel").read_text()))
    except (OSError, ValueError, MessageInvalid):
        return None


def cancel_requested(directory: Path) -> bool:
    return (directory / "cancel").exists()


def cancel_age_s(directory: Path) -> float | None:
    """Seconds since the cancel mark was left, or None without one."""
    try:
        return time.time() - (directory / "cancel").stat().st_mtime
    except OSError:
        return None


def read_spec_json(directory: Path) -> dict[str, Any] | None:
    """The stored spec as JSON, or None if there is none (or it cannot be read)."""
    try:
        data = json.loads((directory / SPEC).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
