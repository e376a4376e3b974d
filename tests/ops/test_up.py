"""`python -m portal.devservers up` (what `bin/dev run` runs): the whole portal, then Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest

from portal.devservers import free_port

PY = sys.executable
ROOT = Path(__file__).resolve().parents[2]


def clean_env(state_dir: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "XDG_RUNTIME_DIR", "TRAINYARD_DEV"}
        and not key.startswith(("TRAINYARD_NODE_", "TRAINYARD_ADMIN_", "DJANGO_SECRET_KEY"))
    }
    env["TRAINYARD_STATE_DIR"] = str(state_dir)
    return env


def running(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def members_of(groups: set[int]) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) in groups and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except OSError:
            continue
    return members


@pytest.mark.e2e
def test_up_serves_the_login_page_and_ctrl_c_stops_every_process(state_dir: Path):
    port = free_port()
    node = f"ops-{uuid.uuid4().hex[:6]}"
    command = [PY, "-m", "portal.devservers", "up", "--port", str(port), "--node-name", node]
    lines: list[str] = []
    with subprocess.Popen(
        command,
        cwd=ROOT,
        env=clean_env(state_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as up:
        assert up.stdout is not None
        stdout = up.stdout

        def collect() -> None:
            for line in stdout:
                lines.append(line.rstrip("\n"))

        reader = threading.Thread(target=collect, daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + 180
            while not any("Trainyard is up" in line for line in lines):
                assert up.poll() is None, "\n".join(lines[-60:])
                assert time.monotonic() < deadline, "\n".join(lines[-60:])
                time.sleep(0.2)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=10) as page:
                login_page = page.read().decode()
            # Long enough for beat's ticks (every 5 s) to have run twice while idle.
            quiet_from = len(lines)
            time.sleep(12)
            idle = lines[quiet_from:]
            assert up.poll() is None, "\n".join(lines[-60:])
            postmaster = int((state_dir / "postgres" / "postmaster.pid").read_text().split()[0])
            redis_server = int((state_dir / "redis" / "redis.pid").read_text())
        finally:
            # What a terminal's Ctrl-C sends to the foreground process.
            up.send_signal(signal.SIGINT)
        returncode = up.wait(timeout=60)
        reader.join(timeout=10)

    output = "\n".join(lines)
    assert returncode == 0, output
    assert 'name="password"' in login_page
    started = {
        match.group(1): int(match.group(2))
        for match in re.finditer(r"started (\w+) \(pid (\d+)\)", output)
    }
    assert set(started) == {"web", "control", "beat", "ingest", "node", "predict"}
    password = (state_dir / "admin-password").read_text().strip()
    assert f"log in as 'admin' with password '{password}'" in output
    assert f"node {node!r} registered" in output
    # Idle, the terminal stays quiet: no line per periodic tick.
    ticks = ("Sending due task", "Task portal.", "succeeded in")
    assert not [line for line in idle if any(tick in line for tick in ticks)], idle
    # Generated secrets, private, and the Redis password never printed.
    for name in ("secret-key", "node-secret", "redis/password", "admin-password"):
        assert (state_dir / name).stat().st_mode & 0o777 == 0o600, name
    assert (state_dir / "redis" / "password").read_text().strip() not in output

    assert members_of(set(started.values())) == []
    assert not running(postmaster)
    assert not running(redis_server)


def test_manage_py_up_hands_over_to_the_devservers_command(tmp_path: Path):
    # With the port taken, `up` stops before starting anything; the message proves that
    # `manage.py up` handed over to `python -m portal.devservers up` with the same options,
    # before Django could refuse to load without a secret key.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = clean_env(tmp_path / "state")
        env.pop("TRAINYARD_DEV", None)
        result = subprocess.run(
            [PY, "manage.py", "up", "--port", str(port), "--no-node"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1, result.stderr
    assert f"port {port} on 127.0.0.1 is in use" in result.stdout
