"""Telemetry after a cursor, and a job's place in the queue."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from portal.jobs.models import Job, LogLine, MetricPoint
from portal.jobs.selectors import job_queue_position, metric_points_after
from portal.jobs.telemetry import LogCursor, log_lines_after
from tests.factories import make_attempt, make_job


def add_points(attempt, count: int) -> None:
    now = timezone.now()
    MetricPoint.objects.bulk_create(
        MetricPoint(
            job=attempt.job,
            attempt=attempt,
            seq=seq,
            split="train",
            step=seq,
            epoch=0,
            loss=1.0 / (seq + 1),
            reported_at=now,
        )
        for seq in range(count)
    )


def test_metric_points_follow_the_attempt_and_seq_cursor(owner):
    job = make_job(owner, state=Job.State.RUNNING)
    first = make_attempt(job, state="lost")
    second = make_attempt(job)
    add_points(first, 3)
    add_points(second, 2)
    cursor = [(p.attempt_id, p.seq) for p in metric_points_after(job=job)]
    assert cursor == [(first.pk, 0), (first.pk, 1), (first.pk, 2), (second.pk, 0), (second.pk, 1)]
    after = metric_points_after(job=job, after_attempt=first.pk, after_seq=1, limit=2)
    assert [(p.attempt_id, p.seq) for p in after] == [(first.pk, 2), (second.pk, 0)]
    assert metric_points_after(job=job, after_attempt=second.pk, after_seq=1) == []


def test_metric_points_are_the_jobs_own(owner):
    job, other = make_job(owner), make_job(owner)
    add_points(make_attempt(other), 2)
    assert metric_points_after(job=job) == []


def test_log_lines_page_by_attempt_node_and_seq(owner):
    job = make_job(owner, state=Job.State.RUNNING)
    attempt = make_attempt(job)
    LogLine.objects.bulk_create(
        LogLine(
            job=job,
            attempt=attempt,
            node_rank=0,
            seq=seq,
            stream="stdout",
            line=f"line {seq}",
            reported_at=timezone.now(),
        )
        for seq in range(5)
    )
    page, following, more = log_lines_after(
        job=job, cursor=LogCursor({(attempt.pk, 0): 1}), limit=2
    )
    assert [line.line for line in page] == ["line 2", "line 3"]
    assert (following, more) == (LogCursor({(attempt.pk, 0): 3}), True)


def test_queue_position_follows_priority_then_age(owner):
    now = timezone.now()
    old = make_job(owner, created_at=now - timedelta(minutes=5))
    new = make_job(owner, created_at=now)
    urgent = make_job(owner, priority=3, created_at=now)
    running = make_job(owner, state=Job.State.RUNNING)
    assert [job_queue_position(j) for j in (urgent, old, new)] == [1, 2, 3]
    assert job_queue_position(running) is None
