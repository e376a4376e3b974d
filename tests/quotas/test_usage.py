"""Usage accounting: per job, it adds up exactly to the per-user and per-team totals and to
the buckets of a series, live while placements still run."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.utils import timezone

from portal.accounts.models import Team
from portal.jobs.models import Attempt, Job, Placement
from portal.jobs.usage import Usage, job_usage, usage_by, usage_by_job, usage_series
from tests.factories import make_attempt, make_job, make_node, make_team, make_user


def _share(
    attempt: Attempt, *, gpus: int, slots: int, start: datetime | None, end: datetime | None
) -> None:
    Placement.objects.filter(attempt=attempt).update(
        gpus=gpus, slots=slots, started_at=start, finished_at=end
    )


def _history(now: datetime) -> tuple[tuple[User, ...], tuple[Team, ...], list[Job]]:
    """Jobs of three users in two teams (and one without a team): finished, running (live),
    lost, never started, multi-node, CPU and GPU, some reaching back before the window."""
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    vision = make_team("vision", alice, bob)
    speech = make_team("speech", carol)
    nodes = [make_node(gpu_count=8), make_node(gpu_count=8)]
    jobs = []
    shapes = [
        (alice, vision, 2, 0, timedelta(hours=50), timedelta(hours=47), Attempt.State.SUCCEEDED),
        (alice, vision, 1, 0, timedelta(hours=3, seconds=0.123457), None, Attempt.State.RUNNING),
        (bob, vision, 0, 3, timedelta(hours=30), timedelta(hours=1), Attempt.State.FAILED),
        (bob, vision, 4, 0, timedelta(hours=5), None, Attempt.State.LOST),
        (carol, speech, 8, 0, timedelta(minutes=7, microseconds=13), None, Attempt.State.RUNNING),
        (carol, None, 0, 1, timedelta(hours=100), timedelta(hours=20), Attempt.State.SUCCEEDED),
        (carol, speech, 2, 0, None, None, Attempt.State.STARTING),
    ]
    for owner, team, gpus, slots, ago, ended, state in shapes:
        job = make_job(owner, team=team, state=Job.State.RUNNING, gpus_per_node=gpus)
        attempt = make_attempt(job, nodes=nodes, state=state)
        if state == Attempt.State.LOST:
            Attempt.objects.filter(pk=attempt.pk).update(finished_at=now - timedelta(hours=2))
        _share(
            attempt,
            gpus=gpus,
            slots=slots,
            start=now - ago if ago else None,
            end=now - ended if ended else None,
        )
        jobs.append(job)
    return (alice, bob, carol), (vision, speech), jobs


def test_usage_per_job_adds_up_to_the_per_user_and_per_team_totals(db):
    now = timezone.now()
    users, _teams, jobs = _history(now)
    for since in (None, now - timedelta(hours=24)):
        per_job = usage_by_job(since=since, now=now)
        by_owner: defaultdict[int, Usage] = defaultdict(Usage)
        by_team: defaultdict[int, Usage] = defaultdict(Usage)
        for job in jobs:
            spent = per_job.get(job.pk, Usage())
            by_owner[job.owner_id] += spent
            if job.team_id is not None:
                by_team[job.team_id] += spent
            # The job page's figure (from prefetched rows, in Python) is the same number.
            loaded = Job.objects.prefetch_related("attempts__placements").get(pk=job.pk)
            assert job_usage(loaded, since=since, now=now) == spent
        assert usage_by("owner", since=since, now=now) == dict(by_owner)
        assert usage_by("team", since=since, now=now) == {k: v for k, v in by_team.items() if v}
    alice = users[0]
    # Alice: 2 GPUs x 2 nodes x 3 h (finished) + 1 GPU x 2 nodes x 3.000034 h (running, live).
    assert usage_by("owner", since=None, now=now)[alice.pk].gpu_us == (
        2 * 2 * 3 * 3_600_000_000 + 2 * (3 * 3_600_000_000 + 123457)
    )
    # Bob's lost attempt counts until it was given up on (2 h ago), not until now.
    bob_lost = usage_by_job([jobs[3].pk], since=None, now=now)[jobs[3].pk]
    assert bob_lost.gpu_us == 4 * 2 * 3 * 3_600_000_000


def test_the_buckets_of_a_series_add_up_to_the_window_total(db):
    now = timezone.now()
    _users, teams, _jobs = _history(now)
    since = now - timedelta(hours=72)
    series = usage_series(since=since, now=now, bucket=timedelta(hours=1))
    assert len(series) == 72
    assert sum((usage for _, usage in series), Usage()) == sum(
        usage_by("owner", since=since, now=now).values(), Usage()
    )
    vision = teams[0]
    theirs = usage_series(since=since, now=now, bucket=timedelta(hours=6), team_ids=[vision.pk])
    assert (
        sum((usage for _, usage in theirs), Usage())
        == usage_by("team", since=since, now=now, ids=[vision.pk])[vision.pk]
    )


def test_a_running_job_counts_up_to_now(db):
    now = timezone.now()
    _users, _teams, jobs = _history(now)
    running = Job.objects.prefetch_related("attempts__placements").get(pk=jobs[4].pk)
    earlier = job_usage(running, now=now)
    later = job_usage(running, now=now + timedelta(minutes=1))
    # 8 GPUs on each of 2 nodes, one more minute.
    assert later.gpu_us - earlier.gpu_us == 16 * 60_000_000
