"""Supervise one attempt's torchrun on this node: `python -m workers.launcher --spec spec.json`.

The agent starts the launcher in its own session and returns, so training never runs inside a
Celery task. The launcher in turn starts torchrun in a session of its own, streams every line
torchrun and the ranks write as `LogEntry`s (torchrun tags each rank's lines with its global
and local rank, `RANK_PREFIX`), ships the ranks' telemetry spools (`workers.shipper`), reports
`attempt.started` and `attempt.exited`, and on SIGTERM (a stop: a cancel or a preemption,
`workers.messages.StopRequest`) takes the whole gang down: SIGTERM to every rank (torchrun puts
each in a session of its own; they checkpoint at their next step boundary and exit), then to
torchrun, then SIGKILL to whatever is still there after the stop's grace period.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ipaddress
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Literal

import psutil

from workers import attempts, config
from workers.health import GpuProbe, NvmlProbe
from workers.messages import (
    NODE_PHASES,
    AttemptSpec,
    AttemptStartedEntry,
    LogEntry,
    Phase,
    StopRequest,
    encode,
    exited_entry,
    phase_entry,
    stream_name,
)
from workers.reporter import StreamReporter
from workers.shipper import Shipper
from workers.spool import LOGS_FILE, Appender
from workers.train import ERROR_MARK, STOPPED_MARK

logger = logging.getLogger("workers.launcher")

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
MAX_LINE = 4096
MAX_REASON = 2000
# What torchrun's traceback names when join_timeout passed without the whole gang.
RENDEZVOUS_TIMEOUT = "RendezvousTimeoutError"
# torchrun's prefix on each rank's lines (TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE): global rank
# and local rank. Lines without it are torchrun's own.
RANK_PREFIX_TEMPLATE = "[r${rank}.${local_rank}]:"
RANK_PREFIX = re.compile(r"^\[r(\d+)\.(\d+)\]:")


@dataclass(frozen=True)
class LaunchSettings:
    """The node settings a launcher needs, read once from the environment."""

    redis_url: str
    stream_prefix: str
    state_dir: Path
    cancel_grace_s: float
    ifname: str | None
    stream_maxlen: int
    address: str
    rendezvous_timeout_s: float
    log_max_bytes: int
    log_max_lines: int
    stats_interval_s: float

    @classmethod
    def from_env(cls, spec: AttemptSpec) -> LaunchSettings:
        return cls(
            redis_url=config.redis_url(),
            stream_prefix=config.stream_prefix(),
            state_dir=config.node_state_dir(spec.node_name),
            cancel_grace_s=config.cancel_grace_s(),
            ifname=config.node_ifname(),
            stream_maxlen=config.stream_maxlen(),
            address=config.node_address(),
            rendezvous_timeout_s=config.rendezvous_timeout_s(),
            # Each node ships its share of the job's cap; ingest enforces the whole.
            log_max_bytes=config.log_max_bytes_per_job() // spec.placement.nnodes,
            log_max_lines=config.log_max_lines_per_job() // spec.placement.nnodes,
            stats_interval_s=config.stats_interval_s(),
        )


def torchrun_command(spec: AttemptSpec, spec_path: Path, settings: LaunchSettings) -> list[str]:
    placement = spec.placement
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        str(placement.nnodes),
        "--node-rank",
        str(placement.node_rank),
        "--nproc-per-node",
        str(placement.nproc_per_node),
        "--max-restarts",
        "0",
        # Each rank's stdout and stderr to a file of its own, tailed back to torchrun's with
        # RANK_PREFIX_TEMPLATE in front of every line: how the launcher tells ranks apart.
        "--tee",
        "3",
        "--log-dir",
        str(telemetry_dir(spec, settings) / "ranks"),
    ]
    if placement.nnodes == 1:
        # A free port on localhost: two single-node attempts on one node never collide.
        command.append("--standalone")
    else:
        # A c10d rendezvous whose store the first node hosts at the address it advertises;
        # the others connect to it. The attempt id keeps two attempts' gangs apart, and
        # join_timeout bounds the wait for a node that never comes (see RENDEZVOUS_TIMEOUT).
        # --local-addr is what rank 0 hands the ranks as MASTER_ADDR: never a hostname that
        # may resolve to loopback on the other hosts.
        command += ["--rdzv-backend", "c10d"]
        command += ["--rdzv-endpoint", f"{placement.master_addr}:{placement.master_port}"]
        command += ["--rdzv-id", f"attempt-{spec.attempt_id}"]
        is_host = "1" if placement.node_rank == 0 else "0"
        timeout = f"{settings.rendezvous_timeout_s:g}"
        command += [
            "--rdzv-conf",
            f"is_host={is_host},join_timeout={timeout},read_timeout={timeout}",
        ]
        command += ["--local-addr", settings.address]
    return [*command, "-m", "workers.train", "--spec", str(spec_path)]


def telemetry_dir(spec: AttemptSpec, settings: LaunchSettings) -> Path:
    """The attempt's spool directory: the ranks append to it, the shipper reads it."""
    return attempts.attempt_dir(settings.state_dir, spec.attempt_id) / "telemetry"


