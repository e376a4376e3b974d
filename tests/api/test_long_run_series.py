"""GET /api/v1/jobs/<id>/metrics/series/ and metrics.csv: a long run's chart data keeps every
bucket's extremes, from raw points and from rolled-up blocks alike; the CSV has every point."""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from django.contrib.auth.models import User
from django.http import StreamingHttpResponse
from django.urls import reverse

from portal.jobs.blocks import metric_blocks_roll
from portal.jobs.models import Attempt, MetricBlock, MetricPoint
from portal.jobs.series import metric_series
from tests.api.conftest import TokenClient
from tests.factories import make_attempt, make_job

START = datetime(2026, 1, 1, tzinfo=UTC)


def add_points(attempt: Attempt, count: int, *, seed: int = 1, first_seq: int = 0) -> None:
    """`count` points, seq = step, a val point every tenth, 10 ms apart, noisy losses."""
    rng = random.Random(seed)
    MetricPoint.objects.bulk_create(
        MetricPoint(
            job_id=attempt.job_id,
            attempt=attempt,
            seq=seq,
            split=MetricPoint.Split.VAL if seq % 10 == 9 else MetricPoint.Split.TRAIN,
            step=seq,
            epoch=seq // 100,
            loss=rng.random(),
            accuracy=rng.random(),
            reported_at=START + timedelta(milliseconds=10 * seq),
        )
        for seq in range(first_seq, first_seq + count)
    )


def bucket_extremes(job_id: int, series: dict[str, Any], split: str) -> list[tuple[float, float]]:
    """Each bucket's true (min, max) loss of `split`, from every stored point."""
    lo, hi, n = series["start"], series["end"], 40
    width = (hi - lo) / n
    out: dict[int, list[float]] = {}
    for at, loss in MetricPoint.objects.filter(job_id=job_id, split=split).values_list(
        "reported_at", "loss"
    ):
        index = min(int((at.timestamp() - lo) / width), n)
        out.setdefault(index, []).append(loss)
    return [(min(v), max(v)) for _, v in sorted(out.items())]


def test_the_downsampled_series_keeps_the_min_and_max_of_each_bucket(
    owner: User, client_for: TokenClient
) -> None:
    job = make_job(owner, state="running")
    attempt = make_attempt(job)
    add_points(attempt, 3000)
    spike = MetricPoint.objects.get(attempt=attempt, seq=1234)
    spike.loss = 99.0
    spike.save()

    response = client_for(owner).get(
        reverse("jobs-api:metrics-series", kwargs={"job_id": job.pk}), {"buckets": 40}
    )

    assert response.status_code == 200, response.content
    series = response.json()
    assert series["resolution"] == "buckets"
    assert series["points"] == 3000 and series["summary"]["count"] == 3000
    assert len(series["t"]) <= 41
    assert series["cursor"] == {"attempt": attempt.pk, "seq": 2999}
    for split in ("train", "val"):
        got = [
            (a, b)
            for a, b in zip(series[f"{split}_loss_min"], series[f"{split}_loss_max"], strict=True)
            if a is not None
        ]
        assert got == bucket_extremes(job.pk, series, split)
    assert max(v for v in series["train_loss_max"] if v is not None) == 99.0


def test_blocks_keep_the_peaks_of_a_long_run_and_the_tail_is_read_raw(owner: User) -> None:
    job = make_job(owner, state="running")
    attempt = make_attempt(job)
    add_points(attempt, 5000)
    spike = MetricPoint.objects.get(attempt=attempt, seq=777)
    spike.loss, spike.accuracy = -5.0, 0.999
    spike.save()
    nan = MetricPoint.objects.get(attempt=attempt, seq=4000)
    nan.loss = math.nan
    nan.save()

    written = metric_blocks_roll(attempt_ids=[attempt.pk])

    # Blocks of 256 seqs; the newest block but one stays raw: seqs 0..4607 rolled, 18 x 2.
    assert written == 36
    assert MetricBlock.objects.filter(attempt=attempt).count() == 36
    assert metric_blocks_roll(attempt_ids=[attempt.pk]) == 0  # nothing new is due
    series = metric_series(job=job, buckets=50, raw_limit=0)
    assert series["resolution"] == "blocks"
    assert series["points"] == 5000 and series["summary"]["count"] == 5000
    assert len(series["t"]) <= 51
    train_min = [v for v in series["train_loss_min"] if v is not None]
    train_max = [v for v in series["train_loss_max"] if v is not None]
    assert min(train_min) == -5.0
    stored = MetricPoint.objects.filter(job=job, split="train").exclude(seq=4000)
    assert max(train_max) == max(stored.values_list("loss", flat=True))
    val = MetricPoint.objects.filter(job=job, split="val", accuracy__isnull=False)
    assert series["summary"]["best_val_accuracy"] == max(
        v for v in val.values_list("accuracy", flat=True) if v is not None
    )
    # The same job read raw agrees on the extremes.
    raw = metric_series(job=job, buckets=50)
    assert raw["resolution"] == "buckets"
    assert min(v for v in raw["train_loss_min"] if v is not None) == -5.0


def test_zooming_in_reads_finer_data_for_the_range_only(
    owner: User, client_for: TokenClient
) -> None:
    job = make_job(owner, state="running")
    attempt = make_attempt(job)
    add_points(attempt, 5000)
    url = reverse("jobs-api:metrics-series", kwargs={"job_id": job.pk})
    start = (START + timedelta(seconds=10)).timestamp()
    end = (START + timedelta(seconds=12)).timestamp()

    zoomed = client_for(owner).get(url, {"start": start, "end": end}).json()

    # 2 s at 10 ms: 201 points, each its own row.
    assert zoomed["resolution"] == "points"
    assert zoomed["points"] == 201
    assert zoomed["t"][0] == start and zoomed["t"][-1] == end


def test_an_empty_job_has_an_empty_series_and_no_cursor(
    owner: User, client_for: TokenClient
) -> None:
    job = make_job(owner)
    body = client_for(owner).get(reverse("jobs-api:metrics-series", kwargs={"job_id": job.pk}))
    assert body.status_code == 200
    assert body.json()["t"] == [] and body.json()["cursor"] is None


def test_another_users_job_series_is_not_found(
    owner: User, outsider: User, client_for: TokenClient
) -> None:
    job = make_job(owner)
    for name in ("metrics-series", "metrics-csv", "timeline"):
        response = client_for(outsider).get(reverse(f"jobs-api:{name}", kwargs={"job_id": job.pk}))
        assert response.status_code == 404, name


def test_the_csv_export_streams_every_point(owner: User, client_for: TokenClient) -> None:
    job = make_job(owner, state="running")
    first = make_attempt(job, state="lost")
    add_points(first, 7)
    second = make_attempt(job)
    add_points(second, 12_345, seed=2)

    response = client_for(owner).get(reverse("jobs-api:metrics-csv", kwargs={"job_id": job.pk}))

    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(cast(Iterator[bytes], response.streaming_content))
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert rows[0] == [
        "attempt",
        "seq",
        "split",
        "step",
        "epoch",
        "loss",
        "accuracy",
        "reported_at",
    ]
    keys = [(int(r[0]), int(r[1])) for r in rows[1:]]
    assert keys == [(first.pk, s) for s in range(7)] + [(second.pk, s) for s in range(12_345)]
    stored = MetricPoint.objects.get(attempt=second, seq=9000)
    row = rows[1 + 7 + 9000]
    assert float(row[5]) == stored.loss
    assert datetime.fromisoformat(row[7]) == stored.reported_at
