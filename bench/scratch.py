"""The benchmarks' scratch database: created on the server that DATABASE_URL names, migrated,
and dropped at the end, so a run never reads or writes the data of whatever else shares that
server, and leaves nothing behind.

A script in bench/ imports it as `from scratch import scratch_database` (bench/ is sys.path[0]
when a script runs as `python bench/<name>.py`) and does its work inside:

    with scratch_database(f"bench_dashboard_{os.getpid()}"):
        ...  # Django is set up on the new database, migrated

Django reads DATABASE_URL once, when it loads its settings, so a process gets one scratch
database. Child processes started inside the block inherit DATABASE_URL pointing at it; a child
that uses Django calls `django_setup()` itself.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
"""The checkout's root, for `manage.py` and `tests.factories` (not an installed package)."""


def with_database(url: str, name: str) -> str:
    """`url` with its database replaced by `name`: the same server, user and options."""
    return urlsplit(url)._replace(path=f"/{name}").geturl()


def django_setup() -> None:
    """Set Django up (`portal.settings` unless DJANGO_SETTINGS_MODULE names another), with the
    checkout's root on sys.path so that `tests.factories` imports. It reads DATABASE_URL now."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()


@contextmanager
def scratch_database(name: str, *, migrate: bool = True) -> Iterator[str]:
    """Create the database `name` on the server DATABASE_URL names, point DATABASE_URL at it
    (for this process and the children it starts), set Django up, migrate unless `migrate` is
    false, and yield the database's URL.

    However the block ends, Django's connections are closed and the database is dropped
    (WITH (FORCE), so a child process that still holds a connection does not stop it), and
    DATABASE_URL is the server's again. Exits with how to run the script when DATABASE_URL is
    unset."""
    server = os.environ.get("DATABASE_URL")
    if not server:
        script = Path(sys.argv[0]).name
        raise SystemExit(
            f"DATABASE_URL must be set: python -m portal.devservers run -- python bench/{script}"
        )
    from django.apps import apps

    if apps.ready:
        # Its settings hold the database it was set up on; a second one would go unused.
        raise RuntimeError("Django is already set up: one scratch database per process")
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(server, name)
    os.environ["DATABASE_URL"] = url
    try:
        django_setup()
        if migrate:
            from django.core.management import call_command

            call_command("migrate", verbosity=0)
        yield url
    finally:
        if apps.ready:
            from django.db import connections

            connections.close_all()
        with psycopg.connect(server, autocommit=True) as admin:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            admin.execute(drop.format(sql.Identifier(name)))
        os.environ["DATABASE_URL"] = server