def torchrun_env(
    spec: AttemptSpec, settings: LaunchSettings, base: Mapping[str, str]
) -> dict[str, str]:
    env = config.launch_env(base)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    env["REDIS_URL"] = settings.redis_url
    env["TRAINYARD_STREAM_PREFIX"] = settings.stream_prefix
    env["TRAINYARD_NODE_NAME"] = spec.node_name
    env["TRAINYARD_NODE_STATE_DIR"] = str(settings.state_dir)
    env["TRAINYARD_TELEMETRY_DIR"] = str(telemetry_dir(spec, settings))
    env["TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE"] = RANK_PREFIX_TEMPLATE
    if spec.placement.gpu_indices:
        # Each rank then sees exactly its share's GPUs as cuda:0..n-1, and LOCAL_RANK picks one.
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, spec.placement.gpu_indices))
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # NVML's order, the one the indices name
    if settings.ifname:
        env["GLOO_SOCKET_IFNAME"] = settings.ifname
        env["NCCL_SOCKET_IFNAME"] = settings.ifname
    elif spec.placement.device == "cpu" and (
        spec.placement.nnodes == 1 or _is_loopback(spec.placement.master_addr)
    ):
        # Gloo otherwise resolves the hostname, which on many hosts is not a usable address.
        # A gang whose first node is on loopback has every node on this machine.
        env["GLOO_SOCKET_IFNAME"] = "lo"
    return env


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


