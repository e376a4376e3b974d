"""Preemption for real: a high-priority job stops a preemptible one on the stack's node agent;
the victim's ranks (real torchrun, CPU) checkpoint on SIGTERM within the grace, and its next
attempt resumes from exactly that checkpoint."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from django.conf import settings

from portal.accounts.services import api_token_create
from portal.catalog.models import Dataset, ModelArchitecture
from portal.catalog.services import catalog_ensure_builtins
from portal.cluster.models import Node
from portal.jobs.models import Attempt, Checkpoint, Job, LogLine, MetricPoint
from tests.e2e.conftest import Stack, wait_for
from tests.factories import make_user

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
timing = logging.getLogger("tests.e2e.timing")


def _body(name: str, *, epochs: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "dataset": Dataset.objects.get(slug="iris").pk,
        "model": ModelArchitecture.objects.get(slug="mlp").pk,
        "hyperparameters": {"hidden_sizes": [16, 16], "activation": "relu", "dropout": 0.0},
        "training": {
            "epochs": epochs,
            "batch_size": 16,
            "learning_rate": 0.01,
            "optimizer": "adam",
            "loss": "cross_entropy",
            "seed": 7,
            # No epoch checkpoint before the end: the only one is the one SIGTERM made.
            "checkpoint_every": 10_000,
        },
        "resources": {"nodes": 1, "procs_per_node": 2},
        **extra,
    }


def test_a_preempted_job_checkpoints_within_its_grace_and_resumes_from_that_checkpoint(
    stack: Stack,
) -> None:
    catalog_ensure_builtins()
    token = api_token_create(user=make_user("researcher"), name="e2e").plaintext
    headers = {"Authorization": f"Bearer {token}"}
    wait_for(
        lambda: Node.objects.filter(name=stack.node_name, state=Node.State.ONLINE).exists(),
        timeout=30,
        what=f"node {stack.node_name} to register",
    )

    def submit(body: dict[str, Any]) -> int:
        # A 503 says the control worker did not answer the model check yet (a busy machine,
        # a stack still starting): ask again, as a script would.
        for _ in range(6):
            response = httpx.post(
                f"{stack.base_url}/api/v1/jobs/", json=body, headers=headers, timeout=30
            )
            if response.status_code != 503:
                break
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    victim_id = submit(_body("victim", epochs=10_000, scheduling={"preemptible": True}))
    try:
        # Running longer than the stack's TRAINYARD_PREEMPT_MIN_RUN_S (3 s), and training.
        wait_for(
            lambda: MetricPoint.objects.filter(job_id=victim_id).count() > 50,
            timeout=120,
            what="the victim to train",
        )
        first = Attempt.objects.get(job_id=victim_id)
        urgent_id = submit(_body("urgent", epochs=3, priority=10))

        wait_for(
            lambda: Attempt.objects.filter(pk=first.pk, state=Attempt.State.PREEMPTED).exists(),
            timeout=90,
            what="the victim's attempt to stop as preempted",
        )
        first.refresh_from_db()
        assert first.preempted_by_id == urgent_id and first.preempted_at is not None
        wait_for(
            lambda: Checkpoint.objects.filter(attempt=first).exists(),
            timeout=15,
            what="the SIGTERM checkpoint to be recorded",
        )
        [saved] = Checkpoint.objects.filter(attempt=first)
        # Inside an epoch `step-<n>.pt`; at an epoch's end (the SIGTERM came while it
        # validated, or at its last step) the epoch's own file.
        assert re.fullmatch(
            rf"attempt-{first.pk}/(step-{saved.step}|epoch-{saved.epoch})\.pt", saved.name
        ), saved.name
        # Written after the scheduler told it to stop, and well within the grace.
        took = (saved.created_at - first.preempted_at).total_seconds()
        timing.warning("preempted -> checkpoint written: %.2fs", took)
        assert 0 <= took < settings.TRAINYARD_PREEMPT_GRACE_S
        stopped_line = LogLine.objects.filter(
            attempt=first, line__contains="trainyard: stopped: checkpointed"
        ).get()
        assert f"{saved.name} (epoch {saved.epoch}, step {saved.step})" in stopped_line.line
        assert "preempted by job" in first.reason

        victim = Job.objects.get(pk=victim_id)
        assert (victim.restarts, victim.preemptions) == (0, 1)
        api = httpx.get(
            f"{stack.base_url}/api/v1/jobs/{victim_id}/", headers=headers, timeout=30
        ).json()
        assert api["preemptions"] == 1
        assert api["last_preemption"]["by_job"] == urgent_id
        assert datetime.fromisoformat(api["last_preemption"]["at"]).astimezone(UTC) == (
            first.preempted_at
        )

        # The urgent job gets the room and finishes; then the victim runs again.
        wait_for(
            lambda: Job.objects.get(pk=urgent_id).is_terminal,
            timeout=180,
            what="the urgent job to finish",
        )
        assert Job.objects.get(pk=urgent_id).state == Job.State.SUCCEEDED
        wait_for(
            lambda: MetricPoint.objects.filter(
                job_id=victim_id, attempt__number=2, split=MetricPoint.Split.TRAIN
            ).exists(),
            timeout=120,
            what="the victim's second attempt to train",
        )
        second = Attempt.objects.get(job_id=victim_id, number=2)
        resumed = LogLine.objects.filter(attempt=second, line__contains="resuming after").first()
        assert resumed is not None
        assert f"(step {saved.step}) from " in resumed.line
        assert resumed.line.endswith(f"attempt-{first.pk}/latest.pt")
        # Step continuity: the next attempt's first step is the one after the checkpoint.
        first_step = (
            MetricPoint.objects.filter(attempt=second, split=MetricPoint.Split.TRAIN)
            .order_by("seq")
            .values_list("step", "epoch")
            .first()
        )
        assert first_step == (saved.step + 1, saved.epoch + 1)
        last_before = (
            MetricPoint.objects.filter(attempt=first, split=MetricPoint.Split.TRAIN)
            .order_by("-seq")
            .values_list("step", flat=True)
            .first()
        )
        assert last_before == saved.step
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.logs()}") from exc
    finally:
        httpx.post(f"{stack.base_url}/api/v1/jobs/{victim_id}/cancel/", headers=headers, timeout=30)
        wait_for(
            lambda: Job.objects.get(pk=victim_id).is_terminal,
            timeout=60,
            what="the victim to be cancelled",
        )
