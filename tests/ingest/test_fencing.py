"""The attempt id is the fencing token: reports from a superseded attempt are dropped."""

from __future__ import annotations

import pytest
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


@pytest.mark.parametrize(
    "ended", [Attempt.State.SUCCEEDED, Attempt.State.FAILED, Attempt.State.CANCELLED]
)
def test_it_keeps_the_last_points_of_a_latest_attempt_that_ended_on_its_own_report(
    streams: Streams, running_attempt: Attempt, ended: Attempt.State
) -> None:
    # The exit event can be ingested before the final points, which travel on another stream.
    Attempt.objects.filter(pk=running_attempt.pk).update(state=ended)
    streams.add("metrics", metric(running_attempt, 0))
    streams.add("logs", log(running_attempt, 0, "last words"))

    streams.drain(streams.ingestor())

    assert MetricPoint.objects.filter(attempt=running_attempt).count() == 1
    assert LogLine.objects.filter(attempt=running_attempt).count() == 1


def test_it_drops_points_and_lines_from_a_lost_attempt_with_no_successor_yet(
    streams: Streams, running_attempt: Attempt
) -> None:
    # The reaper declared the attempt lost (its node went silent) and the job has no next
    # attempt yet: it is waiting in the queue, failed, or was cancelled. The node was only
    # partitioned and its reporter flushes late; the control plane's decision stands.
    Attempt.objects.filter(pk=running_attempt.pk).update(state=Attempt.State.LOST)
    streams.add("metrics", metric(running_attempt, 0))
    streams.add("logs", log(running_attempt, 0, "zombie"))

    assert streams.drain(streams.ingestor()) == 2

    assert not MetricPoint.objects.exists()
    assert not LogLine.objects.exists()
    assert streams.pending("metrics") == 0
    assert streams.pending("logs") == 0