class LogPump:
    """Turns every line torchrun writes into a `LogEntry` in the logs spool, with one seq
    across both pipes, up to this node's share of the job's caps; past them it writes one
    `notice` line and stores no more (but still reads every line for the failure reason)."""

    def __init__(
        self, *, spec: AttemptSpec, spool: Appender, max_bytes: int, max_lines: int
    ) -> None:
        self._spec = spec
        self._spool = spool
        self._max_bytes = max_bytes
        self._max_lines = max_lines
        self._bytes = 0
        self.truncated = False
        self._lock = threading.Lock()
        self._seq = 0
        self.stderr_tail: deque[str] = deque(maxlen=20)
        self.error_lines: deque[str] = deque(maxlen=5)
        self._rendezvous_timeout = False
        # What the reporting rank said when it stopped on SIGTERM (its checkpoint), or "".
        self.stop_note = ""
        self._threads: list[threading.Thread] = []

    @property
    def lines(self) -> int:
        return self._seq

    def _write(
        self,
        stream: Literal["stdout", "stderr", "notice"],
        line: str,
        rank: int | None,
        local_rank: int | None,
    ) -> None:
        entry = LogEntry(
            job=self._spec.job_id,
            attempt=self._spec.attempt_id,
            node_rank=self._spec.placement.node_rank,
            rank=rank,
            local_rank=local_rank,
            seq=self._seq,
            stream=stream,
            line=line,
            ts=time.time(),
        )
        self._spool.write(encode(entry) + b"\n")
        self._seq += 1

    def emit(self, stream: Literal["stdout", "stderr"], line: str) -> None:
        line = line[:MAX_LINE]
        rank = local_rank = None
        tagged = RANK_PREFIX.match(line)
        if tagged:
            rank, local_rank = int(tagged[1]), int(tagged[2])
            line = line[tagged.end() :]
        with self._lock:
            # Written under the lock so the spool holds entries in seq order.
            if not self.truncated:
                self._bytes += len(line) + 1
                if self._bytes > self._max_bytes or self._seq >= self._max_lines:
                    self.truncated = True
                    node = self._spec.placement.node_rank
                    self._write(
                        "notice",
                        f"log truncated: node {node} reached its share of the job's log cap "
                        f"({self._max_bytes} bytes, {self._max_lines} lines; "
                        "TRAINYARD_LOG_MAX_BYTES_PER_JOB, TRAINYARD_LOG_MAX_LINES_PER_JOB); "
                        "later output of this node is not stored",
                        None,
                        None,
                    )
                else:
                    self._write(stream, line, rank, local_rank)
            if stream == "stderr":
                self.stderr_tail.append(line)
                if RENDEZVOUS_TIMEOUT in line:
                    self._rendezvous_timeout = True
                if ERROR_MARK in line:
                    self.error_lines.append(line)
            if STOPPED_MARK in line:
                self.stop_note = line.split(STOPPED_MARK, 1)[1].strip()[:MAX_REASON]

    def start(self, pipe: IO[bytes], stream: Literal["stdout", "stderr"]) -> None:
        def pump() -> None:
            with pipe:
                for raw in iter(pipe.readline, b""):
                    self.emit(stream, raw.decode("utf-8", errors="replace").rstrip("\r\n"))

        thread = threading.Thread(target=pump, name=f"pump:{stream}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def saw_rendezvous_timeout(self) -> bool:
        """Whether torchrun gave up waiting for the other nodes of the gang."""
        return self._rendezvous_timeout

    @property
    def saw_trainer_error(self) -> bool:
        """Whether a rank printed the trainer's ERROR_MARK line."""
        return bool(self.error_lines)

    def failure_reason(self) -> str:
        lines = self.error_lines or self.stderr_tail
        return "\n".join(lines)[-MAX_REASON:]


def stop_reason(stop: StopRequest | None, note: str) -> str:
    """The exit reason of a stopped share: `cancelled`, or `preempted by job #12: checkpointed
    attempt-7/step-40.pt (epoch 2, step 40) 0.3s after SIGTERM` with the trainer's own note."""
    if stop is None or stop.kind == "cancel":
        return "cancelled" if stop is not None or not note else f"stopped: {note}"
    words = " ".join(part for part in ("preempted", stop.detail) if part)
    return f"{words}: {note}" if note else words


def cpu_affinity(cpu_indices: Sequence[int]) -> set[int] | None:
    """The CPUs a share's slots map to: slot i is the i-th CPU this node may use (wrapping
    round when it offers more slots than CPUs). None: no slots given, or no affinity here."""
    if not cpu_indices or not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    return {allowed[index % len(allowed)] for index in cpu_indices}


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux), so a rank whose torchrun died is still ours to kill.

    torchrun starts every rank in a session of its own; if torchrun dies first (a cancel during
    its start-up, say), the ranks would be re-parented to init and escape every process-tree
    walk. As a child subreaper the launcher inherits them instead.
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


def _live_descendants() -> list[psutil.Process]:
    """Every process below this one that has not exited."""
    live = []
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            if process.status() != psutil.STATUS_ZOMBIE:
                live.append(process)
    return live


