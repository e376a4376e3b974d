"""`python manage.py ingest`: run the telemetry ingest until SIGTERM or SIGINT."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from portal.ops.ingest import IngestConfig, Ingestor


class Command(BaseCommand):
    help = (
        "Read the telemetry Redis Streams into PostgreSQL and fan out to browsers. Run as many "
        "ingest processes as the load needs, each with its own --consumer name: they share "
        "the entries of one consumer group, and a restarted one resumes what it had not "
        "acknowledged."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--consumer",
            help="Consumer name in the 'ingest' group (default: the host name). Give each "
            "ingest process on a host its own, and keep it stable across restarts so a "
            "restarted ingest resumes its own pending entries.",
        )
        parser.add_argument("--batch", type=int, default=2000, help="Entries per stream per read.")
        parser.add_argument(
            "--block-ms", type=int, default=1000, help="How long one read waits for entries."
        )
        parser.add_argument(
            "--claim-idle-ms",
            type=int,
            default=60_000,
            help="Take over entries another consumer has held unacknowledged this long (a "
            "dead ingest's).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if min(options["batch"], options["block_ms"], options["claim_idle_ms"]) < 1:
            self.stderr.write("--batch, --block-ms and --claim-idle-ms must be positive")
            raise SystemExit(2)
        ingestor = Ingestor(
            IngestConfig.from_settings(
                consumer=options["consumer"],
                batch=options["batch"],
                block_ms=options["block_ms"],
                claim_idle_ms=options["claim_idle_ms"],
                # Look for a dead consumer's entries about as often as they may go idle.
                claim_every_s=min(30.0, options["claim_idle_ms"] / 1000),
            ),
        )

        def stop(signum: int, frame: FrameType | None) -> None:
            # Finish the batch in hand (commit, then ack) and leave; a second signal is the
            # same request, not a harder one, so a slow commit is never cut in half.
            ingestor.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        ingestor.run()
