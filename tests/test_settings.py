"""The portal's settings read the environment with the node plane's reader and its bounds.

Each test runs `portal/settings.py` afresh (as Django would at start) with the environment it
sets, so a bad value is seen exactly as a deployment would see it.
"""

from __future__ import annotations

import runpy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from workers import config

SETTINGS = Path(__file__).resolve().parents[1] / "portal" / "settings.py"


def load_settings() -> dict[str, Any]:
    return runpy.run_path(str(SETTINGS), run_name="portal.settings_under_test")


# (variable, value): refused by the node's reader and by the portal's settings alike.
REFUSED_BY_BOTH: list[tuple[str, str, Callable[[], object]]] = [
    ("TRAINYARD_HEARTBEAT_S", "0", config.heartbeat_s),
    ("TRAINYARD_HEARTBEAT_S", "-2", config.heartbeat_s),
    ("TRAINYARD_HEARTBEAT_S", "nan", config.heartbeat_s),
    ("TRAINYARD_HEARTBEAT_S", "soon", config.heartbeat_s),
    ("TRAINYARD_CANCEL_GRACE_S", "-0.5", config.cancel_grace_s),
    ("TRAINYARD_CANCEL_GRACE_S", "inf", config.cancel_grace_s),
    ("TRAINYARD_STREAM_PREFIX", "my prefix", config.stream_prefix),
    ("TRAINYARD_STREAM_MAXLEN", "999", config.stream_maxlen),
    ("TRAINYARD_STREAM_MAXLEN", "lots", config.stream_maxlen),
    ("REDIS_URL", "http://127.0.0.1:6379/0", config.redis_url),
]

# (variable, value, setting, parsed): accepted by both, as the same value.
ACCEPTED_BY_BOTH: list[tuple[str, str, str, Callable[[], object], object]] = [
    ("TRAINYARD_HEARTBEAT_S", "0.25", "TRAINYARD_HEARTBEAT_S", config.heartbeat_s, 0.25),
    ("TRAINYARD_CANCEL_GRACE_S", "0", "TRAINYARD_CANCEL_GRACE_S", config.cancel_grace_s, 0.0),
    ("TRAINYARD_STREAM_PREFIX", "ty-a", "TRAINYARD_STREAM_PREFIX", config.stream_prefix, "ty-a"),
    ("TRAINYARD_STREAM_MAXLEN", "1000", "TRAINYARD_STREAM_MAXLEN", config.stream_maxlen, 1000),
    (
        "REDIS_URL",
        "rediss://r.example:6380/1",
        "REDIS_URL",
        config.redis_url,
        "rediss://r.example:6380/1",
    ),
]


@pytest.mark.parametrize(("name", "value", "node_reader"), REFUSED_BY_BOTH)
def test_both_planes_refuse_the_same_bad_value(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, node_reader: Callable[[], object]
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(config.ConfigError, match=name):
        node_reader()
    with pytest.raises(ImproperlyConfigured, match=name):
        load_settings()


@pytest.mark.parametrize(("name", "value", "setting", "node_reader", "parsed"), ACCEPTED_BY_BOTH)
def test_both_planes_read_an_accepted_value_alike(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
    setting: str,
    node_reader: Callable[[], object],
    parsed: object,
) -> None:
    monkeypatch.setenv(name, value)

    assert node_reader() == parsed
    assert load_settings()[setting] == parsed


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DJANGO_DEBUG", "maybe"),
        ("DATABASE_CONN_MAX_AGE", "-1"),
        ("DATABASE_CONN_MAX_AGE", "forever"),
        ("TRAINYARD_MISSED_HEARTBEATS", "0"),
        ("TRAINYARD_SCHEDULER_TICK_S", "0"),
        ("TRAINYARD_REAP_TICK_S", "-5"),
        ("TRAINYARD_ATTEMPT_START_GRACE_S", "half a minute"),
        ("DATABASE_URL", "mysql://user:pw@db.example/trainyard"),
        ("DATABASE_URL", "nonsense://db.example/trainyard"),
        ("DJANGO_SECRET_KEY_FILE", "/nonexistent/secret-key"),
        ("TRAINYARD_STALL_MIN_S", "0"),
        ("TRAINYARD_IDLE_POLICY", "5:1800:10"),
        ("TRAINYARD_IDLE_POLICY", "5:1800:0:keep"),
        ("TRAINYARD_IDLE_POOLS", "batch=5:60:2:halt"),
    ],
)
def test_a_bad_portal_setting_is_improperly_configured_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ImproperlyConfigured, match=name):
        load_settings()


def test_outside_development_the_secret_key_must_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TRAINYARD_DEV", "DJANGO_DEBUG", "DJANGO_SECRET_KEY", "DJANGO_SECRET_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY"):
        load_settings()


def test_a_secret_comes_from_its_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "key").write_text("from-a-mounted-secret\n")
    monkeypatch.setenv("DJANGO_SECRET_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.setenv("DJANGO_SECRET_KEY", "from-the-environment")

    assert load_settings()["SECRET_KEY"] == "from-a-mounted-secret"


def test_a_tcp_database_url_fills_every_connection_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://ty:p%40ss@db.example:5433/trainyard")
    monkeypatch.setenv("DATABASE_CONN_MAX_AGE", "60")
    monkeypatch.setenv("DATABASE_TEST_NAME", "trainyard_ci")

    database = load_settings()["DATABASES"]["default"]

    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["HOST"], database["PORT"], database["NAME"]) == (
        "db.example",
        5433,
        "trainyard",
    )
    assert (database["USER"], database["PASSWORD"]) == ("ty", "p@ss")
    assert database["CONN_MAX_AGE"] == 60
    assert database["CONN_HEALTH_CHECKS"] is True
    assert database["TEST"] == {"NAME": "trainyard_ci"}


def test_the_embedded_servers_socket_url_puts_the_socket_in_host(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The shape pgserver's get_uri() gives `portal.devservers` (libpq's ?host= for a socket
    # directory); the directory's case must survive, as a state dir's random name has both.
    socket_dir = tmp_path / "Run-Ab"
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres:@/trainyard?host={socket_dir}")

    database = load_settings()["DATABASES"]["default"]

    assert database["HOST"] == str(socket_dir)
    assert "host" not in database.get("OPTIONS", {})
    assert (database["NAME"], database["USER"]) == ("trainyard", "postgres")


@pytest.mark.django_db
def test_this_test_run_reaches_its_database_through_those_settings() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
