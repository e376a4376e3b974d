"""A non-blocking reporter: training and supervision never wait on Redis.

`report()` encodes the entry (`workers.messages.encode`: about a microsecond for a Struct, and no
validation, which is the receiver's job) and appends it to a bounded in-memory buffer; a daemon
thread drains the buffer in batches into one Redis Stream (one pipelined `XADD` per entry,
field `data` holding the JSON, approximately trimmed with `MAXLEN ~`). When Redis is down the
thread retries the batch it holds with exponential backoff while the buffer keeps the newest
entries and counts what it had to drop: the stream's consumers are idempotent on
`(attempt, seq)`, and a bounded memory footprint matters more on a training node than a
complete record of an outage.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import redis

from workers.messages import Entry, encode

logger = logging.getLogger(__name__)


class StreamReporter:
    """Buffers encoded entries and flushes them to one Redis Stream from a background thread."""

    def __init__(
        self,
        *,
        redis_url: str,
        stream: str,
        buffer_size: int = 10_000,
        batch_size: int = 500,
        stream_maxlen: int = 100_000,
        flush_interval_s: float = 0.2,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
    ) -> None:
        if buffer_size < 1 or batch_size < 1:
            raise ValueError("buffer_size and batch_size must be positive")
        self.stream = stream
        self._redis_url = redis_url
        self._batch_size = batch_size
        self._stream_maxlen = stream_maxlen
        self._flush_interval_s = flush_interval_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._buffer: deque[bytes] = deque(maxlen=buffer_size)
        # The lock guards only in-memory bookkeeping; it is never held across a Redis call.
        self._lock = threading.Lock()
        self._dropped = 0
        self._sent = 0
        self._lost = 0
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._deadline: float | None = None
        self._client: redis.Redis | None = None
        self._thread = threading.Thread(target=self._run, name=f"reporter:{stream}", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        """How many entries were discarded because the buffer was full."""
        return self._dropped

    @property
    def sent(self) -> int:
        """How many entries Redis has acknowledged."""
        return self._sent

    @property
    def pending(self) -> int:
        """How many entries wait in the buffer (not counting a batch being retried)."""
        return len(self._buffer)

    def report(self, entry: Entry) -> None:
        """Queue one entry. Never waits on Redis; drops the oldest entry when the buffer is full."""
        data = encode(entry)
        with self._lock:
            if len(self._buffer) == self._buffer.maxlen:
                self._dropped += 1
            self._buffer.append(data)
        if len(self._buffer) >= self._batch_size:
            self._wake.set()

    def close(self, timeout: float = 5.0) -> bool:
        """Flush what can be flushed within `timeout` seconds and stop. True if nothing was lost."""
        if not self._closing.is_set():
            self._deadline = time.monotonic() + timeout
            self._closing.set()
            self._wake.set()
        self._thread.join(timeout + 1.0)
        if self._client is not None and not self._thread.is_alive():
            self._client.close()
        delivered_all = self.pending == 0 and self._dropped == 0 and self._lost == 0
        return delivered_all and not self._thread.is_alive()

    def _take_batch(self) -> list[bytes]:
        with self._lock:
            count = min(self._batch_size, len(self._buffer))
            return [self._buffer.popleft() for _ in range(count)]

    def _connect(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(
                self._redis_url, socket_connect_timeout=2.0, socket_timeout=5.0
            )
        return self._client

    def _send(self, batch: list[bytes]) -> None:
        pipe = self._connect().pipeline(transaction=False)
        for data in batch:
            pipe.xadd(self.stream, {"data": data}, maxlen=self._stream_maxlen, approximate=True)
        pipe.execute()

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _run(self) -> None:
        batch: list[bytes] = []
        backoff = self._backoff_initial_s
        while True:
            if not batch:
                batch = self._take_batch()
            if not batch:
                if self._closing.is_set():
                    return
                self._wake.wait(self._flush_interval_s)
                self._wake.clear()
                continue
            try:
                self._send(batch)
            except redis.RedisError as exc:
                if self._closing.is_set() and self._past_deadline():
                    logger.warning(
                        "giving up on %d entries for %s: %s",
                        len(batch) + self.pending,
                        self.stream,
                        exc,
                    )
                    self._lost += len(batch)
                    return
                logger.debug("redis down for %s (%s); retry in %.1fs", self.stream, exc, backoff)
                wait = backoff
                if self._deadline is not None:
                    wait = max(0.0, min(wait, self._deadline - time.monotonic()))
                if self._closing.is_set():
                    time.sleep(wait)
                else:
                    # Sleep on the closing flag, not _wake: report() sets _wake on every batch.
                    self._closing.wait(wait)
                backoff = min(backoff * 2, self._backoff_max_s)
                continue
            self._sent += len(batch)
            batch = []
            backoff = self._backoff_initial_s
