"""`python manage.py ingest`: run the telemetry ingest until SIGTERM or SIGINT."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.ops.ingest import AnotherIngestRunning, IngestConfig, IngestLock, Ingestor


class Command(BaseCommand):
    help = (
        "Read the telemetry Redis Streams into PostgreSQL and fan out to browsers. Run ONE "
        "ingest process per database: log ids must become visible in order for the browsers' "
        "log cursor, so a second ingest refuses to start (a PostgreSQL advisory lock). The "
        "consumer group still lets a restarted ingest resume what it had not acknowledged."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--consumer",
            help="Consumer name in the 'ingest' group (default: the host name). Keep it stable "
            "across restarts so a restarted ingest resumes its own pending entries.",
        )
        parser.add_argument("--batch", type=int, default=500, help="Entries per stream per read.")
        parser.add_argument(
            "--block-ms", type=int, default=1000, help="How long one read waits for entries."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch"] < 1 or options["block_ms"] < 1:
            self.stderr.write("--batch and --block-ms must be positive")
            raise SystemExit(2)
        ingestor = Ingestor(
            IngestConfig.from_settings(
                consumer=options["consumer"], batch=options["batch"], block_ms=options["block_ms"]
            ),
            lock=IngestLock(),
        )

        def stop(signum: int, frame: FrameType | None) -> None:
            # Finish the batch in hand (commit, then ack) and leave; a second signal is the
            # same request, not a harder one, so a slow commit is never cut in half.
            ingestor.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            ingestor.run()
        except AnotherIngestRunning as exc:
            raise CommandError(str(exc)) from exc
