"""Telemetry ingest: Redis Streams from the nodes into PostgreSQL, then out to browsers.

`Ingestor` is the loop (`python manage.py ingest` runs one; run as many as the load needs, each
with its own `--consumer`); `batch_apply` is the write of one batch; `entries` checks what
nodes send. See docs/telemetry.md.
"""

from portal.ops.ingest.apply import Applied, Batch, batch_apply
from portal.ops.ingest.loop import BatchFailed, IngestConfig, Ingestor

__all__ = [
    "Applied",
    "Batch",
    "BatchFailed",
    "IngestConfig",
    "Ingestor",
    "batch_apply",
]
