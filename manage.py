#!/usr/bin/env python
"""Django's command-line utility for Trainyard."""

import os
import sys


def main() -> None:
    if sys.argv[1:2] == ["up"]:
        # `up` starts embedded PostgreSQL and Redis, which must happen before Django reads
        # its settings: hand over to the dev-servers entry point before Django loads.
        from portal.devservers import main as devservers_main

        sys.exit(devservers_main(sys.argv[1:]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
