"""How many metric points per second ingest writes into PostgreSQL: batched vs one by one.

The real path is `portal.ops.ingest.Ingestor.run_once()`: XREADGROUP up to 500 entries, parse
and check them, `batch_apply` in one transaction (one fencing query, one multi-row INSERT ...
ON CONFLICT DO NOTHING), XACK after the commit, one channel-layer event per job. The naive path
reads the same entries the same way but stores each with `MetricPoint.objects.create` in its
own transaction (and skips the fencing query and the fan-out, which only flatters it).

Everything runs against a scratch database created on the running PostgreSQL (migrated, then
dropped at the end) and fresh stream names on the running Redis. Entries are written to the
stream before each timed window, so the timings are ingest alone. Variants alternate in
rounds, order rotating, and the numbers are medians over rounds.

A child process then ingests 50,000 points through the batched path alone and reports its peak
RSS (`getrusage`), so nothing the naive rounds allocated counts against it.

    . /work/devstate/env.sh && python bench/ingest_throughput.py
    python -m portal.devservers run -- python bench/ingest_throughput.py   # embedded servers
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import psutil
import psycopg
import redis
from psycopg import sql

# bench/ is the script's directory, so sys.path[0] when run as `python bench/<name>.py`.
from tables import table

from workers.messages import MetricEntry, encode

if TYPE_CHECKING:
    from portal.jobs.models import Attempt
    from portal.ops.ingest import Ingestor

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("metrics", "logs", "events", "health")
_users = itertools.count(1)
WARM_UP = 500


# ---- setup ------------------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    return urlsplit(url)._replace(path=f"/{name}").geturl()


def django_setup() -> None:
    # tests.factories is not an installed package; the checkout root makes it importable.
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()


def make_attempt() -> Attempt:
    """A running job's first (so current) attempt, through the shared factories."""
    from portal.jobs.models import Job
    from tests.factories import make_attempt, make_job, make_user

    # The factories' name counter starts again in every process; the pid keeps names apart.
    job = make_job(make_user(f"bench{os.getpid()}_{next(_users)}"), state=Job.State.RUNNING)
    return make_attempt(job)


def write_entries(client: redis.Redis, stream: str, attempt: Attempt, seqs: range) -> None:
    """XADD one metric entry per seq, the way the trainer's reporter writes them (untimed)."""
    now = time.time()
    for chunk in range(seqs.start, seqs.stop, 1000):
        pipe = client.pipeline(transaction=False)
        for seq in range(chunk, min(chunk + 1000, seqs.stop)):
            entry = MetricEntry(
                job=attempt.job_id,
                attempt=attempt.pk,
                seq=seq,
                split="train" if seq % 10 else "val",
                step=seq,
                epoch=1 + seq // 100,
                loss=1.0 / (seq + 1),
                accuracy=0.5 + (seq % 50) / 100,
                ts=now + seq / 1000,
            )
            pipe.xadd(stream, {"data": encode(entry)})
        pipe.execute()


def make_ingestor(redis_url: str, prefix: str) -> Ingestor:
    from portal.ops.ingest import IngestConfig, Ingestor

    ingestor = Ingestor(IngestConfig(redis_url=redis_url, prefix=prefix, consumer="bench"))
    ingestor.ensure_groups()
    return ingestor


def drop_streams(client: redis.Redis, prefixes: list[str]) -> None:
    names = [f"{prefix}:{kind}" for prefix in prefixes for kind in (*KINDS, "dead")]
    client.delete(*names)


# ---- the two ways to store points --------------------------------------------------------------


def batched(ingestor: Ingestor, count: int) -> None:
    """The real path: run_once() until every entry is stored and acknowledged."""
    acked = 0
    while acked < count:
        acked += ingestor.run_once()


