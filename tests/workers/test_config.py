from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from workers import config


def test_it_reads_defaults_when_nothing_is_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    for name in (
        "TRAINYARD_STREAM_PREFIX",
        "TRAINYARD_NODE_ADDRESS",
        "TRAINYARD_NODE_CPU_SLOTS",
        "TRAINYARD_NODE_STATE_DIR",
        "TRAINYARD_HEARTBEAT_S",
        "TRAINYARD_CANCEL_GRACE_S",
        "TRAINYARD_NODE_IFNAME",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    assert config.stream_prefix() == "trainyard"
    assert config.node_address() == "127.0.0.1"
    assert config.node_cpu_slots() >= 1
    assert config.node_state_dir("gpu-01") == tmp_path.resolve() / ".trainyard" / "node-gpu-01"
    assert config.heartbeat_s() == 2.0
    assert config.cancel_grace_s() == 5.0
    assert config.node_ifname() is None
    assert config.rendezvous_timeout_s() == 120.0


def test_it_reads_values_lazily_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TRAINYARD_NODE_CPU_SLOTS", "12")
    monkeypatch.setenv("TRAINYARD_HEARTBEAT_S", "0.5")
    monkeypatch.setenv("TRAINYARD_NODE_IFNAME", "eth0")
    assert config.node_cpu_slots() == 12
    assert config.heartbeat_s() == 0.5
    assert config.node_ifname() == "eth0"


def test_it_reads_the_broker_url_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    secret = tmp_path / "redis-url"
    secret.write_text("redis://:s3cret@redis.internal:6379/0\n")
    monkeypatch.setenv("REDIS_URL_FILE", str(secret))
    assert config.redis_url() == "redis://:s3cret@redis.internal:6379/0"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TRAINYARD_NODE_CPU_SLOTS", "four"),
        ("TRAINYARD_NODE_CPU_SLOTS", "0"),
        ("TRAINYARD_HEARTBEAT_S", "0"),
        ("TRAINYARD_HEARTBEAT_S", "nan"),
        ("TRAINYARD_CANCEL_GRACE_S", "-1"),
        ("TRAINYARD_NODE_IFNAME", "eth0; rm -rf /"),
        ("TRAINYARD_NODE_NAME", "../etc"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("TRAINYARD_STREAM_MAXLEN", "999"),
        ("TRAINYARD_RENDEZVOUS_TIMEOUT_S", "0.5"),
        ("TRAINYARD_NODE_ADDRESS", "10.0.0.1/24"),
    ],
)
def test_it_fails_loudly_on_a_malformed_value(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    readers: dict[str, Callable[[], object]] = {
        "TRAINYARD_NODE_CPU_SLOTS": config.node_cpu_slots,
        "TRAINYARD_HEARTBEAT_S": config.heartbeat_s,
        "TRAINYARD_CANCEL_GRACE_S": config.cancel_grace_s,
        "TRAINYARD_NODE_IFNAME": config.node_ifname,
        "TRAINYARD_NODE_NAME": config.node_name,
        "REDIS_URL": config.redis_url,
        "TRAINYARD_STREAM_MAXLEN": config.stream_maxlen,
        "TRAINYARD_RENDEZVOUS_TIMEOUT_S": config.rendezvous_timeout_s,
        "TRAINYARD_NODE_ADDRESS": config.node_address,
    }
    with pytest.raises(config.ConfigError, match=name):
        readers[name]()


def test_an_unreadable_secret_file_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("REDIS_URL_FILE", "/nonexistent/redis-url")
    with pytest.raises(config.ConfigError, match="REDIS_URL_FILE"):
        config.redis_url()


def test_a_blank_value_counts_as_unset(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TRAINYARD_HEARTBEAT_S", "  ")
    monkeypatch.setenv("TRAINYARD_STREAM_MAXLEN", "")
    assert config.heartbeat_s() == 2.0
    assert config.stream_maxlen() == 100_000


def test_a_bad_broker_url_is_refused_without_echoing_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", "http://:hunter2@redis.internal:6379/0")
    with pytest.raises(config.ConfigError, match="REDIS_URL") as refused:
        config.redis_url()
    assert "hunter2" not in str(refused.value)


def test_a_configured_node_address_wins(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TRAINYARD_NODE_ADDRESS", "gpu-07.cluster.internal")
    monkeypatch.setenv("REDIS_URL", "redis://:pw@127.0.0.1:6379/0")
    assert config.node_address() == "gpu-07.cluster.internal"


def test_the_node_address_is_loopback_only_when_redis_is(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("TRAINYARD_NODE_ADDRESS", raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://:pw@127.0.0.1:6379/0")
    assert config.node_address() == "127.0.0.1"


def test_the_node_address_is_the_source_of_the_route_to_redis(monkeypatch: pytest.MonkeyPatch):
    """Redis on one of this machine's own non-loopback addresses: the route there starts from
    that address, so that is what the node advertises. (A UDP connect sends no packet.)"""
    own = [
        entry.address
        for entries in psutil.net_if_addrs().values()
        for entry in entries
        if entry.family == socket.AF_INET and not entry.address.startswith("127.")
    ]
    if not own:
        pytest.skip("this machine has no non-loopback IPv4 address to route to")
    monkeypatch.delenv("TRAINYARD_NODE_ADDRESS", raising=False)
    monkeypatch.setenv("REDIS_URL", f"redis://:pw@{own[0]}:6379/0")
    assert config.node_address() == own[0]
