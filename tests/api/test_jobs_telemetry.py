"""GET /api/v1/jobs/<id>/metrics/ and /logs/: cursor paging in the order the trainer reported."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone

from portal.cluster.models import Node
from portal.jobs.models import Attempt, Job, LogLine, MetricPoint
from tests.api.conftest import TokenClient
from tests.factories import make_attempt

Submit = Callable[..., int]


def add_points(attempt: Attempt, count: int) -> None:
    start = timezone.now()
    MetricPoint.objects.bulk_create(
        MetricPoint(
            job=attempt.job,
            attempt=attempt,
            seq=seq,
            split=MetricPoint.Split.TRAIN,
            step=seq,
            epoch=seq // 2,
            loss=1.0 / (seq + 1),
            accuracy=None,
            reported_at=start + timedelta(milliseconds=seq),
        )
        for seq in range(count)
    )


def test_it_pages_metrics_in_attempt_then_seq_order(
    client_for: TokenClient, submit: Submit, owner: User, cpu_node: Node
) -> None:
    job = Job.objects.get(pk=submit(owner))
    # The first attempt got further than the second before it was lost: seq restarts at 0.
    first = make_attempt(job, nodes=[cpu_node], state=Attempt.State.LOST)
    second = make_attempt(job, nodes=[cpu_node])
    add_points(first, 5)
    add_points(second, 3)
    client = client_for(owner)

    seen: list[tuple[int, int]] = []
    query: dict[str, Any] = {"limit": 3}
    pages = 0
    while True:
        page = client.get(f"/api/v1/jobs/{job.pk}/metrics/", query).json()
        pages += 1
        seen += [(point["attempt"], point["seq"]) for point in page["points"]]
        query = {**page["next"], "limit": 3}
        if not page["has_more"]:
            break

    assert pages == 3
    assert seen == [(first.pk, s) for s in range(5)] + [(second.pk, s) for s in range(3)]
    cursor = {"after_attempt": second.pk, "after_seq": 2}
    assert page["next"] == cursor
    # A caught-up client polls with the last cursor and gets nothing new, same cursor back.
    again = client.get(f"/api/v1/jobs/{job.pk}/metrics/", cursor).json()
    assert again == {"points": [], "next": cursor, "has_more": False}
    # The job names its attempts, so a point's attempt can be matched to its nodes.
    attempts = client.get(f"/api/v1/jobs/{job.pk}/").json()["attempts"]
    assert [(a["id"], a["number"], a["state"]) for a in attempts] == [
        (first.pk, 1, "lost"),
        (second.pk, 2, "running"),
    ]
    assert attempts[1]["nodes"] == [cpu_node.name]


def test_a_metric_point_carries_what_a_chart_needs(
    client_for: TokenClient, submit: Submit, owner: User, cpu_node: Node
) -> None:
    job = Job.objects.get(pk=submit(owner))
    add_points(make_attempt(job, nodes=[cpu_node]), 1)

    point = client_for(owner).get(f"/api/v1/jobs/{job.pk}/metrics/").json()["points"][0]

    assert set(point) == {"attempt", "seq", "split", "step", "epoch", "loss", "accuracy", "ts"}
    assert point["loss"] == 1.0
    assert point["split"] == "train"


def test_a_diverged_loss_reads_as_null_not_as_a_server_error(
    client_for: TokenClient, submit: Submit, owner: User, cpu_node: Node
) -> None:
    job = Job.objects.get(pk=submit(owner))
    attempt = make_attempt(job, nodes=[cpu_node])
    # Ingest keeps a NaN or infinite loss (a diverging run is a fact); JSON has no NaN.
    MetricPoint.objects.bulk_create(
        MetricPoint(
            job=job,
            attempt=attempt,
            seq=seq,
            split=MetricPoint.Split.TRAIN,
            step=seq,
            epoch=0,
            loss=loss,
            accuracy=accuracy,
            reported_at=timezone.now(),
        )
        for seq, (loss, accuracy) in enumerate(
            [(0.5, 0.75), (math.nan, None), (math.inf, math.nan), (-math.inf, 0.25)]
        )
    )

    response = client_for(owner).get(f"/api/v1/jobs/{job.pk}/metrics/")

    assert response.status_code == 200
    # Strict parsing, as a browser's JSON.parse would: no NaN or Infinity tokens in the body.
    body = json.loads(response.content, parse_constant=_refuse)
    assert [(p["loss"], p["accuracy"]) for p in body["points"]] == [
        (0.5, 0.75),
        (None, None),
        (None, None),
        (None, 0.25),
    ]


def _refuse(token: str) -> None:
    raise AssertionError(f"{token} is not JSON")


def test_it_rejects_a_metrics_limit_above_the_maximum(
    client_for: TokenClient, submit: Submit, owner: User
) -> None:
    job_id = submit(owner)

    response = client_for(owner).get(f"/api/v1/jobs/{job_id}/metrics/?limit=5001&after_seq=x")

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"limit", "after_seq"}


def test_it_pages_log_lines_by_attempt_node_and_seq(
    client_for: TokenClient, submit: Submit, owner: User, cpu_node: Node
) -> None:
    job = Job.objects.get(pk=submit(owner))
    attempt = make_attempt(job, nodes=[cpu_node])
    now = timezone.now()
    LogLine.objects.bulk_create(
        LogLine(
            job=job,
            attempt=attempt,
            node_rank=0,
            seq=seq,
            stream=LogLine.Stream.STDOUT,
            line=f"epoch {seq}",
            reported_at=now,
        )
        for seq in range(5)
    )
    client = client_for(owner)

    first = client.get(f"/api/v1/jobs/{job.pk}/logs/", {"limit": 3}).json()
    second = client.get(f"/api/v1/jobs/{job.pk}/logs/", {**first["next"], "limit": 3}).json()

    assert [line["line"] for line in first["lines"]] == ["epoch 0", "epoch 1", "epoch 2"]
    assert first["has_more"] is True
    assert [line["line"] for line in second["lines"]] == ["epoch 3", "epoch 4"]
    assert second["has_more"] is False
    assert second["lines"][0]["attempt"] == attempt.pk
    assert second["next"] == {"after": f"{attempt.pk}.0.4"}
    assert second["truncated"] is False
