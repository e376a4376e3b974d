"""A long run's chart: the job page's first load of a job with 1,000,000 points per series.

A scratch database (migrated, dropped at the end) gets one running job whose attempt reported
`--points` train points and as many val points (so each of the four series, train and val loss
and accuracy, has `--points` values), 10 ms apart, with a few spikes. The rows go in by COPY;
the chart blocks are rolled up as the beat task (`roll_metric_blocks`) does while a job runs.

Then, through Django's test client (routing, session auth, DRF, JSON), interleaved in rounds:
- the page's first chart load: GET /api/v1/jobs/<id>/metrics/series/ (the whole run);
- a zoom to 1% and to 0.1% of the run;
- for comparison, the same first load read from raw points only (no blocks: what a chart
  would cost without the rollup), fewer rounds because it is slow;
and once: the CSV export of every point (rows per second), and the rollup itself.

    python -m portal.devservers run -- python bench/long_run.py
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime
from typing import Any

from scratch import scratch_database
from tables import table

START = datetime(2026, 1, 1, tzinfo=UTC)


def populate(points: int) -> tuple[Any, Any]:
    from django.db import connection

    from portal.jobs.models import Job, MetricPoint
    from tests.factories import make_attempt, make_job, make_user

    user = make_user("bench-long-run")
    job = make_job(user, state=Job.State.RUNNING)
    attempt = make_attempt(job)
    table_name = MetricPoint._meta.db_table
    begin = time.perf_counter()
    # Generated in PostgreSQL (COPY from Python is slower to produce): even seqs train, odd
    # val, one step per 10 ms, a slow decline with noise, and a spike every 100,000 steps.
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table_name}
                (job_id, attempt_id, seq, split, step, epoch, loss, accuracy, reported_at)
            SELECT %(job)s, %(attempt)s, seq, CASE WHEN seq %% 2 = 1 THEN 'val' ELSE 'train' END,
                   seq / 2, seq / 20000,
                   (2.0 / (1 + (seq / 2) / 50000.0) + (seq * 7919 %% 1000) / 10000.0)
                     * CASE WHEN (seq / 2) %% 100000 = 12345 THEN 10 ELSE 1 END,
                   least(1.0, 0.5 + (seq / 2) / (4.0 * %(points)s)
                              + (seq * 104729 %% 100) / 2000.0),
                   %(start)s::timestamptz + (seq / 2) * interval '10 milliseconds'
            FROM generate_series(0::bigint, 2 * %(points)s - 1) AS seq
            """,  # noqa: S608 - the table's name; values are parameters
            {"job": job.pk, "attempt": attempt.pk, "points": points, "start": START},
        )
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {table_name}")
    print(f"  {2 * points:,} points stored in {time.perf_counter() - begin:.1f} s")
    return job, attempt