def naive(client: redis.Redis, stream: str, count: int) -> None:
    """Same reads and acks; one INSERT and one COMMIT per point."""
    from django.db import transaction

    from portal.jobs.models import MetricPoint
    from portal.lib.streams import GROUP
    from portal.ops.ingest.entries import entry_parse

    stored = 0
    while stored < count:
        response = client.xreadgroup(GROUP, "bench", {stream: ">"}, count=500, block=1000)
        for _name, messages in cast(list[Any], response or []):
            for _entry_id, fields in messages:
                e = cast(MetricEntry, entry_parse("metrics", fields))
                with transaction.atomic():
                    MetricPoint.objects.create(
                        job_id=e.job,
                        attempt_id=e.attempt,
                        seq=e.seq,
                        split=e.split,
                        step=e.step,
                        epoch=e.epoch,
                        loss=e.loss,
                        accuracy=e.accuracy,
                        reported_at=datetime.fromtimestamp(e.ts, tz=UTC),
                    )
                stored += 1
            client.xack(stream, GROUP, *[entry_id for entry_id, _fields in messages])


# ---- the benchmark ----------------------------------------------------------------------------


class Variant:
    """One way of ingesting, with its own attempt, streams and seq counter."""

    def __init__(
        self,
        name: str,
        prefix: str,
        points: int,
        run: Callable[[int], None],
        *,
        conn_max_age: int | None = 0,
    ) -> None:
        self.name = name
        self.prefix = prefix
        self.points = points
        self.run = run
        self.conn_max_age = conn_max_age
        self.attempt = make_attempt()
        self.next_seq = 0
        self.rates: list[float] = []

    def round(self, client: redis.Redis) -> None:
        from django.db import connections

        seqs = range(self.next_seq, self.next_seq + self.points)
        write_entries(client, f"{self.prefix}:metrics", self.attempt, seqs)
        self.next_seq = seqs.stop
        # CONN_MAX_AGE is read when a connection opens; start each round on a fresh one.
        connections.close_all()
        connections["default"].settings_dict["CONN_MAX_AGE"] = self.conn_max_age
        begin = time.perf_counter()
        self.run(self.points)
        self.rates.append(self.points / (time.perf_counter() - begin))


def stored(attempt: Attempt) -> int:
    from portal.jobs.models import MetricPoint

    return MetricPoint.objects.filter(attempt=attempt).count()


def maxrss_mib() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_child(prefix: str, points: int) -> None:
    """Ingest `points` waiting in `prefix`'s metrics stream through the batched path; print one
    JSON line. The parent wrote the entries, so this process's peak is ingest's alone."""
    django_setup()
    ingestor = make_ingestor(os.environ["REDIS_URL"], prefix)
    # The first batch warms up imports, the first queries and the channel layer.
    batched(ingestor, WARM_UP)
    baseline = maxrss_mib()
    begin = time.perf_counter()
    batched(ingestor, points)
    elapsed = time.perf_counter() - begin
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "baseline_mib": baseline,
                "peak_mib": maxrss_mib(),
                "rss_mib": psutil.Process().memory_info().rss / 2**20,
            },
        )
    )


