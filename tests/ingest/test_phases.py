"""`attempt.phase` events become AttemptPhase rows (first report wins, fenced by attempt id),
and the API returns every attempt's phases, the portal's own among them, in phase order."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.models import User

from portal.jobs.models import Attempt, AttemptPhase, Job
from portal.jobs.phases import PHASES
from tests.api.conftest import TokenClient, client_for  # noqa: F401 - a fixture
from tests.factories import make_attempt, make_job, make_node
from tests.ingest.conftest import Streams
from tests.ingest.test_events_and_health import exited

T0 = 1_750_000_000.0


def phase(
    attempt: Attempt, name: str, ts: float, *, node: str, node_rank: int = 0
) -> dict[str, Any]:
    return {
        "type": "attempt.phase",
        "job": attempt.job_id,
        "attempt": attempt.pk,
        "node": node,
        "node_rank": node_rank,
        "phase": name,
        "ts": ts,
    }


def test_phases_are_stored_per_node_once_and_only_for_the_current_attempt(
    streams: Streams, transactional_db: None, owner: User
) -> None:
    job = make_job(owner, state=Job.State.RUNNING)
    lost = make_attempt(job, nodes=[make_node("ph-a")], state=Attempt.State.LOST)
    attempt = make_attempt(job, nodes=[make_node("ph-b"), make_node("ph-c")])
    streams.add("events", phase(attempt, "received", T0 + 1, node="ph-b"))
    streams.add("events", phase(attempt, "received", T0 + 2, node="ph-c", node_rank=1))
    # Delivered twice, the second time with another time: the first report stands.
    streams.add("events", phase(attempt, "received", T0 + 9, node="ph-b"))
    streams.add("events", phase(lost, "first_step", T0 + 3, node="ph-a"))
    streams.add("events", {**phase(attempt, "first_step", T0, node="ph-b"), "phase": "nap"})
    streams.drain(streams.ingestor())
    rows = AttemptPhase.objects.order_by("node_rank")
    assert [(r.attempt_id, r.node_rank, r.phase, r.at.timestamp()) for r in rows] == [
        (attempt.pk, 0, "received", T0 + 1),
        (attempt.pk, 1, "received", T0 + 2),
    ]


def test_the_api_returns_an_attempts_phases_in_order_with_the_portals_own(
    streams: Streams,
    transactional_db: None,
    owner: User,
    client_for: TokenClient,  # noqa: F811
) -> None:
    job = make_job(owner, state=Job.State.RUNNING, created_at=datetime.fromtimestamp(T0, UTC))
    attempt = make_attempt(job, nodes=[make_node("ph-d")])
    Attempt.objects.filter(pk=attempt.pk).update(created_at=datetime.fromtimestamp(T0 + 1, UTC))
    for offset, name in enumerate(
        [
            "received",
            "dataset_fetched",
            "torchrun_started",
            "rendezvous_done",
            "first_step",
            "last_step",
        ],
        start=2,
    ):
        streams.add("events", phase(attempt, name, T0 + offset, node="ph-d"))
    streams.add("events", exited(attempt, "ph-d"))
    streams.drain(streams.ingestor())

    body = client_for(owner).get(f"/api/v1/jobs/{job.pk}/").json()
    [shown] = body["attempts"]
    assert [p["phase"] for p in shown["phases"]] == list(PHASES)
    assert [p["node_rank"] for p in shown["phases"]] == [None, None, 0, 0, 0, 0, 0, 0, None]
    times = [datetime.fromisoformat(p["at"]).timestamp() for p in shown["phases"]]
    assert times[:8] == [T0 + n for n in range(8)]
    assert times[8] >= times[7]  # exited: when the portal stored the exit
    assert body["stalled_at"] is None and body["idle_at"] is None
