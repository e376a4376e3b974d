"""A launcher started before its attempt: a run message need not wait for Python to start.

Starting `python -m workers.launcher` costs an interpreter and its imports (psutil, redis,
msgspec, this package): a few tenths of a second on an idle core, more on a busy node, and all
of it on the path from submit to the first step. So the agent keeps one launcher waiting
(`python -m workers.launcher --standby <state dir>`), started by the sweeper thread while the
node is quiet, and hands it an attempt by writing one JSON line to its stdin
(`{"spec": <spec.json path>, "phases": {<phase>: <ts>}}`); from there it is an ordinary
launcher (it moves its output to the attempt's `launcher.log` and its cwd to the attempt's
directory). A spare whose agent goes away reads end-of-file and exits. If there is no live
spare, the agent starts a launcher the usual way: the spare is an optimisation, never a
dependency.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from workers import attempts, config
from workers.messages import Phase

logger = logging.getLogger(__name__)

# Not within this many seconds of handing one out: the next spare's start-up would compete
# for the CPUs with the attempt that is starting now.
REST_S = 10.0

_lock = threading.Lock()
_spare: subprocess.Popen[bytes] | None = None
_taken_at = float("-inf")


def spare_ensure(state_dir: Path, *, rest_s: float = REST_S) -> None:
    """Start a spare launcher unless one is waiting or one was handed out in the last
    `rest_s` seconds."""
    global _spare
    with _lock:
        if _spare is not None:
            if _spare.poll() is None:
                return
            logger.warning("the spare launcher exited with %s; starting another", _spare.returncode)
            _spare = None
        if time.monotonic() - _taken_at < rest_s:
            return
        state_dir.mkdir(parents=True, exist_ok=True)
        _spare = subprocess.Popen(
            [sys.executable, "-m", attempts.LAUNCHER_MODULE, "--standby", str(state_dir)],
            cwd=state_dir,
            env=config.launch_env(os.environ),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own session, as every launcher: a signal to the agent never reaches it.
            start_new_session=True,
        )


def spare_hand_over(
    *, spec_path: Path, phases: Mapping[Phase, float]
) -> subprocess.Popen[bytes] | None:
    """Give the waiting spare this attempt; None when there is no live spare."""
    global _spare, _taken_at
    with _lock:
        spare, _spare = _spare, None
        _taken_at = time.monotonic()
    if spare is None or spare.stdin is None:
        return None
    order = json.dumps({"spec": str(spec_path), "phases": dict(phases)}).encode() + b"\n"
    try:
        if spare.poll() is not None:
            raise BrokenPipeError("the spare launcher has exited")
        spare.stdin.write(order)
        spare.stdin.close()
    except OSError as exc:
        logger.warning("the spare launcher could not take the attempt (%s)", exc)
        spare.kill()
        spare.wait()
        return None
    return spare


def spare_pid() -> int | None:
    """The waiting spare's pid, if one is waiting."""
    with _lock:
        return _spare.pid if _spare is not None and _spare.poll() is None else None


def spare_discard() -> None:
    """Let the waiting spare exit (the agent is stopping)."""
    global _spare
    with _lock:
        spare, _spare = _spare, None
    if spare is not None and spare.stdin is not None:
        spare.stdin.close()
        try:
            spare.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            spare.kill()
            spare.wait()
