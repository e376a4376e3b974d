"""The node agent's tasks: start an attempt's launcher, or cancel it. Both return at once.

The portal sends these by name (`workers.messages.RUN_ATTEMPT_TASK`, `CANCEL_ATTEMPT_TASK`) to
the queue `node.<name>`. Messages arrive at least once, so both are idempotent: creating the
attempt directory is the claim, and a second delivery of the same spec finds it and does
nothing. A directory that holds a *different* spec under the same attempt id (a reset database
reuses ids) is set aside and the new spec starts fresh.

Once an attempt is claimed, its exit is always reported: by its launcher, by `attempt_start`
when starting fails, or by `attempts_sweep` (run every heartbeat interval by `workers.node`)
when the launcher died without reporting (SIGKILL, the OOM killer, a node reboot).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Literal

import psutil

from workers import attempts, config, files, gate, spare, storage
from workers.celery import app
from workers.messages import (
    CANCEL_ATTEMPT_TASK,
    RUN_ATTEMPT_EXPIRES_S,
    RUN_ATTEMPT_TASK,
    AttemptSpec,
    MessageInvalid,
    Phase,
    SpecEnvelope,
    StopRequest,
    exited_entry,
    spec_envelope,
    stream_name,
)
from workers.reporter import StreamReporter

logger = logging.getLogger(__name__)

# The launchers this process started. Holding the Popen objects lets us reap them (no zombies
# on a long-lived node) without Popen's "still running" warning when one is dropped.
_launchers: dict[int, subprocess.Popen[bytes]] = {}
# Attempts an `attempt_start` in this process is working on (claiming, fetching data,
# starting the launcher): the sweep leaves them alone, and a second delivery is a duplicate.
_starting: set[int] = set()
_launchers_lock = threading.Lock()
# Orders the decisions about one attempt directory (claim, set aside, cancel mark, sweep)
# between the worker's threads and the sweeper. Reentrant: a cancel may sweep.
_claim_lock = threading.RLock()

RunOutcome = Literal["started", "duplicate", "refused", "failed", "cancelled"]
CancelOutcome = Literal["signalled", "stopped", "not-running", "marked"]
Refused = Literal["refused"]
_Claim = Literal["claimed", "duplicate", "cancelled", "refused"]

LAUNCHER_DIED = "the launcher died"


def _report_exited(
    spec: AttemptSpec | SpecEnvelope,
    directory: Path | None,
    *,
    cancelled: bool,
    reason: str,
    retryable: bool,
) -> None:
    """Report an exit the launcher could not: the portal still needs to hear it.

    `exit.json` is written only after the report was flushed, so no heartbeat stops listing
    the attempt as claimed before its exit is on its way. `directory` None: the directory is
    not this spec's (a refused delivery), so nothing is written there.
    """
    entry = exited_entry(
        spec=spec,
        exit_code=-1,
        cancelled=cancelled,
        reason=reason,
        retryable=retryable,
        ts=time.time(),
    )
    reporter = StreamReporter(
        redis_url=config.redis_url(), stream=stream_name(config.stream_prefix(), "events")
    )
    reporter.report(entry)
    if not reporter.close(timeout=10.0):
        logger.error("could not report the exit of attempt %d", spec.attempt_id)
    if directory is not None:
        attempts.write_exit(directory, entry)


def _reap_launchers() -> None:
    with _launchers_lock:
        for attempt_id, launcher in list(_launchers.items()):
            if launcher.poll() is not None:
                del _launchers[attempt_id]


def _busy(attempt_id: int) -> bool:
    """Whether this process is starting the attempt or its launcher is still our child."""
    with _launchers_lock:
        if attempt_id in _starting:
            return True
        launcher = _launchers.get(attempt_id)
        return launcher is not None and launcher.poll() is None


def attempt_start(*, spec_json: dict[str, Any], received_at: float | None = None) -> RunOutcome:
    """Claim the attempt, fetch and verify its dataset, and start its launcher detached.

    Every failure after the claim is reported as the attempt's exit: a run message is
    acknowledged when it arrives, so an exception here would otherwise leave the portal
    waiting for an attempt that never runs. `received_at` is when the run message arrived
    (now if not given); the launcher reports it as the attempt's `received` phase.
    """
    received_at = time.time() if received_at is None else received_at
    _reap_launchers()
    name = config.node_name()
    try:
        spec = AttemptSpec.from_json(spec_json)
    except MessageInvalid as exc:
        return _refuse_invalid(spec_json, name, exc)
    if spec.node_name != name:
        logger.error(
            "refusing attempt %d: it is for node %r, not %r", spec.attempt_id, spec.node_name, name
        )
        return "refused"
    with _launchers_lock:
        if spec.attempt_id in _starting:
            logger.info("attempt %d is being started already; ignoring duplicate", spec.attempt_id)
            return "duplicate"
        _starting.add(spec.attempt_id)
    try:
        return _start(spec, config.node_state_dir(name), received_at=received_at)
    finally:
        with _launchers_lock:
            _starting.discard(spec.attempt_id)


def _refuse_invalid(spec_json: Any, name: str, exc: MessageInvalid) -> RunOutcome:
    """Refuse a spec that fails its declaration, before anything is claimed or started.

    The portal built it, so another attempt would carry the same fault: when the envelope still
    says which attempt of which job this node was asked to run, the exit is reported as not
    retryable, with the field at fault, and the portal fails the job with that reason.
    """
    reason = f"the node refused the attempt spec: {exc}"
    envelope = spec_envelope(spec_json)
    if envelope is None or envelope.node_name != name:
        logger.error("refusing an attempt spec that names no attempt of this node: %s", exc)
        return "refused"
    logger.error("refusing attempt %d: %s", envelope.attempt_id, reason)
    _report_exited(envelope, None, cancelled=False, reason=reason, retryable=False)
    return "refused"


def _start(spec: AttemptSpec, state_dir: Path, *, received_at: float) -> RunOutcome:
    directory = attempts.attempt_dir(state_dir, spec.attempt_id)
    directory.parent.mkdir(parents=True, exist_ok=True)
    claimed = False
    with _claim_lock:
        try:
            claim = _claim(spec, state_dir, directory)
            if claim != "claimed":
                return claim
            claimed = True
            files.write_atomic(directory / attempts.SPEC, spec.dumps())
        except Exception as exc:
            # Before the claim the directory is not ours to write an exit into.
            return _start_failed(spec, directory if claimed else None, exc)
    try:
        storage.dataset_fetch(
            uri=spec.dataset.uri,
            sha256=spec.dataset.sha256,
            cache_dir=attempts.cache_dir(state_dir),
        )
    except storage.StorageError as exc:
        logger.error("attempt %d: %s", spec.attempt_id, exc)
        # A missing file or a checksum that does not match fails the same way every time.
        _report_exited(spec, directory, cancelled=False, reason=f"dataset: {exc}", retryable=False)
        return "failed"
    except Exception as exc:
        return _start_failed(spec, directory, exc)
    fetched_at = time.time()
    try:
        _launch(spec, directory, phases={"received": received_at, "dataset_fetched": fetched_at})
    except Exception as exc:
        return _start_failed(spec, directory, exc)
    return "started"


def _start_failed(spec: AttemptSpec, directory: Path | None, exc: Exception) -> RunOutcome:
    logger.exception("attempt %d could not be started", spec.attempt_id)
    _report_exited(
        spec,
        directory,
        cancelled=False,
        reason=f"the node could not start it: {type(exc).__name__}: {exc}",
        retryable=True,
    )
    return "failed"


def _claim(spec: AttemptSpec, state_dir: Path, directory: Path) -> _Claim:
    """Create the attempt directory, or decide what the one already there means."""
    try:
        directory.mkdir()
        return "claimed"
    except FileExistsError:
        pass
    stored = attempts.read_spec_json(directory)
    if stored is None:
        age = attempts.cancel_age_s(directory)
        if age is not None and age < RUN_ATTEMPT_EXPIRES_S:
            # The cancel overtook the run message; answer the run with the exit it is owed.
            files.write_atomic(directory / attempts.SPEC, spec.dumps())
            _report_exited(
                spec, directory, cancelled=True, reason="cancelled before start", retryable=True
            )
            return "cancelled"
    elif stored == json.loads(spec.dumps()):
        logger.info("attempt %d already claimed on this node; ignoring duplicate", spec.attempt_id)
        return "duplicate"
    # The directory belongs to another run under the same id: a database reset restarted the
    # ids, or a crash left it half made. It must not swallow this delivery.
    if attempts.launcher_process(directory) is not None:
        other = f"job {stored.get('job_id')}" if stored else "another run"
        reason = (
            f"attempt id {spec.attempt_id} is in use on {spec.node_name} by {other}, whose "
            f"launcher still runs (was the portal's database reset?); see {directory}"
        )
        logger.error("refusing attempt %d: %s", spec.attempt_id, reason)
        _report_exited(spec, None, cancelled=False, reason=reason, retryable=True)
        return "refused"
    attempts.kill_attempt_processes(directory / attempts.SPEC)
    aside = attempts.set_aside(state_dir, directory)
    logger.warning(
        "attempt %d: the directory held a different spec; moved it to %s", spec.attempt_id, aside
    )
    directory.mkdir()
    return "claimed"


def _launch(spec: AttemptSpec, directory: Path, *, phases: dict[Phase, float]) -> None:
    spec_path = directory / attempts.SPEC
    # The phases only the agent saw travel to the launcher, which reports them with its own on
    # the events stream, in order: the agent keeps no stream connection open per attempt.
    launcher = spare.spare_hand_over(spec_path=spec_path, phases=phases)
    if launcher is None:
        marks = [f"--phase={phase}={ts!r}" for phase, ts in phases.items()]
        with (directory / "launcher.log").open("ab") as log:
            launcher = subprocess.Popen(
                [sys.executable, "-m", attempts.LAUNCHER_MODULE, "--spec", str(spec_path), *marks],
                cwd=directory,
                env=config.launch_env(os.environ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: a signal to the agent (Ctrl-C, a worker restart) never
                # reaches training, and a cancel reaches exactly this attempt.
                start_new_session=True,
            )
    # Registered before `_starting` lets go of the attempt, so the sweep never sees a gap.
    # The launcher writes launcher.pid itself, once its SIGTERM handler is in place: a cancel
    # that finds no pid file relies on the cancel mark, which the launcher checks after that.
    with _launchers_lock:
        _launchers[spec.attempt_id] = launcher
    logger.info("attempt %d: launcher pid %d", spec.attempt_id, launcher.pid)


def attempt_cancel(*, attempt_id: int, stop: StopRequest) -> CancelOutcome:
    """SIGTERM the attempt's launcher, which stops its torchrun gang as `stop` says (the ranks
    get SIGTERM and `stop.grace_s` to checkpoint and exit, then SIGKILL) and reports the exit.

    An attempt claimed here whose launcher is gone is stopped on the spot (see `_sweep_one`).
    """
    _reap_launchers()
    state_dir = config.node_state_dir(config.node_name())
    directory = attempts.attempt_dir(state_dir, attempt_id)
    directory.parent.mkdir(parents=True, exist_ok=True)
    with _claim_lock:
        with contextlib.suppress(FileExistsError):
            directory.mkdir()
        # The mark is the cancel; the signal only makes it prompt. A launcher still starting
        # up (no pid file yet, and no handler: a SIGTERM now would kill it before it can
        # report) sees the mark once it is ready, and a run message that arrives after this
        # cancel answers with a cancelled exit.
        attempts.request_cancel(directory, stop)
        process = attempts.launcher_process(directory)
        if process is None:
            if _sweep_one(state_dir, attempt_id):
                return "stopped"
            return "not-running" if attempts.exit_recorded(directory) else "marked"
    with contextlib.suppress(psutil.NoSuchProcess):
        process.terminate()
        logger.info("attempt %d: sent SIGTERM to launcher pid %d", attempt_id, process.pid)
        return "signalled"
    return "not-running"


def attempts_sweep() -> list[int]:
    """End every attempt claimed here whose launcher is gone; returns their ids.

    Whatever still runs for such an attempt (an orphaned torchrun and its ranks) is killed and
    the exit is reported, so the portal never waits on an attempt nobody supervises.
    """
    _reap_launchers()
    state_dir = config.node_state_dir(config.node_name())
    return [
        attempt_id
        for attempt_id in attempts.claimed_attempts(state_dir)
        if _sweep_one(state_dir, attempt_id)
    ]


def _sweep_one(state_dir: Path, attempt_id: int) -> bool:
    """Stop and report one claimed attempt whose launcher is gone. True if it did."""
    directory = attempts.attempt_dir(state_dir, attempt_id)
    with _claim_lock:
        if _busy(attempt_id) or attempts.launcher_process(directory) is not None:
            return False
        # Read after the launcher: one that recorded its exit and then ended is not a death.
        if not attempts.is_claimed(directory):
            return False
        spec_path = directory / attempts.SPEC
        stored = attempts.read_spec_json(directory)
        try:
            spec = AttemptSpec.from_json(stored or {})
        except MessageInvalid as exc:
            logger.error("attempt %d: unreadable spec (%s); giving it up", attempt_id, exc)
            attempts.write_json(directory / attempts.EXIT, {"reason": f"unreadable spec: {exc}"})
            return False
        killed = attempts.kill_attempt_processes(spec_path)
        cancelled = attempts.cancel_requested(directory)
        logger.warning(
            "attempt %d: its launcher is gone; killed %d leftover process(es)", attempt_id, killed
        )
        reason = f"cancelled ({LAUNCHER_DIED})" if cancelled else LAUNCHER_DIED
        _report_exited(spec, directory, cancelled=cancelled, reason=reason, retryable=True)
        return True


def sweep_forever(stop: threading.Event, interval_s: float) -> None:
    """Run `attempts_sweep` now and every `interval_s` until `stop` is set (a thread's body),
    and keep a spare launcher waiting for the next attempt (`workers.spare`)."""
    while True:
        try:
            attempts_sweep()
        except Exception:
            # A sweeper that dies leaves orphans running; keep going.
            logger.exception("sweeping attempts failed")
        try:
            spare.spare_ensure(config.node_state_dir(config.node_name()))
        except Exception:
            logger.exception("starting a spare launcher failed")
        if stop.wait(interval_s):
            spare.spare_discard()
            return


@app.task(name=RUN_ATTEMPT_TASK, ignore_result=True)
def run_attempt(spec_json: dict[str, Any], signature: str | None = None) -> RunOutcome:
    received_at = time.time()
    # Signed by the portal and within this node's bounds, or nothing starts (workers.gate).
    problem = gate.run_message_problem(spec_json, signature)
    if problem is not None:
        logger.error("refusing a run message: %s", problem)
        return "refused"
    return attempt_start(spec_json=spec_json, received_at=received_at)


@app.task(name=CANCEL_ATTEMPT_TASK, ignore_result=True)
def cancel_attempt(
    attempt_id: int, stop: dict[str, Any], signature: str | None = None
) -> CancelOutcome | Refused:
    problem = gate.cancel_message_problem(attempt_id, stop, signature)
    if problem is not None:
        logger.error("refusing a cancel message: %s", problem)
        return "refused"
    return attempt_cancel(attempt_id=int(attempt_id), stop=StopRequest.from_json(stop))
