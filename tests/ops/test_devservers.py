"""`python -m portal.devservers run`: real embedded PostgreSQL and Redis, started and stopped."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from urllib.parse import urlsplit

import psutil

PY = sys.executable

# Runs inside `devservers run`: connects to both servers, writes or reads a marker, and
# reports what it saw and which processes serve it.
CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from urllib.parse import urlsplit
    import psutil, psycopg, redis

    mode = sys.argv[1]
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        database = conn.execute("SELECT current_database()").fetchone()[0]
        postmaster = psutil.Process(conn.execute("SELECT pg_backend_pid()").fetchone()[0]).ppid()
        if mode == "write":
            conn.execute("CREATE TABLE marker (value text)")
            conn.execute("INSERT INTO marker VALUES ('kept')")
        marker = conn.execute("SELECT value FROM marker").fetchone()[0]
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    if mode == "write":
        client.set("marker", "kept")
    print(json.dumps({
        "database": database,
        "postmaster": postmaster,
        "redis_port": urlsplit(os.environ["REDIS_URL"]).port,
        "redis_marker": client.get("marker").decode(),
        "marker": marker,
        "state_dir": os.environ["TRAINYARD_STATE_DIR"],
        "dev": os.environ["TRAINYARD_DEV"],
    }))
    client.close()
    if mode == "write":
        # Hold the servers until the test says so, to try a second run on the same state dir.
        Path(sys.argv[2]).touch()
        while not Path(sys.argv[3]).exists():
            time.sleep(0.05)
    sys.exit(7)
    """
)


def devservers_env(state_dir: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "XDG_RUNTIME_DIR", "TRAINYARD_DEV"}
    }
    env["TRAINYARD_STATE_DIR"] = str(state_dir)
    return env


def gone(pid: int) -> bool:
    """Not running (a zombie waiting for init to reap it has stopped too)."""
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def port_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def report(stdout: str) -> dict[str, object]:
    data: dict[str, object] = json.loads(stdout.strip().splitlines()[-1])
    return data


def test_run_starts_postgres_and_redis_keeps_their_data_and_stops_them(
    tmp_path: Path, state_dir: Path
):
    env = devservers_env(state_dir)
    started, release = tmp_path / "started", tmp_path / "release"
    run = [PY, "-m", "portal.devservers", "run", "--", PY, "-c", CHILD]

    with subprocess.Popen(
        [*run, "write", str(started), str(release)], env=env, stdout=subprocess.PIPE, text=True
    ) as first:
        deadline = time.monotonic() + 120
        while not started.exists():
            assert first.poll() is None, "the first run ended early"
            assert time.monotonic() < deadline, "the first run never connected"
            time.sleep(0.1)
        # One run per state dir: a second would share the Redis AOF file.
        second = subprocess.run([*run, "read"], env=env, capture_output=True, text=True, timeout=60)
        release.touch()
        out, _ = first.communicate(timeout=120)
    assert second.returncode != 0
    assert "another `up` or `run` is using" in second.stderr

    first_seen = report(out)
    assert first.returncode == 7
    assert first_seen["database"] == "trainyard"
    assert first_seen["dev"] == "1"
    assert first_seen["state_dir"] == str(state_dir)
    assert gone(int(str(first_seen["postmaster"])))
    assert port_closed(int(str(first_seen["redis_port"])))

    again = subprocess.run([*run, "read"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 7, again.stderr
    seen = report(again.stdout)
    assert seen["marker"] == "kept"
    assert seen["redis_marker"] == "kept"
    assert gone(int(str(seen["postmaster"])))
    assert port_closed(int(str(seen["redis_port"])))


def test_run_uses_the_servers_the_environment_names_and_starts_none(tmp_path: Path):
    env = devservers_env(tmp_path / "state")
    env["DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/none"
    env["REDIS_URL"] = "redis://127.0.0.1:1/0"
    result = subprocess.run(
        [
            PY,
            "-m",
            "portal.devservers",
            "run",
            "--",
            PY,
            "-c",
            "import os; print(os.environ['DATABASE_URL'], os.environ['REDIS_URL'])",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [env["DATABASE_URL"], env["REDIS_URL"]]
    assert not (tmp_path / "state" / "postgres").exists()
    assert not (tmp_path / "state" / "redis").exists()


def test_run_passes_on_the_commands_exit_status_and_needs_a_command(tmp_path: Path):
    env = devservers_env(tmp_path / "state")
    env["DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/none"
    env["REDIS_URL"] = "redis://127.0.0.1:1/0"
    failing = subprocess.run(
        [PY, "-m", "portal.devservers", "run", "--", PY, "-c", "raise SystemExit(3)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    empty = subprocess.run(
        [PY, "-m", "portal.devservers", "run", "--"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failing.returncode == 3
    assert empty.returncode == 2
    assert "nothing to run" in empty.stderr


def test_embedded_redis_requires_its_generated_password(tmp_path: Path):
    import redis

    from portal.devservers import start_redis

    url, stop = start_redis(tmp_path / "redis")
    try:
        password_file = tmp_path / "redis" / "password"
        assert password_file.stat().st_mode & 0o777 == 0o600
        assert password_file.read_text().strip() in url
        assert redis.Redis.from_url(url).ping()
        anonymous = f"redis://127.0.0.1:{urlsplit(url).port}/0"
        try:
            redis.Redis.from_url(anonymous).ping()
        except redis.AuthenticationError:
            pass
        else:
            raise AssertionError("Redis answered without a password")
        # Not in the process list either.
        cmdlines = [" ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])]
        assert not [c for c in cmdlines if password_file.read_text().strip() in c]
    finally:
        stop()
    again, stop = start_redis(tmp_path / "redis")
    stop()
    assert again.split("@")[0] == url.split("@")[0], "the password is kept across runs"


def test_the_admin_password_is_generated_once_and_reported_as_new_only_then(
    tmp_path: Path, monkeypatch
):
    from portal.devservers import admin_credentials

    monkeypatch.delenv("TRAINYARD_ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("TRAINYARD_ADMIN_PASSWORD_FILE", raising=False)
    user, password, where, first = admin_credentials(tmp_path)
    assert (user, where, first) == ("admin", tmp_path / "admin-password", True)
    assert (tmp_path / "admin-password").stat().st_mode & 0o777 == 0o600
    assert admin_credentials(tmp_path) == ("admin", password, where, False)


def test_a_local_run_generates_its_secrets_once_per_state_dir(tmp_path: Path, monkeypatch):
    from portal.devservers import _export_generated_secrets

    for name in ("DJANGO_SECRET_KEY", "TRAINYARD_NODE_SECRET"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)
    _export_generated_secrets(tmp_path)
    key = (tmp_path / "secret-key").read_text()
    for name, file in (
        ("DJANGO_SECRET_KEY", "secret-key"),
        ("TRAINYARD_NODE_SECRET", "node-secret"),
    ):
        assert os.environ[f"{name}_FILE"] == str(tmp_path / file)
        assert (tmp_path / file).stat().st_mode & 0o777 == 0o600
        assert len((tmp_path / file).read_text().strip()) >= 50
    monkeypatch.delenv("DJANGO_SECRET_KEY_FILE")
    _export_generated_secrets(tmp_path)
    assert (tmp_path / "secret-key").read_text() == key
