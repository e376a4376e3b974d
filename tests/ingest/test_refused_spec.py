"""A spec the node refuses at the door fails its job, with the node's reason, end to end:
the real agent task reports to a real Redis stream and real ingest applies it to PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User

from portal.jobs.models import Attempt, Job
from portal.jobs.scheduling import attempt_spec
from tests.factories import make_attempt, make_job, make_node
from tests.ingest.conftest import Streams
from tests.workers.support import signed_run
from workers import attempts
from workers.agent import run_attempt


def test_a_wrong_typed_spec_is_refused_by_the_node_and_fails_its_job_with_the_reason(
    streams: Streams,
    transactional_db: None,
    owner: User,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    worker = make_node("gpu-refuses")
    job = make_job(owner, state=Job.State.SCHEDULED, max_restarts=3)
    attempt = make_attempt(job, nodes=[worker], state=Attempt.State.STARTING)
    state_dir = tmp_path / "node"
    monkeypatch.setenv("TRAINYARD_NODE_NAME", worker.name)
    monkeypatch.setenv("TRAINYARD_NODE_STATE_DIR", str(state_dir))
    monkeypatch.setenv("TRAINYARD_STREAM_PREFIX", streams.prefix)
    spec = attempt_spec(
        job=job, attempt=attempt, node=worker, node_rank=0, gpu_indices=(), cpu_indices=(0,)
    ).to_json()
    spec["training"]["epochs"] = "30"  # a string where the schema says integer

    assert run_attempt(*signed_run(spec)) == "refused"
    # Refused before the claim: nothing on disk, nothing started.
    assert not attempts.attempt_dir(state_dir, attempt.pk).exists()

    assert streams.drain(streams.ingestor()) == 1
    job.refresh_from_db()
    attempt.refresh_from_db()
    # Not retryable: every attempt would carry the same spec, so restarts are not spent on it.
    assert (job.state, job.restarts) == (Job.State.FAILED, 0)
    assert attempt.state == Attempt.State.FAILED
    assert "the node refused the attempt spec" in job.state_reason
    assert "Expected `int`, got `str` - at `$.training.epochs`" in job.state_reason
    assert f"on {worker.name} (rank 0)" in job.state_reason
