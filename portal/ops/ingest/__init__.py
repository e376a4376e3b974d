"""Telemetry ingest: Redis Streams from the nodes into PostgreSQL, then out to browsers.

`Ingestor` is the loop (`python manage.py ingest` runs one); `batch_apply` is the write of one
batch; `entries` checks what nodes send. See docs/telemetry.md.
"""

from portal.ops.ingest.apply import Applied, Batch, batch_apply
from portal.ops.ingest.lock import IngestLock
from portal.ops.ingest.loop import AnotherIngestRunning, BatchFailed, IngestConfig, Ingestor

__all__ = [
    "AnotherIngestRunning",
    "Applied",
    "Batch",
    "BatchFailed",
    "IngestConfig",
    "IngestLock",
    "Ingestor",
    "batch_apply",
]
