"""A small foreground process supervisor for running a whole Trainyard on one machine.

Each process runs in its own process group, so stopping it also stops whatever it started
(Celery's pool children, torchrun and its ranks). The supervisor restarts nothing: a process
that dies unexpectedly stops the rest, and the supervisor exits non-zero, so a broken machine
is loud instead of half-working. Production runs the same processes as separate services
under a real orchestrator (compose.yaml); this is for development, demos and tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, TextIO

import psutil

from portal.ops.processes import BASE_DIR, ProcessSpec

# Bright, readable foreground colours for the `name | ` prefixes, assigned in order.
_COLOURS = ("36", "33", "32", "35", "34", "91", "96", "93")
_OWN_NAME = "supervisor"


class ProcessExited(RuntimeError):
    """A supervised process exited while it was meant to be running."""

    def __init__(self, name: str, returncode: int) -> None:
        super().__init__(f"{name} exited with status {returncode}")
        self.name = name
        self.returncode = returncode


def write_line(out: TextIO, line: str) -> None:
    """Write and flush one line, and survive a reader that has gone away.

    When our output is a pipe whose reader exited (`| head`, a terminal's Ctrl-C reaching
    `| tee`), supervising and stopping cleanly matter more than the lines: the stream is
    pointed at /dev/null so that later writes, and the interpreter's last flush, succeed.
    """
    try:
        out.write(line + "\n")
        out.flush()
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
            os.close(devnull)
    except ValueError:  # closed stream
        pass


def _exit_status(returncode: int) -> int:
    """A shell-style exit status: a signal N becomes 128 + N, and 0 is still a failure here."""
    if returncode < 0:
        return 128 - returncode
    return returncode or 1


def _live_process_groups() -> set[int]:
    """Process groups that still have a process that is not a zombie."""
    groups: set[int] = set()
    for proc in psutil.process_iter(["status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        with contextlib.suppress(OSError):
            groups.add(os.getpgid(proc.pid))
    return groups


def _escaped_descendants(pgids: set[int]) -> list[psutil.Process]:
    """Descendants of the supervised processes that left their process groups.

    The node agent starts each training launcher in a session of its own, so that restarting
    an agent in production leaves training running; here, stopping everything means them too.
    """
    escaped: list[psutil.Process] = []
    for pgid in pgids:
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(pgid).children(recursive=True):
                with contextlib.suppress(psutil.Error, OSError):
                    if os.getpgid(child.pid) not in pgids:
                        escaped.append(child)
    return escaped


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


class ProcessSupervisor:
    """Start processes, prefix and multiplex their output, and stop them all together.

    Usable in the foreground (`run()`, which handles Ctrl-C and SIGTERM) or as a context
    manager from tests::

        with ProcessSupervisor(specs, log_dir=tmp_path) as sup:
            sup.wait_for_http("http://127.0.0.1:8000/login/")
            ...

    With `log_dir`, each process writes to `<log_dir>/<name>.log` instead of the prefixed
    stream.
    """

    def __init__(
        self,
        specs: Sequence[ProcessSpec],
        *,
        log_dir: Path | None = None,
        cwd: Path = BASE_DIR,
        env: Mapping[str, str] | None = None,
        stop_timeout: float = 10.0,
        out: TextIO | None = None,
        colour: bool | None = None,
    ) -> None:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"process names must be unique: {names}")
        self.specs = list(specs)
        self.log_dir = log_dir
        self.cwd = cwd
        self.env = dict(os.environ if env is None else env)
        self.stop_timeout = stop_timeout
        self.out = out if out is not None else sys.stdout
        if colour is None:
            colour = self.out.isatty() and not os.environ.get("NO_COLOR")
        self.colour = colour
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._width = max([len(_OWN_NAME), *map(len, names)])
        self._colours = {name: _COLOURS[i % len(_COLOURS)] for i, name in enumerate(names)}
        self._lock = threading.Lock()
        self._readers: list[threading.Thread] = []
        self._log_files: list[IO[bytes]] = []
        self._stop_requested = threading.Event()
        self._hurry = threading.Event()
        self._stopped = False

    # Starting

    def start(self) -> None:
        """Start every process in order; if one cannot start, stop those already started."""
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for spec in self.specs:
                self._start_one(spec)
        except BaseException:
            self.stop()
            raise

    def _start_one(self, spec: ProcessSpec) -> None:
        env = {**self.env, **spec.env}
        if self.log_dir is not None:
            log = self.log_path(spec.name).open("ab")
            self._log_files.append(log)
            stdout: int | IO[bytes] = log
        else:
            stdout = subprocess.PIPE
        proc = subprocess.Popen(
            list(spec.argv),
            cwd=self.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            # Its own process group: our signals reach everything it starts, and a terminal's
            # Ctrl-C reaches only us, so we decide the order of shutdown.
            start_new_session=True,
        )
        self.procs[spec.name] = proc
        self.say(f"started {spec.name} (pid {proc.pid}): {' '.join(spec.argv)}")
        if proc.stdout is not None:
            reader = threading.Thread(target=self._pump, args=(spec.name, proc.stdout), daemon=True)
            reader.start()
            self._readers.append(reader)

    def log_path(self, name: str) -> Path:
        if self.log_dir is None:
            raise ValueError("this supervisor writes to a stream, not to log files")
        return self.log_dir / f"{name}.log"

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    # Output

    def _prefix(self, name: str) -> str:
        label = f"{name:<{self._width}} | "
        if not self.colour:
            return label
        colour = self._colours.get(name, "1")
        return f"\033[{colour}m{label}\033[0m"

    def _write(self, name: str, line: str) -> None:
        with self._lock:
            write_line(self.out, f"{self._prefix(name)}{line}")

    def say(self, message: str) -> None:
        """Print one of the supervisor's own lines among the processes' output."""
        self._write(_OWN_NAME, message)

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                self._write(name, raw.decode(errors="replace").rstrip("\r\n"))

    def tail(self, name: str, lines: int = 30) -> str:
        """The last lines of a process's log file (for test failure messages)."""
        try:
            text = self.log_path(name).read_text(errors="replace")
        except (OSError, ValueError):
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # Watching

    def exited(self) -> tuple[str, int] | None:
        """The first process that has exited, with its return code, or None."""
        for name, proc in self.procs.items():
            returncode = proc.poll()
            if returncode is not None:
                return name, returncode
        return None

    def check(self) -> None:
        """Raise ProcessExited if any supervised process has exited."""
        died = self.exited()
        if died is not None:
            name, returncode = died
            raise ProcessExited(name, returncode)

    def wait_for_http(self, url: str, *, timeout: float = 60.0) -> None:
        """Block until `url` answers with any status below 500.

        Raises ProcessExited as soon as a supervised process dies, and TimeoutError (with the
        tail of each log when logging to files) if the deadline passes.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            if _http_answers(url):
                return
            if time.monotonic() > deadline:
                tails = "\n".join(
                    f"--- {name}.log ---\n{self.tail(name)}"
                    for name in self.procs
                    if self.log_dir is not None
                )
                raise TimeoutError(f"{url} did not answer within {timeout:.0f}s\n{tails}")
            time.sleep(0.2)

    # Running in the foreground

    def run(
        self, *, ready_url: str | None = None, on_ready: Callable[[], None] | None = None
    ) -> int:
        """Start everything and supervise until Ctrl-C, SIGTERM or a process dies.

        Returns 0 after a requested stop, or a non-zero status if a process died. Call from
        the main thread (it installs signal handlers).
        """
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        }
        status = 0
        try:
            if not self.procs:
                self.start()
            ready = ready_url is None
            while not self._stop_requested.is_set():
                died = self.exited()
                if died is not None:
                    name, returncode = died
                    self.say(f"{name} exited with status {returncode}; stopping everything")
                    status = _exit_status(returncode)
                    break
                if not ready and ready_url is not None and _http_answers(ready_url):
                    ready = True
                    if on_ready is not None:
                        on_ready()
                self._stop_requested.wait(0.25)
            else:
                self.say("stopping (press Ctrl-C again to kill at once)")
        finally:
            self.stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return status

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stop_requested.is_set():
            self._hurry.set()
        self._stop_requested.set()

    # Stopping

    def stop(self) -> None:
        """SIGTERM every process group, wait up to `stop_timeout`, then SIGKILL what is left."""
        if self._stopped:
            return
        self._stopped = True
        groups = {name: proc.pid for name, proc in self.procs.items()}
        # Taken before anything is signalled, while the parents still know their children.
        escaped = _escaped_descendants(set(groups.values()))
        for pgid in groups.values():
            _signal_group(pgid, signal.SIGTERM)
        for child in escaped:
            with contextlib.suppress(psutil.Error):
                child.terminate()
        deadline = time.monotonic() + self.stop_timeout
        remaining = set(groups)
        while remaining and not self._hurry.is_set() and time.monotonic() < deadline:
            for proc in self.procs.values():
                proc.poll()
            live = _live_process_groups()
            remaining = {name for name, pgid in groups.items() if pgid in live}
            if remaining:
                time.sleep(0.1)
        for name in sorted(remaining):
            self.say(f"{name} did not stop within {self.stop_timeout:.0f}s; killing it")
        if escaped and not self._hurry.is_set():
            _, stragglers = psutil.wait_procs(
                escaped, timeout=max(0.0, deadline - time.monotonic())
            )
            for child in stragglers:
                with contextlib.suppress(psutil.Error):
                    child.kill()
        # Always: a leader that exited may have left children behind in its group.
        for pgid in groups.values():
            _signal_group(pgid, signal.SIGKILL)
        for proc in self.procs.values():
            proc.wait()
        for reader in self._readers:
            reader.join(timeout=2)
        for log in self._log_files:
            log.close()
        if self.procs:
            self.say("all processes stopped")

    def __enter__(self) -> ProcessSupervisor:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


# No proxies: a developer's http_proxy must not swallow requests to our own loopback ports.
_LOOPBACK_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http_answers(url: str) -> bool:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url}")
    try:
        with _LOOPBACK_OPENER.open(url, timeout=2):
            return True
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (urllib.error.URLError, OSError):
        return False
