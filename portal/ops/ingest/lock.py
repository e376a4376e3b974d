"""Ingest runs as one process per database; a PostgreSQL advisory lock makes sure of it.

Why one: browsers page through log lines by `LogLine.id`, which PostgreSQL assigns at insert.
Two ingest processes inserting at once can commit out of id order, and a page whose cursor
already passed the later id would never see the earlier line. One process commits its batches
one after another, so ids become visible in order. (The consumer group still gives crash
recovery: a restarted ingest re-reads what it had not acknowledged.)

The lock is session-level and lives on a connection of its own, outside Django's connection
handling, which closes broken or expired connections (and would drop the lock with them).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

logger = logging.getLogger(__name__)

# Key of the session-level advisory lock only a running ingest holds: an arbitrary constant,
# "ty-ingst" as a 64-bit signed integer, distinct from the scheduler's.
INGEST_LOCK_KEY = int.from_bytes(b"ty-ingst", "big") & 0x7FFF_FFFF_FFFF_FFFF


class IngestLock:
    """The ingest lock, taken with `acquire()` and kept until `release()` or the process ends
    (PostgreSQL drops a session's advisory locks when its connection goes)."""

    def __init__(self, alias: str = DEFAULT_DB_ALIAS) -> None:
        self._alias = alias
        self._db: BaseDatabaseWrapper | None = None
        # Shown in pg_stat_activity, so whoever finds the lock taken learns where.
        self.holder = f"trainyard ingest {socket.gethostname()} pid {os.getpid()}"[:63]

    def _connection(self) -> BaseDatabaseWrapper:
        if self._db is None:
            self._db = connections.create_connection(self._alias)
        return self._db

    def acquire(self) -> bool:
        """Take the lock if no one holds it. Raises DatabaseError if PostgreSQL is unreachable."""
        with self._connection().cursor() as cursor:
            cursor.execute("SELECT set_config('application_name', %s, false)", [self.holder])
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [INGEST_LOCK_KEY])
            row = cursor.fetchone()
        return bool(row and row[0])

    def still_held(self) -> bool:
        """False only when another process holds the lock now.

        The lock lasts as long as its connection. If that broke (PostgreSQL restarted, a
        network cut), take the lock again; if PostgreSQL cannot be reached, say True: nothing
        can be stored now anyway, and the question is asked again on the next pass.
        """
        try:
            with self._connection().cursor() as cursor:
                cursor.execute("SELECT 1")
            return True
        except DatabaseError:
            logger.warning("the ingest lock's connection broke; taking the lock again")
            self._close()
        try:
            return self.acquire()
        except DatabaseError:
            self._close()
            return True

    def held_by(self) -> str:
        """Who holds the lock, as far as PostgreSQL can tell; for the message of a refusal."""
        try:
            with self._connection().cursor() as cursor:
                cursor.execute(
                    "SELECT a.application_name, a.client_addr, a.pid"
                    " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                    " WHERE l.locktype = 'advisory' AND l.granted"
                    " AND l.classid = %s AND l.objid = %s AND l.objsubid = 1",
                    [INGEST_LOCK_KEY >> 32, INGEST_LOCK_KEY & 0xFFFF_FFFF],
                )
                row = cursor.fetchone()
        except DatabaseError:
            return "unknown"
        if row is None:
            return "no one any more"
        name, address, pid = row
        return (
            f"{name or 'an unnamed client'} (PostgreSQL backend {pid}, client {address or 'local'})"
        )

    def release(self) -> None:
        """Let go of the lock (closing its connection ends the session that holds it)."""
        self._close()

    def _close(self) -> None:
        if self._db is not None:
            # A broken connection may fail to close cleanly; it is gone either way.
            with contextlib.suppress(DatabaseError):
                self._db.close()
            self._db = None