def _signal_each(processes: Sequence[psutil.Process], sig: signal.Signals) -> None:
    for process in processes:
        # psutil refuses to signal a pid that was recycled since we listed it.
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            process.send_signal(sig)


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    # Until we reap torchrun its pid (and so its process group id) cannot be reused.
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


def _reap_adopted(torchrun_pid: int) -> None:
    for child in psutil.Process().children():
        if child.pid != torchrun_pid:
            with contextlib.suppress(psutil.Error):
                child.wait(timeout=0)


def terminate_gang(proc: subprocess.Popen[bytes], grace_s: float) -> int:
    """SIGTERM every rank (every process below the launcher but torchrun), and torchrun's
    group once no rank is left; SIGKILL what outlives `grace_s`. Returns torchrun's exit
    status.

    The ranks are told first and torchrun only after them: torchrun forwards a SIGTERM to its
    ranks and SIGKILLs them after its own shutdown timeout, which must not cut short the grace
    a rank has to checkpoint (`workers.train` stops at its next step boundary). A torchrun
    with no rank yet (still in its rendezvous) is told at once. The family is listed again
    every round, so a rank forked during the stop, or adopted by the launcher when its
    torchrun died, is signalled too.
    """
    deadline = time.monotonic() + grace_s
    signalled: set[int] = set()
    while True:
        family = _live_descendants()
        ranks = [p for p in family if p.pid != proc.pid]
        fresh = [p for p in ranks if p.pid not in signalled]
        _signal_each(fresh, signal.SIGTERM)
        signalled.update(p.pid for p in fresh)
        if not ranks and proc.pid not in signalled:
            _signal_group(proc, signal.SIGTERM)
            signalled.add(proc.pid)
        if (proc.poll() is not None and not family) or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    survivors = _live_descendants()
    if survivors:
        logger.warning("%d process(es) outlived %.1fs grace; killing", len(survivors), grace_s)
        _signal_group(proc, signal.SIGKILL)
        _signal_each(survivors, signal.SIGKILL)
        # torchrun is reaped by Popen below; psutil must not steal its exit status.
        psutil.wait_procs([p for p in survivors if p.pid != proc.pid], timeout=2.0)
    exit_code = proc.wait()
    _reap_adopted(proc.pid)
    return exit_code


