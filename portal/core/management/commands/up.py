"""`python manage.py up`: the same as `python -m portal.devservers up`.

Django has already read its settings by the time a management command runs, so embedded
PostgreSQL and Redis could no longer be started in time for them. This command therefore
replaces itself with `python -m portal.devservers up`, which starts them first.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from portal.devservers import BASE_DIR, add_up_arguments


class Command(BaseCommand):
    help = (
        "Run all of Trainyard on this machine (web, control worker, beat, ingest, node agent), "
        "with embedded PostgreSQL and Redis when DATABASE_URL / REDIS_URL are unset."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        add_up_arguments(parser.add_argument)

    def handle(self, *args: Any, **options: Any) -> None:
        argv = [
            sys.executable,
            "-m",
            "portal.devservers",
            "up",
            "--host",
            options["host"],
            "--port",
            str(options["port"]),
            "--node-name",
            options["node_name"],
        ]
        if options["no_node"]:
            argv.append("--no-node")
        sys.stdout.flush()
        sys.stderr.flush()
        os.chdir(BASE_DIR)
        os.execv(sys.executable, argv)  # noqa: S606 (our own interpreter, fixed arguments)
