"""Sustained metric points per second into PostgreSQL: 1 and 2 ingest processes beside a raw
COPY of the same rows, in one run; then the channel layer's cost per fan-out event.

- **raw COPY**: the rows ingest would store, `COPY`ed straight into `jobs_metricpoint` by
  psycopg 3 in one transaction: no Redis, no parsing, no fencing, no uniqueness check. The limit.
- **N ingest processes**: `portal.ops.ingest.Ingestor` loops in N processes of their own, one
  consumer group, reading a stream the bench filled beforehand (untimed). Each process is set
  up (Django, groups, a first query) before the clock starts; the clock stops when PostgreSQL
  holds every point. That is the whole real path: XREADGROUP, decode and check, the fencing
  query, COPY into a staging table and INSERT ... ON CONFLICT DO NOTHING, commit, XACK, one
  channel-layer event per job per batch. Variants of one process: redis-py parsing replies in
  Python (as without `hiredis`), and `--batch 500` (the old default) beside today's 2,000.

Then each channel layer (channels-redis core and pub/sub) sends the same 2,000 batch events
(500 points each) to a job group with one listening consumer, which is what ingest pays per
batch.

Everything runs in a scratch database (created, migrated, dropped) on the server DATABASE_URL
names, and streams named `bench-*` (deleted). Variants alternate in rounds; medians.

    python -m portal.devservers run -- python bench/ingest_throughput.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg
import redis
from psycopg import sql

# bench/ is the script's directory, so sys.path[0] when run as `python bench/<name>.py`.
from scratch import django_setup, scratch_database
from tables import table

from workers.messages import MetricEntry, encode

if TYPE_CHECKING:
    from portal.jobs.models import Attempt

KINDS = ("metrics", "ranks", "logs", "events", "health")
COLUMNS = (
    "job_id", "attempt_id", "seq", "split", "step", "epoch", "loss", "accuracy", "reported_at"
)  # fmt: skip


def make_attempt(tag: str) -> Attempt:
    from portal.jobs.models import Job
    from tests.factories import make_attempt, make_job, make_user

    job = make_job(make_user(f"bench_{os.getpid()}_{tag}"), state=Job.State.RUNNING)
    return make_attempt(job)


def entries(attempt: Attempt, count: int) -> list[MetricEntry]:
    now = time.time()
    return [
        MetricEntry(
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
        for seq in range(count)
    ]


def fill(client: redis.Redis, stream: str, points: list[MetricEntry]) -> None:
    for start in range(0, len(points), 2000):
        pipe = client.pipeline(transaction=False)
        for entry in points[start : start + 2000]:
            pipe.xadd(stream, {"data": encode(entry)})
        pipe.execute()


def stored(attempt_id: int) -> int:
    from portal.jobs.models import MetricPoint

    return MetricPoint.objects.filter(attempt_id=attempt_id).count()


# ---- variants ---------------------------------------------------------------------------------


def raw_copy(database_url: str, points: list[MetricEntry]) -> float:
    rows = [
        (e.job, e.attempt, e.seq, e.split, e.step, e.epoch, e.loss, e.accuracy,
         datetime.fromtimestamp(e.ts, tz=UTC))
        for e in points
    ]  # fmt: skip
    with psycopg.connect(database_url) as conn:
        begin = time.perf_counter()
        with conn.cursor() as cursor:
            names = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
            with cursor.copy(sql.SQL("COPY jobs_metricpoint ({}) FROM STDIN").format(names)) as c:
                for row in rows:
                    c.write_row(row)
        conn.commit()
        return len(rows) / (time.perf_counter() - begin)


def ingest_child(prefix: str, consumer: str, batch: int, parser: str) -> None:
    """One ingest process: set up, say `ready`, wait for `go`, ingest until SIGTERM.

    `parser` "python" makes its Redis client parse replies in redis-py's own Python code
    (what redis-py does without `hiredis`); "default" leaves redis-py's choice (hiredis when
    installed, as it is with this project's dependencies)."""
    import signal

    django_setup()
    from redis._parsers import _RESP2Parser

    from portal.ops.ingest import IngestConfig, Ingestor

    config = IngestConfig(
        redis_url=os.environ["REDIS_URL"],
        prefix=prefix,
        consumer=consumer,
        batch=batch,
        block_ms=100,
    )
    client = None
    if parser == "python":
        client = redis.Redis.from_url(
            config.redis_url,
            socket_timeout=config.block_ms / 1000 + 10,
            socket_connect_timeout=5,
            parser_class=_RESP2Parser,
        )
    ingestor = Ingestor(config, client=client)
    ingestor.ensure_groups()
    signal.signal(signal.SIGTERM, lambda *_: ingestor.stop())
    from django.db import connection

    connection.ensure_connection()
    print("ready", flush=True)
    sys.stdin.readline()
    ingestor.run()