def timed(client: Any, url: str, params: dict[str, Any] | None = None) -> tuple[float, Any]:
    begin = time.perf_counter()
    response = client.get(url, params or {})
    elapsed = time.perf_counter() - begin
    assert response.status_code == 200, response.content[:500]
    return elapsed, response


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(args: argparse.Namespace) -> None:
    from django.http import StreamingHttpResponse
    from django.test import Client
    from django.urls import reverse

    from portal.jobs import series
    from portal.jobs.blocks import metric_blocks_roll
    from portal.jobs.models import MetricBlock

    job, attempt = populate(args.points)
    begin = time.perf_counter()
    blocks = metric_blocks_roll(attempt_ids=[attempt.pk])
    print(
        f"  rolled {blocks:,} blocks in {time.perf_counter() - begin:.1f} s "
        "(beat does this as the run goes)"
    )
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(job.owner)
    url = reverse("jobs-api:metrics-series", kwargs={"job_id": job.pk})
    span = args.points / 100  # seconds: one step per 10 ms
    t0 = START.timestamp()
    zoom_1 = {"start": t0 + span * 0.40, "end": t0 + span * 0.41}
    zoom_01 = {"start": t0 + span * 0.70, "end": t0 + span * 0.701}
    timings: dict[str, list[float]] = {"first load": [], "zoom 1%": [], "zoom 0.1%": []}
    shapes: dict[str, str] = {}
    timed(client, url)  # warm: connections, caches
    for _round in range(args.rounds):
        for name, params in (("first load", None), ("zoom 1%", zoom_1), ("zoom 0.1%", zoom_01)):
            elapsed, response = timed(client, url, params)
            timings[name].append(elapsed)
            body = response.json()
            shapes[name] = (
                f"{len(body['t'])} rows ({body['resolution']}, {body['points']:,} points)"
            )
    # The first load without blocks: everything from raw points (the path before this change
    # read every point; this at least buckets them in PostgreSQL).
    raw_times = []
    for _round in range(args.raw_rounds):
        begin = time.perf_counter()
        body = series.metric_series(job=job, raw_limit=10**12)
        raw_times.append(time.perf_counter() - begin)
    shapes["first load, raw points only"] = f"{len(body['t'])} rows ({body['resolution']})"
    rows = [
        [
            name,
            f"{percentile(v, 0.5) * 1000:.1f} ms",
            f"{percentile(v, 0.95) * 1000:.1f} ms",
            str(len(v)),
            shapes[name],
        ]
        for name, v in (*timings.items(), ("first load, raw points only", raw_times))
    ]
    print(
        f"\n{args.rounds} rounds, interleaved "
        f"(raw-only: {args.raw_rounds} rounds, selector alone)\n"
    )
    print(table(["request", "p50", "p95", "n", "answer"], rows))
    body = client.get(url).json()
    # Each spike is one train point (step % 100,000 == 12,345) ten times its neighbours: is
    # it the maximum of the bucket that holds its time?
    import bisect

    seen = 0
    spikes = list(range(12_345, args.points, 100_000))
    for step in spikes:
        loss = 10 * (2.0 / (1 + step / 50_000) + (2 * step * 7919 % 1000) / 10_000)
        at = t0 + step / 100
        # The bucket that holds its time, or the one before (a block straddling a boundary
        # belongs to the bucket where it starts).
        index = max(0, bisect.bisect_right(body["t"], at) - 1)
        near = [v for v in body["train_loss_max"][max(0, index - 1) : index + 1] if v is not None]
        if near and abs(max(near) - loss) < 1e-9:
            seen += 1
    print(
        f"\nspikes (one point among {args.points:,}) that are their bucket's max "
        f"in the first load: {seen} of {len(spikes)}"
    )
    print(f"blocks: {MetricBlock.objects.filter(job=job).count():,} rows")
    if args.csv:
        begin = time.perf_counter()
        response = client.get(reverse("jobs-api:metrics-csv", kwargs={"job_id": job.pk}))
        assert isinstance(response, StreamingHttpResponse)
        size = 0
        lines = 0  # the export yields one CSV row per chunk
        for chunk in response.streaming_content:
            size += len(chunk)
            lines += 1
        elapsed = time.perf_counter() - begin
        print(
            f"CSV export: {lines - 1:,} points, {size / 1e6:.0f} MB in {elapsed:.1f} s "
            f"({(lines - 1) / elapsed:,.0f} points/s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="a long run's chart load")
    parser.add_argument("--points", type=int, default=1_000_000, help="points per series")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--raw-rounds", type=int, default=3)
    parser.add_argument("--no-csv", dest="csv", action="store_false")
    args = parser.parse_args()
    scratch = f"bench_long_run_{os.getpid()}"
    print(
        f"long_run: {os.cpu_count()} CPUs, scratch database {scratch}, "
        f"{args.points:,} points per series"
    )
    started = time.perf_counter()
    with scratch_database(scratch):
        measure(args)
    print(f"\ntotal {time.perf_counter() - started:.1f} s (scratch database dropped)")


if __name__ == "__main__":
    main()