class Supervisor:
    """Runs torchrun for one attempt and reports how it went."""

    def __init__(
        self,
        *,
        spec: AttemptSpec,
        spec_path: Path,
        settings: LaunchSettings,
        events: StreamReporter,
        cancel: threading.Event | None = None,
        gpus: GpuProbe | None = None,
        phases: Mapping[Phase, float] | None = None,
    ) -> None:
        self.spec = spec
        # Phases the agent saw before this process existed (the run message, the dataset).
        self._phases = dict(phases or {})
        self.spec_path = spec_path
        self.settings = settings
        self.directory = attempts.attempt_dir(settings.state_dir, spec.attempt_id)
        self.telemetry = telemetry_dir(spec, settings)
        self.telemetry.mkdir(parents=True, exist_ok=True)
        self._events = events
        self._logs = Appender(self.telemetry / LOGS_FILE)
        self._pump = LogPump(
            spec=spec,
            spool=self._logs,
            max_bytes=settings.log_max_bytes,
            max_lines=settings.log_max_lines,
        )
        self.shipper = Shipper(
            spec=spec,
            directory=self.telemetry,
            redis_url=settings.redis_url,
            prefix=settings.stream_prefix,
            stream_maxlen=settings.stream_maxlen,
            gpus=gpus,
            stats_interval_s=settings.stats_interval_s,
        )
        self._telemetry_done = False
        self._cancel = cancel or threading.Event()

    def cancel(self) -> None:
        """Ask the run to stop. Safe to call from a signal handler."""
        self._cancel.set()

    def _cancelled(self) -> bool:
        return self._cancel.is_set() or attempts.cancel_requested(self.directory)

    def _stop(self) -> StopRequest:
        """The stop the agent asked for; a bare SIGTERM (no mark yet) is a plain cancel."""
        return attempts.read_stop(self.directory) or StopRequest(
            kind="cancel", grace_s=self.settings.cancel_grace_s
        )

    def _report_started(self) -> None:
        entry = AttemptStartedEntry(
            job=self.spec.job_id,
            attempt=self.spec.attempt_id,
            node=self.spec.node_name,
            node_rank=self.spec.placement.node_rank,
            ts=time.time(),
        )
        self._events.report(entry)

    def _report_exited(
        self, *, exit_code: int, cancelled: bool, reason: str, retryable: bool = True
    ) -> None:
        self._finish_telemetry()
        entry = exited_entry(
            spec=self.spec,
            exit_code=exit_code,
            cancelled=cancelled,
            reason=reason,
            retryable=retryable,
            ts=time.time(),
        )
        self._events.report(entry)
        with contextlib.suppress(OSError):
            attempts.write_exit(self.directory, entry)
        logger.info("attempt %d exited %d (cancelled=%s)", entry.attempt, exit_code, cancelled)

    def run(self) -> int:
        """Supervise torchrun to the end; returns its exit status (-1 if it never started).

        Every line and point is shipped (or given up on after a minute of Redis being away)
        before the exit is reported, so the portal stores a job's last points before the event
        that finishes it."""
        try:
            return self._run()
        finally:
            self._finish_telemetry()

    def _finish_telemetry(self) -> None:
        if self._telemetry_done:
            return
        self._telemetry_done = True
        self._logs.close()
        if not self.shipper.close(timeout=60.0):
            logger.error("telemetry of attempt %d not fully shipped", self.spec.attempt_id)

    def _run(self) -> int:
        self.directory.mkdir(parents=True, exist_ok=True)
        # Only now, with the SIGTERM handler installed (see main), may the agent signal us.
        attempts.write_pid(self.directory, os.getpid())
        if self._cancelled():
            self._report_exited(exit_code=-1, cancelled=True, reason="cancelled before start")
            return -1
        command = torchrun_command(self.spec, self.spec_path, self.settings)
        cpus = cpu_affinity(self.spec.placement.cpu_indices)
        if cpus is not None:
            # torchrun and every rank inherit it: two CPU jobs never share a core.
            os.sched_setaffinity(0, cpus)
            logger.info("attempt %d pinned to CPUs %s", self.spec.attempt_id, sorted(cpus))
        try:
            proc = subprocess.Popen(
                command,
                env=torchrun_env(self.spec, self.settings, os.environ),
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            self._report_exited(
                exit_code=-1, cancelled=False, reason=f"cannot start torchrun: {exc}"
            )
            return -1
        started_at = time.time()
        logger.info("torchrun pid %d: %s", proc.pid, " ".join(command))
        for phase, ts in [*self._phases.items(), ("torchrun_started", started_at)]:
            self._events.report(phase_entry(spec=self.spec, phase=phase, ts=ts))
        self._report_started()
        assert proc.stdout is not None and proc.stderr is not None
        self._pump.start(proc.stdout, "stdout")
        self._pump.start(proc.stderr, "stderr")
        stop: StopRequest | None = None
        while True:
            try:
                exit_code = proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            if self._cancelled():
                stop = self._stop()
                logger.info(
                    "%s requested; stopping torchrun pid %d (grace %gs)",
                    stop.kind,
                    proc.pid,
                    stop.grace_s,
                )
                exit_code = terminate_gang(proc, stop.grace_s)
                break
        # The gang stopped because a rank was told to (on another node of the gang, say).
        cancelled = stop is not None or bool(self._pump.stop_note and exit_code != 0)
        if not cancelled and _live_descendants():
            # torchrun is gone but something it started is not: no rank outlives its attempt.
            logger.warning("processes outlived torchrun; terminating them")
            terminate_gang(proc, self.settings.cancel_grace_s)
        # A rank's orphaned grandchild could hold a pipe open; never wait on it for long.
        self._pump.join(timeout=5.0)
        retryable = True
        if cancelled:
            reason = stop_reason(stop, self._pump.stop_note)
        elif exit_code != 0:
            reason = self._pump.failure_reason() or f"torchrun exited with status {exit_code}"
            if self._pump.saw_rendezvous_timeout:
                placement = self.spec.placement
                reason = (
                    f"the gang's {placement.nnodes} nodes did not all join the rendezvous at "
                    f"{placement.master_addr}:{placement.master_port} within "
                    f"{self.settings.rendezvous_timeout_s:g}s (is every node up, and is that "
                    f"port reachable from each?)\n{reason}"
                )[:MAX_REASON]
            # The trainer marks the errors another attempt would repeat (bad data or spec,
            # a diverging loss); anything else (a crash, a lost peer) may well pass.
            retryable = not self._pump.saw_trainer_error
        else:
            reason = ""
        self._report_exited(
            exit_code=exit_code, cancelled=cancelled, reason=reason, retryable=retryable
        )
        return exit_code


def _phase_mark(text: str) -> tuple[Phase, float]:
    name, _, ts = text.partition("=")
    for phase in NODE_PHASES:
        if phase == name:
            try:
                return phase, float(ts)
            except ValueError:
                break
    raise argparse.ArgumentTypeError(f"not PHASE=SECONDS: {text!r}")


def _await_attempt() -> tuple[Path, dict[Phase, float]] | None:
    """A spare launcher's wait: one JSON line on stdin names the attempt (`workers.spare`).
    Then this process becomes that attempt's launcher: its output goes to the attempt's
    `launcher.log`, as a launcher started for it would write, and it works in its directory."""
    line = sys.stdin.buffer.readline()
    if not line.strip():
        return None
    order = json.loads(line)
    spec_path = Path(order["spec"]).resolve()
    phases = dict(_phase_mark(f"{name}={ts!r}") for name, ts in order["phases"].items())
    directory = spec_path.parent
    with (directory / "launcher.log").open("ab") as log:
        os.dup2(log.fileno(), sys.stdout.fileno())
        os.dup2(log.fileno(), sys.stderr.fileno())
    os.chdir(directory)
    return spec_path, phases


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.launcher")
    start = parser.add_mutually_exclusive_group(required=True)
    start.add_argument("--spec", type=Path, help="path to the attempt's spec.json")
    start.add_argument(
        "--standby",
        type=Path,
        metavar="STATE_DIR",
        help="start now and wait on stdin for the attempt (workers.spare)",
    )
    parser.add_argument(
        "--phase",
        action="append",
        default=[],
        type=_phase_mark,
        help="PHASE=TS: a phase the agent saw (received, dataset_fetched), reported with ours",
    )
    args = parser.parse_args(argv)
    # Before anything slow: a cancel that arrives while we start up must not kill us silently.
    cancel = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        cancel.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    become_subreaper()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    phases: dict[Phase, float] = dict(args.phase)
    if args.standby is not None:
        order = _await_attempt()
        if order is None:
            return 0  # the agent went away before it had an attempt for us
        spec_path, phases = order
    else:
        spec_path = args.spec.resolve()
    spec = AttemptSpec.from_json(json.loads(spec_path.read_text()))
    settings = LaunchSettings.from_env(spec)
    events = StreamReporter(
        redis_url=settings.redis_url,
        stream=stream_name(settings.stream_prefix, "events"),
        stream_maxlen=settings.stream_maxlen,
    )
    supervisor = Supervisor(
        spec=spec,
        spec_path=spec_path,
        settings=settings,
        events=events,
        cancel=cancel,
        gpus=NvmlProbe() if spec.placement.device == "cuda" else None,
        phases=phases,
    )
    try:
        exit_code = supervisor.run()
    finally:
        # The exit report is what the portal waits for: give it longer than the log lines.
        if not events.close(timeout=30.0):
            logger.error("the attempt.exited event for %s may not have reached Redis", spec_path)
    return 0 if exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
