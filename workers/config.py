"""The node side's settings, read from the environment when asked and never at import time.

A node has no Django settings module: the agent, the launcher and the trainer each call these
helpers when they need a value, so a test (or the agent, for the processes it starts) can set
the environment first. A malformed value raises `ConfigError` naming the variable, rather than
falling back to a default that would hide a typo on a production node.

The settings both planes read (`redis_url`, `stream_prefix`, `heartbeat_s`, `cancel_grace_s`,
`stream_maxlen`) take the `Env` to read with: the portal's settings pass theirs, which raises
`ImproperlyConfigured`, so one definition and one bound hold on both planes. Every value may
come from `<NAME>_FILE` instead (the broker URL carries Redis credentials); see `workers.env`.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

# ConfigError is re-exported: the node's code catches `config.ConfigError`.
from workers.env import ConfigError as ConfigError
from workers.env import Env

_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}(,[A-Za-z0-9_.:@-]{1,15})*$")


# The node plane reads with this; the portal's settings pass their own `Env` (which raises
# ImproperlyConfigured) to the settings both planes share, so each has one rule and one bound.
NODE_ENV = Env(ConfigError)


def raw_setting(name: str) -> str | None:
    """The stripped value of `name` (or the contents of `<name>_FILE`); None when unset."""
    return NODE_ENV.raw(name)


def redis_url(env: Env = NODE_ENV) -> str:
    value = env.text("REDIS_URL", "redis://127.0.0.1:6379/0")
    if not value.startswith(("redis://", "rediss://", "unix://")):
        # Only the scheme: the rest of the URL may carry the Redis password.
        scheme, separator, _ = value.partition("://")
        given = f", not {scheme}://..." if separator else ""
        env.fail(f"REDIS_URL must be a redis://, rediss:// or unix:// URL{given}")
    return value


def stream_prefix(env: Env = NODE_ENV) -> str:
    value = env.text("TRAINYARD_STREAM_PREFIX", "trainyard")
    if any(ch.isspace() for ch in value):
        env.fail(f"TRAINYARD_STREAM_PREFIX={value!r} must not contain whitespace")
    return value


def heartbeat_s(env: Env = NODE_ENV) -> float:
    """Seconds between a node's heartbeats; the portal counts missed ones against the same."""
    return env.number("TRAINYARD_HEARTBEAT_S", 2.0, above=0.0)


def cancel_grace_s(env: Env = NODE_ENV) -> float:
    """Seconds between SIGTERM and SIGKILL when an attempt is cancelled."""
    return env.number("TRAINYARD_CANCEL_GRACE_S", 5.0, at_least=0.0)


def stream_maxlen(env: Env = NODE_ENV) -> int:
    """Approximate cap on each stream's length, so a node never fills Redis if ingest stops."""
    return env.integer("TRAINYARD_STREAM_MAXLEN", 100_000, minimum=1000)


def log_max_bytes_per_job(env: Env = NODE_ENV) -> int:
    """The most log text (bytes of UTF-8) a job may store; each node's launcher ships its
    share (this divided by the job's nodes) and ingest drops what is past the whole."""
    return env.integer("TRAINYARD_LOG_MAX_BYTES_PER_JOB", 64 * 1024 * 1024, minimum=1024)


def log_max_lines_per_job(env: Env = NODE_ENV) -> int:
    """The most log lines a job may store, shared out and enforced like the bytes."""
    return env.integer("TRAINYARD_LOG_MAX_LINES_PER_JOB", 1_000_000, minimum=10)


def telemetry_dir() -> Path:
    """Where a rank appends its telemetry spool (`workers.spool`); the launcher sets it to the
    attempt's directory and ships what lands there."""
    return Path(NODE_ENV.text("TRAINYARD_TELEMETRY_DIR", "telemetry")).absolute()


def stats_interval_s() -> float:
    """Seconds of steps a rank's `RankStatsEntry` sums up."""
    return NODE_ENV.number("TRAINYARD_RANK_STATS_S", 1.0, above=0.0)