def ingest(
    processes: int, prefix: str, attempt_id: int, count: int, batch: int, parser: str
) -> float:
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", prefix, f"bench-{i}", str(batch), parser],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError("an ingest process did not start")
        begin = time.perf_counter()
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        while stored(attempt_id) < count:
            time.sleep(0.02)
        return count / (time.perf_counter() - begin)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(30)


# ---- the channel layer ------------------------------------------------------------------------


def layer_cost(redis_url: str, events: int) -> list[list[str]]:
    """Seconds per group_send of one 500-point batch event, with one listener in the group."""
    from channels_redis.core import RedisChannelLayer
    from channels_redis.pubsub import RedisPubSubChannelLayer

    point = {
        "attempt": 1, "seq": 0, "split": "train", "step": 0, "epoch": 1, "loss": 0.5,
        "accuracy": 0.5, "ts": time.time(),
    }  # fmt: skip
    event = {"type": "job.metrics", "job": 1, "points": [point] * 500}
    hosts = [{"address": redis_url}]

    async def measure(layer: Any) -> tuple[float, float]:
        group = f"bench-{os.getpid()}"
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        received = 0

        async def listen() -> None:
            nonlocal received
            while received < events:
                await layer.receive(channel)
                received += 1

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.2)
        begin = time.perf_counter()
        for _ in range(events):
            await layer.group_send(group, event)
        sent = time.perf_counter() - begin
        await asyncio.wait_for(listener, 60)
        total = time.perf_counter() - begin
        await layer.group_discard(group, channel)
        if hasattr(layer, "flush"):
            await layer.flush()
        return sent / events, total / events

    rows = []
    layers: list[tuple[str, Any]] = [
        ("channels_redis.core", lambda: RedisChannelLayer(hosts=hosts, capacity=events)),
        ("channels_redis.pubsub", lambda: RedisPubSubChannelLayer(hosts=hosts)),
    ]
    for name, make in layers:
        send, through = asyncio.run(measure(make()))
        rows.append([name, f"{send * 1e3:.3f} ms", f"{through * 1e3:.3f} ms"])
    return rows


# ---- main -------------------------------------------------------------------------------------


def bench(args: argparse.Namespace, redis_url: str, database_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    names = [
        "raw COPY (the limit)",
        "1 ingest process, Python reply parser",
        "1 ingest process, --batch 500",
        "1 ingest process",
        "2 ingest processes",
    ]
    rates: dict[str, list[float]] = {name: [] for name in names}
    prefixes: list[str] = []
    try:
        for round_ in range(args.rounds):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                attempt = make_attempt(f"{round_}_{names.index(name)}")
                points = entries(attempt, args.points)
                if name.startswith("raw"):
                    rates[name].append(raw_copy(database_url, points))
                    continue
                prefix = f"bench-ingest-{os.getpid()}-{round_}-{names.index(name)}"
                prefixes.append(prefix)
                fill(client, f"{prefix}:metrics", points)
                processes = int(name[0])
                parser = "python" if "Python" in name else "default"
                size = 500 if "--batch 500" in name else args.batch
                rates[name].append(ingest(processes, prefix, attempt.pk, args.points, size, parser))
                if stored(attempt.pk) != args.points:
                    raise RuntimeError(f"{name}: stored {stored(attempt.pk)} of {args.points}")
    finally:
        for prefix in prefixes:
            client.delete(*(f"{prefix}:{kind}" for kind in (*KINDS, "dead")))
    limit = statistics.median(rates[names[0]])
    print(
        table(
            ["variant", "points/s (median)", "min..max", "ratio to raw COPY"],
            [
                [
                    name,
                    f"{statistics.median(values):,.0f}",
                    f"{min(values):,.0f}..{max(values):,.0f}",
                    f"{statistics.median(values) / limit:.2f}",
                ]
                for name, values in rates.items()
            ],
        )
    )
    print(f"\nchannel layer: one 500-point event to a group of one listener, {args.events} events")
    print(
        table(
            ["layer", "group_send (ingest pays)", "send to receive"],
            layer_cost(redis_url, args.events),
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="ingest points/s beside a raw COPY")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--points", type=int, default=100_000, help="per variant per round")
    parser.add_argument("--batch", type=int, default=2000, help="ingest --batch (its default)")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        ingest_child(args.child[0], args.child[1], int(args.child[2]), args.child[3])
        return
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        raise SystemExit(
            "REDIS_URL must be set: "
            "python -m portal.devservers run -- python bench/ingest_throughput.py"
        )
    scratch = f"bench_ingest_{os.getpid()}"
    print(f"ingest_throughput: {os.cpu_count()} CPUs, scratch database {scratch}")
    print(
        f"{args.rounds} rounds of {args.points:,} points per variant; ingest --batch {args.batch}"
    )
    with scratch_database(scratch) as database_url:
        bench(args, redis_url, database_url)


if __name__ == "__main__":
    main()
