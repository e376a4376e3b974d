"""Channel-layer fan-out: after the commit, to the right groups, and never raising."""

from __future__ import annotations

import logging

from portal.jobs import events
from portal.jobs.models import Job
from tests.factories import make_attempt, make_job
from tests.jobs.helpers import layer_receive, listen


def test_nothing_is_sent_before_the_commit(
    owner, channel_layer, django_capture_on_commit_callbacks
):
    job = make_job(owner)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        events.job_state_changed(job)
    assert len(callbacks) == 1


def test_metrics_and_logs_go_to_the_jobs_group(
    owner, channel_layer, django_capture_on_commit_callbacks
):
    job = make_job(owner, state=Job.State.RUNNING)
    attempt = make_attempt(job)
    channel = listen(channel_layer, events.job_group(job.pk))
    point: events.MetricPointPayload = {
        "attempt": attempt.pk,
        "seq": 0,
        "split": "train",
        "step": 1,
        "epoch": 0,
        "loss": 0.5,
        "accuracy": None,
        "ts": 1.0,
    }
    line: events.LogLinePayload = {
        "attempt": attempt.pk,
        "node_rank": 0,
        "seq": 0,
        "rank": 0,
        "local_rank": 0,
        "stream": "stdout",
        "line": "hi",
        "ts": 1.0,
    }
    with django_capture_on_commit_callbacks(execute=True):
        events.job_metrics_added(job.pk, [point])
        events.job_logs_added(job.pk, [line])
        events.job_logs_added(job.pk, [])  # nothing to say: nothing sent
    assert layer_receive(channel_layer, channel, 2) == [
        {"type": "job.metrics", "job": job.pk, "points": [point]},
        {"type": "job.logs", "job": job.pk, "lines": [line]},
    ]


def test_a_broken_channel_layer_is_logged_not_raised(
    owner, settings, caplog, django_capture_on_commit_callbacks
):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # Nothing listens on port 1.
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
        }
    }
    job = make_job(owner)
    with (
        caplog.at_level(logging.WARNING, logger="portal.jobs.events"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        events.job_state_changed(job)
    assert "pages catch up from PostgreSQL" in caplog.text
