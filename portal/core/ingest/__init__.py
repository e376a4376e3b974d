"""Telemetry ingest: Redis Streams from the nodes into PostgreSQL, then out to browsers.

`Ingestor` is the loop (`python manage.py ingest` runs one); `batch_apply` is the write of one
batch; `entries` checks what nodes send. See docs/telemetry.md.
"""

from portal.core.ingest.apply import Applied, Batch, batch_apply
from portal.core.ingest.lock import IngestLock
from portal.core.ingest.loop import AnotherIngestRunning, BatchFailed, IngestConfig, Ingestor
from portal.core.ingest.progress import GROUP, health_backlog

__all__ = [
    "GROUP",
    "AnotherIngestRunning",
    "Applied",
    "Batch",
    "BatchFailed",
    "IngestConfig",
    "IngestLock",
    "Ingestor",
    "batch_apply",
    "health_backlog",
]
