"""Ingest stores what nodes report, once, and acknowledges it only when it is stored."""

from __future__ import annotations

from portal.jobs.models import Attempt, LogLine, MetricPoint
from tests.ingest.conftest import Streams, log, metric


def stored_points(attempt: Attempt) -> list[tuple[int, float]]:
    return list(
        MetricPoint.objects.filter(attempt=attempt).order_by("seq").values_list("seq", "loss")
    )


def test_it_stores_points_and_acknowledges_them(streams: Streams, running_attempt: Attempt) -> None:
    for seq in range(3):
        streams.add("metrics", metric(running_attempt, seq))

    assert streams.drain(streams.ingestor()) == 3

    assert stored_points(running_attempt) == [(0, 1.0), (1, 0.5), (2, 1 / 3)]
    point = MetricPoint.objects.get(attempt=running_attempt, seq=0)
    assert point.job_id == running_attempt.job_id
    assert point.reported_at.timestamp() == 1_750_000_000.0
    assert streams.pending("metrics") == 0


def test_a_redelivered_entry_is_stored_once(streams: Streams, running_attempt: Attempt) -> None:
    # At-least-once delivery: the same points arrive again, in a later batch and in the same one.
    for seq in (0, 1):
        streams.add("metrics", metric(running_attempt, seq))
    streams.drain(streams.ingestor())
    for seq in (0, 1, 1, 2):
        streams.add("metrics", metric(running_attempt, seq, loss=9.0))

    assert streams.drain(streams.ingestor()) == 4

    # The first copy of each point wins; the duplicates changed nothing.
    assert stored_points(running_attempt) == [(0, 1.0), (1, 0.5), (2, 9.0)]


def test_it_stores_log_lines_once_and_keeps_them_apart_by_rank(
    streams: Streams, running_attempt: Attempt
) -> None:
    streams.add("logs", log(running_attempt, 0, "epoch 1 loss 0.9", node_rank=0))
    streams.add("logs", log(running_attempt, 0, "rank 1 ready", node_rank=1))
    streams.add("logs", log(running_attempt, 0, "epoch 1 loss 0.9", node_rank=0))
    streams.add("logs", log(running_attempt, 1, "binary \x00 junk", node_rank=0))

    assert streams.drain(streams.ingestor()) == 4

    lines = LogLine.objects.filter(attempt=running_attempt).order_by("node_rank", "seq")
    assert [(line.node_rank, line.seq, line.line) for line in lines] == [
        (0, 0, "epoch 1 loss 0.9"),
        (0, 1, "binary \ufffd junk"),
        (1, 0, "rank 1 ready"),
    ]


def test_it_keeps_a_diverged_loss(streams: Streams, running_attempt: Attempt) -> None:
    streams.add("metrics", metric(running_attempt, 0, loss=float("nan"), accuracy=None))

    streams.drain(streams.ingestor())

    point = MetricPoint.objects.get(attempt=running_attempt)
    assert point.loss != point.loss  # NaN
    assert point.accuracy is None


def test_it_acknowledges_and_skips_malformed_entries(
    streams: Streams, running_attempt: Attempt
) -> None:
    streams.add("metrics", "{not json")
    streams.add("metrics", {"job": running_attempt.job_id, "attempt": running_attempt.pk})
    streams.add("metrics", metric(running_attempt, 0) | {"seq": -1})
    streams.add("metrics", metric(running_attempt, 0, split="test"))
    streams.add("metrics", "[1, 2]")
    streams.add_raw("metrics", {"payload": "no data field"})
    streams.add("logs", log(running_attempt, 0, "x") | {"stream": "stdin"})
    streams.add("metrics", metric(running_attempt, 4))

    assert streams.drain(streams.ingestor()) == 8

    assert stored_points(running_attempt) == [(4, 0.2)]
    assert LogLine.objects.count() == 0
    assert streams.pending("metrics") == 0
    assert streams.pending("logs") == 0
