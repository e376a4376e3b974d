"""A running job whose ranks stop reporting steps is flagged stalled once per stall, with
`job_flagged`, and the flag clears when steps resume. Steps travel through the real ingest into
PostgreSQL; the stall limit is shortened by settings."""

from __future__ import annotations

import time
from typing import Any

from django.contrib.auth.models import User
from django.dispatch import receiver

from portal.jobs.models import Job
from portal.jobs.signals import job_flagged
from portal.jobs.watch import jobs_watch
from tests.api.conftest import TokenClient, client_for  # noqa: F401 - a fixture
from tests.factories import make_attempt, make_job, make_node
from tests.ingest.conftest import Streams, metric


def test_a_job_whose_steps_stop_is_flagged_stalled_once_and_cleared_when_they_resume(
    streams: Streams,
    transactional_db: None,
    owner: User,
    settings: Any,
    client_for: TokenClient,  # noqa: F811
) -> None:
    settings.TRAINYARD_STALL_MIN_S = 1.0
    settings.TRAINYARD_STALL_FACTOR = 10.0
    flagged: list[tuple[int, str, str]] = []

    @receiver(job_flagged, weak=False)
    def hear(sender: type[Job], job: Job, flag: str, detail: str, **kwargs: Any) -> None:
        flagged.append((job.pk, flag, detail))

    try:
        job = make_job(owner, state=Job.State.RUNNING)
        quiet = make_job(owner, state=Job.State.RUNNING)
        attempt = make_attempt(job, nodes=[make_node("st-a")])
        busy = make_attempt(quiet, nodes=[make_node("st-b")])
        ingestor = streams.ingestor()
        start = time.time()
        # Ten steps 10 ms apart: a median of 10 ms, so the 1 s minimum is the limit.
        for seq in range(10):
            streams.add("metrics", metric(attempt, seq, ts=start + seq * 0.01))
            streams.add("metrics", metric(busy, seq, ts=start + seq * 0.01))
        streams.drain(ingestor)
        assert jobs_watch().stalled == []

        time.sleep(1.3)
        streams.add("metrics", metric(busy, 10, ts=time.time()))
        streams.drain(ingestor)
        first = jobs_watch()
        assert first.stalled == [job.pk]
        assert jobs_watch().stalled == []  # one signal per stall
        assert [(pk, flag) for pk, flag, _ in flagged] == [(job.pk, "stalled")]
        assert "limit 1 s" in flagged[0][2]
        body = client_for(owner).get(f"/api/v1/jobs/{job.pk}/").json()
        assert body["stalled_at"] is not None
        assert client_for(owner).get(f"/api/v1/jobs/{quiet.pk}/").json()["stalled_at"] is None

        streams.add("metrics", metric(attempt, 10, ts=time.time()))
        streams.drain(ingestor)
        assert jobs_watch().cleared == [job.pk]
        job.refresh_from_db()
        assert job.stalled_at is None
        assert len(flagged) == 1
    finally:
        job_flagged.disconnect(hear)