def peak_rss(client: redis.Redis, points: int) -> list[str]:
    prefix = f"bench-ingest-{os.getpid()}-rss"
    attempt = make_attempt()
    write_entries(client, f"{prefix}:metrics", attempt, range(WARM_UP + points))
    try:
        child = subprocess.run(
            [sys.executable, __file__, "--rss-child", prefix, str(points)],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
    finally:
        drop_streams(client, [prefix])
    result = json.loads(child.stdout.strip().splitlines()[-1])
    if stored(attempt) != WARM_UP + points:
        raise RuntimeError(f"stored {stored(attempt)} of {WARM_UP + points} points")
    return [
        f"{points:,}",
        f"{result['seconds']:.2f} s",
        f"{points / result['seconds']:,.0f}",
        f"{result['baseline_mib']:.1f} MiB",
        f"{result['peak_mib']:.1f} MiB",
        f"{result['peak_mib'] - result['baseline_mib']:+.1f} MiB",
        f"{result['rss_mib']:.1f} MiB",
    ]


def bench(args: argparse.Namespace, redis_url: str) -> None:
    from django.core.management import call_command

    client = redis.Redis.from_url(redis_url)
    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    print(f"  migrated the scratch database in {time.perf_counter() - started:.1f} s")

    base = f"bench-ingest-{os.getpid()}"
    real = make_ingestor(redis_url, f"{base}-batched")
    kept = make_ingestor(redis_url, f"{base}-kept")
    naive_stream = f"{base}-naive:metrics"
    from portal.lib.streams import GROUP

    client.xgroup_create(naive_stream, GROUP, id="0", mkstream=True)
    variants = [
        Variant(
            "batched (Ingestor.run_once)",
            f"{base}-batched",
            args.batched_points,
            lambda count: batched(real, count),
        ),
        Variant(
            "batched, connection kept (CONN_MAX_AGE=60)",
            f"{base}-kept",
            args.batched_points,
            lambda count: batched(kept, count),
            conn_max_age=60,
        ),
        Variant(
            "naive (create + commit per point)",
            f"{base}-naive",
            args.naive_points,
            lambda count: naive(client, naive_stream, count),
        ),
    ]
    try:
        for round_ in range(args.rounds):
            shift = round_ % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                variant.round(client)
        from django.db import connections

        connections.close_all()
        connections["default"].settings_dict["CONN_MAX_AGE"] = 0
        for variant in variants:
            count = stored(variant.attempt)
            if count != variant.next_seq:
                raise RuntimeError(f"{variant.name}: stored {count} of {variant.next_seq} points")
    finally:
        drop_streams(client, [variant.prefix for variant in variants])

    naive_rate = statistics.median(variants[-1].rates)
    headers = ["variant", "points/round", "points/s (median)", "min..max", "ratio to naive"]
    rows = [
        [
            variant.name,
            f"{variant.points:,}",
            f"{statistics.median(variant.rates):,.0f}",
            f"{min(variant.rates):,.0f}..{max(variant.rates):,.0f}",
            f"{statistics.median(variant.rates) / naive_rate:.1f}x",
        ]
        for variant in variants
    ]
    print(table(headers, rows))


def main() -> None:
    parser = argparse.ArgumentParser(description="ingest throughput: batched vs per point")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batched-points", type=int, default=5000, help="per round")
    parser.add_argument("--naive-points", type=int, default=1000, help="per round")
    parser.add_argument("--rss-points", type=int, default=50_000)
    parser.add_argument("--rss-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child is not None:
        rss_child(args.rss_child[0], int(args.rss_child[1]))
        return

    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    if not database_url or not redis_url:
        raise SystemExit("DATABASE_URL and REDIS_URL must be set: source /work/devstate/env.sh")
    scratch = f"bench_ingest_{os.getpid()}"
    print(f"ingest_throughput: {os.cpu_count()} CPUs, scratch database {scratch}")
    print(
        f"{args.rounds} rounds; per round {args.batched_points:,} points per batched variant, "
        f"{args.naive_points:,} naive"
    )
    started = time.perf_counter()
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    try:
        os.environ["DATABASE_URL"] = with_database(database_url, scratch)
        django_setup()
        bench(args, redis_url)

        print(f"\npeak RSS of the batched path, {args.rss_points:,} points, in a fresh process")
        rows = [peak_rss(redis.Redis.from_url(redis_url), args.rss_points)]
        headers = [
            "points",
            "time",
            "points/s",
            "max RSS before",
            "max RSS after",
            "growth",
            "RSS at end",
        ]
        print(table(headers, rows))
    finally:
        from django.apps import apps

        if apps.ready:
            from django.db import connections

            connections.close_all()
        with psycopg.connect(database_url, autocommit=True) as admin:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            admin.execute(drop.format(sql.Identifier(scratch)))
    print(f"\ntotal {time.perf_counter() - started:.1f} s (scratch database dropped)")


if __name__ == "__main__":
    main()
