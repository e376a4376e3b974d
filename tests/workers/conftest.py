"""Node-plane fixtures: real Redis from REDIS_URL, a stream prefix and a node per test.

Nothing here needs Django; the node plane never touches the database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from workers.messages import StreamKind, stream_name


@dataclass(frozen=True)
class Node:
    name: str
    prefix: str
    state_dir: Path

    def stream(self, kind: StreamKind) -> str:
        return stream_name(self.prefix, kind)


@pytest.fixture
def redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def node(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_client: redis.Redis
) -> Iterator[Node]:
    """A node name, its state directory and a stream prefix no other test (or helper) uses."""
    token = uuid.uuid4().hex[:10]
    base = os.environ.get("TRAINYARD_STREAM_PREFIX", "nodeplane")
    this = Node(name=f"n-{token}", prefix=f"{base}-{token}", state_dir=tmp_path / "node")
    monkeypatch.setenv("TRAINYARD_STREAM_PREFIX", this.prefix)
    monkeypatch.setenv("TRAINYARD_NODE_NAME", this.name)
    monkeypatch.setenv("TRAINYARD_NODE_STATE_DIR", str(this.state_dir))
    monkeypatch.setenv("TRAINYARD_CANCEL_GRACE_S", "3")
    # A node reads datasets and writes checkpoints only under these (workers.bounds).
    monkeypatch.setenv("TRAINYARD_STORAGE_ROOT", str(tmp_path))
    monkeypatch.setenv("TRAINYARD_CHECKPOINT_ROOT", str(tmp_path))
    yield this
    keys = list(redis_client.scan_iter(match=f"{this.prefix}:*"))
    keys += list(redis_client.scan_iter(match=f"*node.{this.name}*"))
    if keys:
        redis_client.delete(*keys)
