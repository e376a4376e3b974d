"""The node agent's tasks: start an attempt's launcher, or cancel it. Both return at once.

The portal sends these by name (`workers.messages.RUN_ATTEMPT_TASK`, `CANCEL_ATTEMPT_TASK`) to
the queue `node.<name>`. Messages arrive at least once, so both are idempotent: creating the
attempt directory is the claim, and a second delivery finds it and does nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Literal

import psutil

import workers
from workers import attempts, config, storage
from workers.celery import app
from workers.messages import (
    CANCEL_ATTEMPT_TASK,
    RUN_ATTEMPT_TASK,
    AttemptExitedEntry,
    AttemptSpec,
    stream_name,
)
from workers.reporter import StreamReporter

logger = logging.getLogger(__name__)

# The launchers this process started. Holding the Popen objects lets us reap them (no zombies
# on a long-lived node) without Popen's "still running" warning when one is dropped.
_launchers: dict[int, subprocess.Popen[bytes]] = {}
_launchers_lock = threading.Lock()

RunOutcome = Literal["started", "duplicate", "refused", "failed", "cancelled"]
CancelOutcome = Literal["signalled", "not-running", "marked"]


def _report_exited(spec: AttemptSpec, directory: Path, *, cancelled: bool, reason: str) -> None:
    """An exit for an attempt that never got a launcher: the portal still needs to hear it."""
    entry: AttemptExitedEntry = {
        "type": "attempt.exited",
        "job": spec.job_id,
        "attempt": spec.attempt_id,
        "node": spec.node_name,
        "node_rank": spec.placement.node_rank,
        "exit_code": -1,
        "cancelled": cancelled,
        "reason": reason,
        "ts": time.time(),
    }
    reporter = StreamReporter(
        redis_url=config.redis_url(), stream=stream_name(config.stream_prefix(), "events")
    )
    reporter.report(entry)
    attempts.write_json(directory / "exit.json", dict(entry))
    if not reporter.close(timeout=10.0):
        logger.error("could not report the exit of attempt %d", spec.attempt_id)


def _reap_launchers() -> None:
    with _launchers_lock:
        for attempt_id, launcher in list(_launchers.items()):
            if launcher.poll() is not None:
                del _launchers[attempt_id]


def _launcher_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(workers.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def attempt_start(*, spec_json: dict[str, Any]) -> RunOutcome:
    """Claim the attempt, fetch and verify its dataset, and start its launcher detached."""
    _reap_launchers()
    spec = AttemptSpec.from_json(spec_json)
    name = config.node_name()
    if spec.node_name != name:
        logger.error(
            "refusing attempt %d: it is for node %r, not %r", spec.attempt_id, spec.node_name, name
        )
        return "refused"
    state_dir = config.node_state_dir(name)
    directory = attempts.attempt_dir(state_dir, spec.attempt_id)
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        directory.mkdir()
    except FileExistsError:
        spec_file = directory / "spec.json"
        if attempts.cancel_requested(directory) and not spec_file.exists():
            # The cancel overtook the run message; answer the run with the exit it is owed.
            attempts.write_atomic(spec_file, spec.dumps())
            _report_exited(spec, directory, cancelled=True, reason="cancelled before start")
            return "cancelled"
        logger.info("attempt %d already claimed on this node; ignoring duplicate", spec.attempt_id)
        return "duplicate"
    spec_path = directory / "spec.json"
    attempts.write_atomic(spec_path, spec.dumps())
    try:
        storage.dataset_fetch(
            uri=spec.dataset.uri,
            sha256=spec.dataset.sha256,
            cache_dir=attempts.cache_dir(state_dir),
        )
    except storage.StorageError as exc:
        logger.error("attempt %d: %s", spec.attempt_id, exc)
        _report_exited(spec, directory, cancelled=False, reason=f"dataset: {exc}")
        return "failed"
    with (directory / "launcher.log").open("ab") as log:
        launcher = subprocess.Popen(
            [sys.executable, "-m", attempts.LAUNCHER_MODULE, "--spec", str(spec_path)],
            cwd=directory,
            env=_launcher_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: a signal to the agent (Ctrl-C, a worker restart) never reaches
            # training, and a cancel reaches exactly this attempt.
            start_new_session=True,
        )
    # The launcher writes launcher.pid itself, once its SIGTERM handler is in place: a cancel
    # that finds no pid file relies on the cancel mark, which the launcher checks after that.
    with _launchers_lock:
        _launchers[spec.attempt_id] = launcher
    logger.info("attempt %d: launcher pid %d", spec.attempt_id, launcher.pid)
    return "started"


def attempt_cancel(*, attempt_id: int) -> CancelOutcome:
    """SIGTERM the attempt's launcher, which takes its torchrun gang down and reports the exit."""
    _reap_launchers()
    state_dir = config.node_state_dir(config.node_name())
    directory = attempts.attempt_dir(state_dir, attempt_id)
    directory.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        directory.mkdir()
    # The mark is the cancel; the signal only makes it prompt. A launcher still starting up
    # (no pid file yet, and no handler: a SIGTERM now would kill it before it can report)
    # sees the mark once it is ready, and a run message that arrives after this cancel
    # answers with a cancelled exit.
    attempts.request_cancel(directory)
    process = attempts.launcher_process(directory)
    if process is None:
        return "marked" if not (directory / "exit.json").exists() else "not-running"
    with contextlib.suppress(psutil.NoSuchProcess):
        process.terminate()
        logger.info("attempt %d: sent SIGTERM to launcher pid %d", attempt_id, process.pid)
        return "signalled"
    return "not-running"


@app.task(name=RUN_ATTEMPT_TASK, ignore_result=True)
def run_attempt(spec_json: dict[str, Any]) -> RunOutcome:
    return attempt_start(spec_json=spec_json)


@app.task(name=CANCEL_ATTEMPT_TASK, ignore_result=True)
def cancel_attempt(attempt_id: int) -> CancelOutcome:
    return attempt_cancel(attempt_id=int(attempt_id))
