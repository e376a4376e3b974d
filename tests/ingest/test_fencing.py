"""The attempt id is the fencing token: reports from a superseded attempt are dropped."""

from __future__ import annotations

from django.contrib.auth.models import User

from portal.jobs.models import Attempt, Job, LogLine, MetricPoint
from tests.factories import make_attempt, make_job, make_node
from tests.ingest.conftest import Streams, log, metric


def test_it_drops_points_and_lines_from_a_superseded_attempt(
    streams: Streams, transactional_db: None, owner: User
) -> None:
    job = make_job(owner, state=Job.State.RUNNING)
    node = make_node()
    lost = make_attempt(job, nodes=[node], state=Attempt.State.LOST)
    current = make_attempt(job, nodes=[node])
    # The lost attempt's node was only partitioned; its reporter is still flushing.
    streams.add("metrics", metric(lost, 7))
    streams.add("logs", log(lost, 7, "zombie"))
    streams.add("metrics", metric(current, 0))
    streams.add("logs", log(current, 0, "fresh"))

    assert streams.drain(streams.ingestor()) == 4

    assert list(MetricPoint.objects.values_list("attempt_id", "seq")) == [(current.pk, 0)]
    assert list(LogLine.objects.values_list("line", flat=True)) == ["fresh"]
    # Dropped entries are acknowledged all the same: they will never become valid.
    assert streams.pending("metrics") == 0
    assert streams.pending("logs") == 0


def test_it_drops_points_naming_a_missing_attempt_or_another_jobs_attempt(
    streams: Streams, running_attempt: Attempt, owner: User
) -> None:
    other_job = make_job(owner, state=Job.State.RUNNING)
    streams.add("metrics", metric(running_attempt, 0) | {"attempt": running_attempt.pk + 1000})
    streams.add("metrics", metric(running_attempt, 1) | {"job": other_job.pk})
    streams.add("metrics", metric(running_attempt, 2))

    streams.drain(streams.ingestor())

    assert list(MetricPoint.objects.values_list("job_id", "seq")) == [(running_attempt.job_id, 2)]


def test_it_keeps_the_last_points_of_a_finished_latest_attempt(
    streams: Streams, running_attempt: Attempt
) -> None:
    # The exit event can be ingested before the final points, which travel on another stream.
    Attempt.objects.filter(pk=running_attempt.pk).update(state=Attempt.State.SUCCEEDED)
    streams.add("metrics", metric(running_attempt, 0))

    streams.drain(streams.ingestor())

    assert MetricPoint.objects.filter(attempt=running_attempt).count() == 1
