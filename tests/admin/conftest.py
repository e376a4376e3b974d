"""A world with rows in every table, for the admin pages to show."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from portal.accounts.models import ApiToken, Quota
from portal.accounts.services import api_token_create
from portal.cluster.models import NodeEvent, NodeSample
from portal.dashboard.services import cluster_sample_record
from portal.experiments.models import Search, Trial
from portal.jobs.models import (
    AttemptPhase,
    Checkpoint,
    Job,
    JobLogVolume,
    JobTemplate,
    LogLine,
    MetricBlock,
    MetricPoint,
    RankSample,
)
from portal.notifications.models import (
    Event,
    Notification,
    NotificationPreferences,
    Webhook,
    WebhookDelivery,
)
from portal.registry.models import ModelVersion
from tests.factories import make_attempt, make_job, make_node, make_team, make_user

_world = itertools.count(1)


def build_world() -> None:
    """One more of everything: a team, a token, two nodes, a job with two attempts (placed on
    both nodes) and their metric points and log lines. Called again, it adds as many again."""
    n = next(_world)
    owner = make_user(f"researcher{n}")
    team = make_team(f"team{n}", owner)
    Quota.objects.create(user=owner, max_gpus=8)
    Quota.objects.create(team=team, max_queued_jobs=10, max_priority=10)
    api_token_create(user=owner, name=f"ci{n}", scope=ApiToken.Scope.READ, expires_in=None)
    nodes = [make_node(f"cpu{n}-a"), make_node(f"cpu{n}-b")]
    NodeEvent.objects.create(node=nodes[0], kind=NodeEvent.Kind.CORDON, actor=owner, reason="hot")
    NodeSample.objects.bulk_create(
        NodeSample(node=node, at=timezone.now(), slot=n, gpu=None, memory_used=1, memory_total=2)
        for node in nodes
    )
    job = make_job(owner, state=Job.State.RUNNING, nodes=2)
    now = timezone.now()
    for number, state in ((1, "lost"), (2, "running")):
        attempt = make_attempt(job, nodes=nodes, state=state, number=number)
        MetricPoint.objects.bulk_create(
            MetricPoint(
                job=job,
                attempt=attempt,
                seq=seq,
                split="train",
                step=seq,
                epoch=0,
                loss=1.0,
                reported_at=now,
            )
            for seq in range(3)
        )
        LogLine.objects.bulk_create(
            LogLine(
                job=job,
                attempt=attempt,
                node_rank=rank,
                seq=0,
                stream="stdout",
                line=f"rank {rank} says hello",
                reported_at=now,
            )
            for rank in range(2)
        )
        AttemptPhase.objects.bulk_create(
            AttemptPhase(attempt=attempt, node_rank=rank, phase="first_step", at=now)
            for rank in range(2)
        )
        RankSample.objects.bulk_create(
            RankSample(
                job=job,
                attempt=attempt,
                node_rank=rank,
                rank=rank,
                local_rank=0,
                step=3,
                steps=3,
                step_time_s=0.01,
                samples_per_s=1600.0,
                reported_at=now,
            )
            for rank in range(2)
        )
        MetricBlock.objects.create(
            job=job,
            attempt=attempt,
            split="train",
            block=0,
            count=3,
            first_at=now,
            last_at=now,
            loss_min=1.0,
            loss_max=1.0,
            loss_last=1.0,
        )
        Checkpoint.objects.create(
            job=job,
            attempt=attempt,
            epoch=1,
            step=4,
            name=f"attempt-{attempt.pk}/epoch-1.pt",
            sha256="ab" * 32,
            size_bytes=1234,
            val_loss=0.5,
            val_accuracy=0.75,
            is_best=True,
            created_at=now,
        )

        ModelVersion.objects.create(
            name=f"model{n}",
            version=attempt.number,
            owner=owner,
            job=job,
            attempt=attempt,
            checkpoint_name=f"attempt-{attempt.pk}/best.pt",
            checkpoint_sha256="0" * 64,
            dataset=job.dataset,
            architecture={"architecture": "mlp"},
            input_shape=[4],
            outputs=3,
            task="classification",
            epoch=1,
            safetensors_uri="file:///srv/m.safetensors",
            safetensors_sha256="1" * 64,
            torchscript_uri="file:///srv/m.pt",
            torchscript_sha256="2" * 64,
            manifest_uri="file:///srv/model.json",
            manifest_sha256="3" * 64,
        )
    JobLogVolume.objects.create(job=job, bytes=64, lines=4)
    search = Search.objects.create(
        owner=owner,
        name=f"search{n}",
        dataset=job.dataset,
        model=job.model,
        base_request=job.spec,
        space=[{"name": "training.learning_rate", "kind": "uniform", "low": 0.01, "high": 0.1}],
        direction=Search.Direction.MINIMIZE,
        max_trials=4,
        parallelism=2,
    )
    Trial.objects.create(search=search, number=0, job=job, params={"training.learning_rate": 0.05})
    cluster_sample_record()
    _notifications_world(owner, job)


def _notifications_world(owner: User, job: Job) -> None:
    """A template, a notification, preferences, and a webhook with a delivery."""
    JobTemplate.objects.create(name=f"template of {owner}", owner=owner, spec=job.spec)
    Notification.objects.create(user=owner, event=Event.JOB_FAILED, title="failed", url="/jobs/1/")
    NotificationPreferences.objects.create(user=owner)
    webhook = Webhook.objects.create(
        owner=owner, url="https://hooks.example.com/", secret="whsec_x", events=[Event.JOB_FAILED]
    )
    WebhookDelivery.objects.create(webhook=webhook, event=Event.JOB_FAILED, payload={})


@pytest.fixture
def world(db: None) -> Callable[[], None]:
    build_world()
    return build_world


@pytest.fixture
def admin_client_for(client: Client, admin_user: User) -> Client:
    """A client signed in as a staff superuser (what the Django admin requires)."""
    client.force_login(admin_user)
    return client