def validate_node_name(name: str, *, source: str = "node name") -> str:
    # The name becomes a queue name and a directory name: keep it to a safe alphabet.
    if not _NODE_NAME.match(name):
        NODE_ENV.fail(
            f"{source} {name!r} must be 1-63 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def node_name() -> str:
    value = NODE_ENV.optional("TRAINYARD_NODE_NAME")
    if value is None:
        NODE_ENV.fail("TRAINYARD_NODE_NAME must be set (or pass --name to the node agent)")
    return validate_node_name(value, source="TRAINYARD_NODE_NAME")


def node_address() -> str:
    """The address the other nodes of a gang reach this node on (its rendezvous and Gloo/NCCL
    traffic): TRAINYARD_NODE_ADDRESS, else the local address of the route to Redis's host.

    Every node reaches Redis, so the interface that routes there is the one a multi-host
    cluster shares; only a node whose Redis is on loopback (one machine) says 127.0.0.1.
    """
    value = NODE_ENV.optional("TRAINYARD_NODE_ADDRESS")
    if value is None:
        return route_address(urlsplit(redis_url()).hostname or "127.0.0.1")
    if any(ch.isspace() for ch in value) or "/" in value:
        NODE_ENV.fail(f"TRAINYARD_NODE_ADDRESS={value!r} is not a host name or address")
    return value


def route_address(host: str) -> str:
    """This machine's source address for traffic to `host`.

    A UDP connect sends nothing: it only asks the kernel which route, and so which local
    address, a packet to `host` would take."""
    try:
        infos = socket.getaddrinfo(host, 6379, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise ConfigError(
            f"cannot resolve Redis's host {host!r} to find this node's address ({exc}); "
            "set TRAINYARD_NODE_ADDRESS"
        ) from exc
    family, _, _, _, target = infos[0]
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(target)
        except OSError as exc:
            raise ConfigError(
                f"no route to Redis's host {host!r} to find this node's address ({exc}); "
                "set TRAINYARD_NODE_ADDRESS"
            ) from exc
        return str(probe.getsockname()[0])


def node_cpu_slots() -> int:
    return NODE_ENV.integer("TRAINYARD_NODE_CPU_SLOTS", os.cpu_count() or 1, minimum=1)


_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def node_pool() -> str:
    """The pool this node belongs to (TRAINYARD_NODE_POOL, default `default`)."""
    value = NODE_ENV.text("TRAINYARD_NODE_POOL", "default")
    if not _LABEL.match(value):
        NODE_ENV.fail(
            f"TRAINYARD_NODE_POOL={value!r} must be 1-63 letters, digits, '_', '.' or '-'"
        )
    return value


def node_labels() -> dict[str, str]:
    """This node's labels, `TRAINYARD_NODE_LABELS=zone=a,disk=nvme`; jobs select on them."""
    labels: dict[str, str] = {}
    for item in NODE_ENV.items("TRAINYARD_NODE_LABELS", []):
        key, sep, label = (part.strip() for part in item.partition("="))
        if not sep or not _LABEL.match(key) or not _LABEL.match(label):
            NODE_ENV.fail(
                f"TRAINYARD_NODE_LABELS item {item!r} must be key=value, each 1-63 letters, "
                "digits, '_', '.' or '-'"
            )
        labels[key] = label
    if len(labels) > 16:
        NODE_ENV.fail("TRAINYARD_NODE_LABELS may carry at most 16 labels")
    return labels


def node_state_dir(name: str) -> Path:
    """Where this node keeps attempt directories and its dataset cache (absolute)."""
    value = NODE_ENV.optional("TRAINYARD_NODE_STATE_DIR")
    path = Path(value) if value else Path(".trainyard") / f"node-{validate_node_name(name)}"
    return path.expanduser().resolve()


def rendezvous_timeout_s(env: Env = NODE_ENV) -> float:
    """How long a multi-node attempt waits for all its nodes to join before it fails."""
    return env.number("TRAINYARD_RENDEZVOUS_TIMEOUT_S", 120.0, at_least=1.0)


def node_ifname() -> str | None:
    """The network interface(s) Gloo and NCCL should use, when the default guess is wrong."""
    value = NODE_ENV.optional("TRAINYARD_NODE_IFNAME")
    if value is not None and not _IFNAME.match(value):
        NODE_ENV.fail(f"TRAINYARD_NODE_IFNAME={value!r} is not an interface name")
    return value


def launch_env(base: Mapping[str, str]) -> dict[str, str]:
    """`base` plus what every process the node starts (launcher, torchrun, ranks) needs: the
    path to this very `workers` package, whatever the child's cwd."""
    env = dict(base)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env
