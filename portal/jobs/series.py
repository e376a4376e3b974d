"""Reads for a job's charts over long runs: a downsampled series that keeps every peak, and
every point for export.

A chart never receives more than about `MAX_BUCKETS` rows per request. The time range is cut
into buckets of equal width, and each bucket carries the minimum and maximum of each split's
loss and accuracy, so a spike of one point among millions is still drawn. Where the range holds
at most `RAW_LIMIT` points they are read raw (index `metric_job_time`) and every bucket is
exact; past that the range is read from the attempts' blocks (`MetricBlock`, 256 seqs each)
plus the raw points after the last block, so the cost follows the blocks, not the points.
Within `MAX_BUCKETS` points there is no bucketing at all: one row per reported time.

The SQL is assembled from this module's constants, table names and generated placeholder names
(hence the `noqa: S608`); every value travels as a query parameter.

The series stops at the job's newest point when it is read (`cursor`), which is where the
page's socket then goes on from, so no point is drawn twice or missed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict

from django.db import connection
from django.db.models import Max, Q

from portal.jobs.models import Attempt, Job, MetricBlock, MetricPoint

MAX_BUCKETS = 2000
RAW_LIMIT = 10_000
EXPORT_CHUNK = 5000

FINITE = "{col} < 'Infinity'::float8 AND {col} > '-Infinity'::float8"
SPLITS = ("train", "val")
VALUES = [
    f"{split}_{metric}_{end}"
    for metric in ("loss", "accuracy")
    for split in SPLITS
    for end in ("min", "max")
]


class SeriesCursor(TypedDict):
    attempt: int
    seq: int


class SeriesSummary(TypedDict):
    count: int  # the job's stored points, all of them
    best_val_accuracy: float | None
    final_val_accuracy: float | None
    last_train_loss: float | None
    last_epoch: int | None


class MetricSeries(TypedDict):
    """`t[i]` is the time (s since the epoch) of bucket i's first point; each `<split>_<metric>_
    <min|max>` list is aligned with `t`, null where that split has no value in the bucket."""

    start: float | None
    end: float | None
    resolution: Literal["points", "buckets", "blocks"]
    points: int  # points in the range
    t: list[float]
    train_loss_min: list[float | None]
    train_loss_max: list[float | None]
    val_loss_min: list[float | None]
    val_loss_max: list[float | None]
    train_accuracy_min: list[float | None]
    train_accuracy_max: list[float | None]
    val_accuracy_min: list[float | None]
    val_accuracy_max: list[float | None]
    cursor: SeriesCursor | None
    summary: SeriesSummary


def _seconds(at: datetime) -> float:
    return at.timestamp()


def _tails(job: Job) -> tuple[str, dict[str, Any]]:
    """SQL for the job's points after its attempts' last blocks, and its parameters."""
    size = MetricBlock.BLOCK_POINTS
    # `order_by()`: the models' default orderings would join the attempt and the job.
    rolled = dict(
        MetricBlock.objects.filter(job=job)
        .order_by()
        .values("attempt_id")
        .annotate(last=Max("block"))
        .values_list("attempt_id", "last")
    )
    terms: list[str] = []
    params: dict[str, Any] = {}
    for i, attempt_id in enumerate(
        Attempt.objects.filter(job_id=job.pk).order_by("pk").values_list("pk", flat=True)
    ):
        terms.append(f"(attempt_id = %(tail_attempt_{i})s AND seq >= %(tail_seq_{i})s)")
        last = rolled.get(attempt_id)
        params[f"tail_attempt_{i}"] = attempt_id
        params[f"tail_seq_{i}"] = 0 if last is None else (last + 1) * size
    return (" OR ".join(terms) or "FALSE"), params


def _bucket_sql(source: str, *, by_time: bool) -> str:
    group = "s.t" if by_time else "width_bucket(extract(epoch FROM s.t), %(lo)s, %(hi)s, %(n)s)"
    columns = []
    for column in ("l", "a"):  # loss, then accuracy, as in VALUES
        for split in SPLITS:
            columns += [
                f"min(s.{column}min) FILTER (WHERE s.split = '{split}')",
                f"max(s.{column}max) FILTER (WHERE s.split = '{split}')",
            ]
    return (
        f"SELECT extract(epoch FROM min(s.t)), sum(s.n), {', '.join(columns)} "  # noqa: S608
        f"FROM ({source}) s GROUP BY {group} ORDER BY 1"
    )


def _raw_source(tail: str = "") -> str:
    loss = f"CASE WHEN {FINITE.format(col='loss')} THEN loss END"
    accuracy = f"CASE WHEN {FINITE.format(col='accuracy')} THEN accuracy END"
    return (
        f"SELECT reported_at AS t, split, 1 AS n, "  # noqa: S608
        f"{loss} AS lmin, {loss} AS lmax, {accuracy} AS amin, {accuracy} AS amax "
        f"FROM {MetricPoint._meta.db_table} WHERE job_id = %(job)s "
        f"AND reported_at >= %(start)s AND reported_at <= %(end)s "
        f"AND (attempt_id, seq) <= (%(cursor_attempt)s, %(cursor_seq)s){tail}"
    )


def _block_source(tails: str) -> str:
    return (
        f"SELECT first_at AS t, split, count AS n, loss_min AS lmin, loss_max AS lmax, "  # noqa: S608
        f"accuracy_min AS amin, accuracy_max AS amax FROM {MetricBlock._meta.db_table} "
        f"WHERE job_id = %(job)s AND last_at >= %(start)s AND first_at <= %(end)s "
        f"UNION ALL " + _raw_source(f" AND ({tails})")
    )


def metric_series(
    *,
    job: Job,
    start: datetime | None = None,
    end: datetime | None = None,
    buckets: int = MAX_BUCKETS,
    raw_limit: int = RAW_LIMIT,
) -> MetricSeries:
    """The job's loss and accuracy between `start` and `end` (default: all of it), in at most
    `buckets` + 1 rows that keep each bucket's minimum and maximum (module docstring)."""
    newest = (
        MetricPoint.objects.filter(job=job)
        .order_by("-attempt_id", "-seq")
        .values_list("attempt_id", "seq", "reported_at", "epoch")
        .first()
    )
    tails, tail_params = _tails(job)
    summary = _summary(job, tails, tail_params, newest)
    series: dict[str, Any] = {
        "start": None,
        "end": None,
        "resolution": "points",
        "points": 0,
        "t": [],
        **{name: [] for name in VALUES},
        "cursor": None,
        "summary": summary,
    }
    if newest is None:
        return series  # type: ignore[return-value]
    cursor_attempt, cursor_seq, newest_at, _epoch = newest
    start_given, end_given = start, end
    series["cursor"] = {"attempt": cursor_attempt, "seq": cursor_seq}
    if start is None:
        first = (
            MetricPoint.objects.filter(job=job)
            .order_by("attempt_id", "seq")
            .values_list("reported_at", flat=True)
            .first()
        )
        start = first or newest_at
    end = end or newest_at
    if end < start:
        start, end = end, start
    lo, hi = _seconds(start), _seconds(end)
    if hi - lo < 1e-3:
        hi = lo + 1e-3
    params = {
        **tail_params,
        "job": job.pk,
        "start": start,
        "end": end,
        "cursor_attempt": cursor_attempt,
        "cursor_seq": cursor_seq,
        "lo": lo,
        "hi": hi,
        "n": buckets,
    }
    # The whole run holds what the summary counted; only a window needs counting.
    whole = start_given is None and end_given is None
    estimate = summary["count"] if whole else _estimate(tails, params)
    if estimate <= raw_limit:
        by_time = estimate <= buckets
        series["resolution"] = "points" if by_time else "buckets"
        query = _bucket_sql(_raw_source(), by_time=by_time)
    else:
        series["resolution"] = "blocks"
        query = _bucket_sql(_block_source(tails), by_time=False)
    with connection.cursor() as db:
        db.execute(query, params)
        rows = db.fetchall()
    series["start"], series["end"] = lo, _seconds(end)
    for row in rows:
        series["t"].append(float(row[0]))
        series["points"] += int(row[1])
        for name, value in zip(VALUES, row[2:], strict=True):
            series[name].append(value)
    return series  # type: ignore[return-value]


def _estimate(tails: str, params: dict[str, Any]) -> int:
    """Points in the range, counted from the blocks that overlap it and the raw tails."""
    query = (
        f"SELECT (SELECT coalesce(sum(count), 0) FROM {MetricBlock._meta.db_table} "  # noqa: S608
        f"WHERE job_id = %(job)s AND last_at >= %(start)s AND first_at <= %(end)s) + "
        f"(SELECT count(*) FROM {MetricPoint._meta.db_table} WHERE job_id = %(job)s "
        f"AND reported_at >= %(start)s AND reported_at <= %(end)s AND ({tails}))"
    )
    with connection.cursor() as db:
        db.execute(query, params)
        (count,) = db.fetchone() or (0,)
    return int(count)


def _summary(
    job: Job, tails: str, tail_params: dict[str, Any], newest: tuple[Any, ...] | None
) -> SeriesSummary:
    """The page's figures for the whole job: a few aggregate reads of blocks and tails."""
    blocks = MetricBlock._meta.db_table
    points = MetricPoint._meta.db_table
    finite = FINITE.format(col="accuracy")
    with connection.cursor() as db:
        db.execute(
            f"SELECT coalesce(sum(count), 0), max(accuracy_max) FILTER (WHERE split = 'val') "  # noqa: S608
            f"FROM {blocks} WHERE job_id = %(job)s",
            {"job": job.pk},
        )
        block_count, block_best = db.fetchone() or (0, None)
        db.execute(
            f"SELECT count(*), max(accuracy) FILTER (WHERE split = 'val' AND {finite}) "  # noqa: S608
            f"FROM {points} WHERE job_id = %(job)s AND ({tails})",
            {**tail_params, "job": job.pk},
        )
        tail_count, tail_best = db.fetchone() or (0, None)
    best = [v for v in (block_best, tail_best) if v is not None]
    return {
        "count": int(block_count) + int(tail_count),
        "best_val_accuracy": max(best) if best else None,
        "final_val_accuracy": _last(job, tails, tail_params, "val", "accuracy"),
        "last_train_loss": _last(job, tails, tail_params, "train", "loss"),
        "last_epoch": newest[3] if newest else None,
    }


def _last(
    job: Job, tails: str, tail_params: dict[str, Any], split: str, metric: str
) -> float | None:
    """The newest `split` point's `metric`: from the raw tails, else from the newest block."""
    with connection.cursor() as db:
        db.execute(
            f"SELECT {metric} FROM {MetricPoint._meta.db_table} WHERE job_id = %(job)s "  # noqa: S608
            f"AND split = %(split)s AND ({tails}) ORDER BY attempt_id DESC, seq DESC LIMIT 1",
            {**tail_params, "job": job.pk, "split": split},
        )
        row = db.fetchone()
    if row is not None:
        return row[0]  # type: ignore[no-any-return]
    block = (
        MetricBlock.objects.filter(job=job, split=split)
        .order_by("-attempt_id", "-block")
        .values_list(f"{metric}_last", flat=True)
        .first()
    )
    return block


class ExportRow(TypedDict):
    attempt: int
    seq: int
    split: str
    step: int
    epoch: int
    loss: float
    accuracy: float | None
    reported_at: datetime


EXPORT_FIELDS = ["attempt", "seq", "split", "step", "epoch", "loss", "accuracy", "reported_at"]


def metric_points_export(*, job: Job, chunk: int = EXPORT_CHUNK) -> Iterator[tuple[Any, ...]]:
    """Every point of the job in `(attempt, seq)` order, as `EXPORT_FIELDS` tuples, read in
    keyset pages of `chunk` so memory stays flat and no cursor is held across a stream."""
    after: tuple[int, int] = (0, -1)
    fields = [f if f != "attempt" else "attempt_id" for f in EXPORT_FIELDS]
    while True:
        page = list(
            MetricPoint.objects.filter(job=job)
            .filter(Q(attempt_id__gt=after[0]) | Q(attempt_id=after[0], seq__gt=after[1]))
            .order_by("attempt_id", "seq")
            .values_list(*fields)[:chunk]
        )
        yield from page
        if len(page) < chunk:
            return
        after = (page[-1][0], page[-1][1])


def epoch_seconds(value: float) -> datetime:
    """A query's `from`/`to` (seconds since the epoch) as an aware datetime."""
    return datetime.fromtimestamp(value, tz=UTC)
