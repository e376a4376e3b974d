"""Several `manage.py ingest` processes on one consumer group, and one killed mid-batch: no
point or line is lost and none is stored twice."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable

from portal.jobs.models import Attempt, LogLine, MetricPoint
from portal.lib.streams import GROUP
from tests.ingest.conftest import Streams, ingest_command, log, metric

POINTS = 6000
LINES = 3000


def fill(streams: Streams, attempt: Attempt, points: range, lines: range) -> None:
    pipe = streams.redis.pipeline(transaction=False)
    for seq in points:
        pipe.xadd(streams.name("metrics"), {"data": _json(metric(attempt, seq))})
    for seq in lines:
        # Two node shares, as a two-node job's launchers write them.
        pipe.xadd(
            streams.name("logs"),
            {"data": _json(log(attempt, seq // 2, f"line {seq}", node_rank=seq % 2))},
        )
    pipe.execute()


def _json(payload: dict[str, object]) -> str:
    import json

    return json.dumps(payload)


def wait_until(
    condition: Callable[[], bool], processes: list[subprocess.Popen[bytes]], *, timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for process in processes:
            assert process.poll() is None, process.communicate()[0].decode()[-3000:]
        assert time.monotonic() < deadline, "ingest did not catch up in time"
        time.sleep(0.1)


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def assert_whole(attempt: Attempt) -> None:
    seqs = list(
        MetricPoint.objects.filter(attempt=attempt).order_by("seq").values_list("seq", flat=True)
    )
    assert seqs == list(range(POINTS))
    for node_rank in (0, 1):
        lines = list(
            LogLine.objects.filter(attempt=attempt, node_rank=node_rank)
            .order_by("seq")
            .values_list("seq", flat=True)
        )
        assert lines == list(range(LINES // 2))


def test_two_ingest_processes_share_the_streams_with_no_gap_and_no_duplicate(
    streams: Streams, running_attempt: Attempt, isolated_channel_layer: str
) -> None:
    processes = [
        ingest_command(streams, isolated_channel_layer, "--consumer", name, "--batch", "200")
        for name in ("ingest-a", "ingest-b")
    ]
    try:
        # Entries arrive while both run, in several waves, so both take batches of them.
        for wave in range(6):
            fill(
                streams,
                running_attempt,
                range(wave * POINTS // 6, (wave + 1) * POINTS // 6),
                range(wave * LINES // 6, (wave + 1) * LINES // 6),
            )
            time.sleep(0.2)
        wait_until(
            lambda: (
                MetricPoint.objects.filter(attempt=running_attempt).count() == POINTS
                and LogLine.objects.filter(attempt=running_attempt).count() == LINES
            ),
            processes,
        )
        consumers = {
            c["name"].decode(): c
            for c in streams.redis.xinfo_consumers(streams.name("metrics"), GROUP)
        }
        assert set(consumers) == {"ingest-a", "ingest-b"}
    finally:
        stop(processes)
    assert_whole(running_attempt)
    assert streams.pending("metrics") == streams.pending("logs") == 0


def test_an_ingest_killed_mid_batch_loses_nothing_and_its_successor_duplicates_nothing(
    streams: Streams, running_attempt: Attempt, isolated_channel_layer: str
) -> None:
    fill(streams, running_attempt, range(POINTS), range(LINES))
    first = ingest_command(
        streams, isolated_channel_layer, "--consumer", "doomed", "--batch", "1000"
    )
    try:
        # Kill it while it holds entries it has read and not acknowledged: mid-batch.
        wait_until(
            lambda: (
                MetricPoint.objects.filter(attempt=running_attempt).exists()
                and streams.redis.xpending(streams.name("metrics"), GROUP)["pending"] > 0
            ),
            [first],
        )
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=15)
    stored_then = MetricPoint.objects.filter(attempt=running_attempt).count()
    assert stored_then < POINTS, "the first ingest finished before it could be killed"
    assert streams.pending("metrics") > 0

    second = ingest_command(
        streams, isolated_channel_layer, "--consumer", "heir", "--claim-idle-ms", "500"
    )
    try:
        wait_until(
            lambda: (
                MetricPoint.objects.filter(attempt=running_attempt).count() == POINTS
                and LogLine.objects.filter(attempt=running_attempt).count() == LINES
                and streams.pending("metrics") == 0
            ),
            [second],
        )
    finally:
        stop([second])
    assert_whole(running_attempt)
