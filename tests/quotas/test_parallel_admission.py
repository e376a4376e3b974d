"""Parallel submissions from two OS processes never over-admit a quota.

Each round, two spawned processes (each its own interpreter, Django and PostgreSQL
connection) submit 25 one-GPU jobs each, as fast as they can, with a scheduler pass after
every 5th submit (so passes race each other and the other process's submits), against a
quota of 8 GPUs; the cluster has room for far more. Exactly 8 are admitted every round, over
20 rounds: for one user's quota, and for a team's quota shared by two users who submit from
different processes.
"""

from __future__ import annotations

import multiprocessing

import pytest
from django.db.models import Sum

from portal.jobs.models import Job, Placement
from portal.jobs.scheduling import schedule_pass
from tests.factories import make_team, make_user
from tests.ingest.conftest import database_url
from tests.quotas.conftest import gpu_nodes, set_quota
from tests.quotas.race import submit_and_schedule

ROUNDS = 20
PER_PROCESS = 25
PASS_EVERY = 5
QUOTA_GPUS = 8


def _rounds(usernames: tuple[list[str], list[str]], request: dict[str, object]) -> list[int]:
    """Run the rounds in two processes; after each, settle with one more pass and count the
    GPUs held by the round's jobs. Returns the GPUs admitted per round."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(3)
    processes = [
        context.Process(
            target=submit_and_schedule,
            args=(database_url(), names, PER_PROCESS, request, barrier, PASS_EVERY),
        )
        for names in usernames
    ]
    for process in processes:
        process.start()
    admitted = []
    try:
        for first, second in zip(*usernames, strict=True):
            barrier.wait(timeout=120)  # go
            barrier.wait(timeout=120)  # both processes are done with the round
            schedule_pass()
            owners = [first, second]
            gpus = Placement.objects.filter(attempt__job__owner__username__in=owners).aggregate(
                total=Sum("gpus")
            )["total"]
            admitted.append(gpus or 0)
            # Clear the round's queue, so later rounds' passes stay as cheap as the first.
            Job.objects.filter(owner__username__in=owners, state=Job.State.QUEUED).update(
                state=Job.State.CANCELLED
            )
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
    assert [process.exitcode for process in processes] == [0, 0]
    return admitted


@pytest.mark.django_db(transaction=True)
def test_a_users_quota_of_8_gpus_admits_exactly_8_of_50_parallel_submissions(iris, custom_model):
    gpu_nodes(24)  # 192 GPUs: capacity never binds, only the quota does
    users = [make_user(f"racer{index}") for index in range(ROUNDS)]
    for user in users:
        set_quota(user, max_gpus=QUOTA_GPUS)
    names = [user.username for user in users]
    request = {"dataset": iris.pk, "model": custom_model.pk, "resources": {"gpus_per_node": 1}}

    # Both processes submit as the same user each round.
    admitted = _rounds((names, names), request)

    assert admitted == [QUOTA_GPUS] * ROUNDS
    assert Job.objects.filter(owner__in=users).count() == ROUNDS * 2 * PER_PROCESS


@pytest.mark.django_db(transaction=True)
def test_a_team_quota_of_8_gpus_shared_by_two_users_admits_exactly_8(iris, custom_model):
    gpu_nodes(24)
    left, right = [], []
    for index in range(ROUNDS):
        a, b = make_user(f"left{index}"), make_user(f"right{index}")
        set_quota(make_team(f"team{index:02d}", a, b), max_gpus=QUOTA_GPUS)
        left.append(a.username)
        right.append(b.username)
    request = {"dataset": iris.pk, "model": custom_model.pk, "resources": {"gpus_per_node": 1}}

    admitted = _rounds((left, right), request)

    assert admitted == [QUOTA_GPUS] * ROUNDS
    # Each round both users got jobs in: the team's limit, not one user's, was shared.
    held = Job.objects.exclude(state=Job.State.CANCELLED).values_list("team__name", flat=True)
    assert len(set(held)) == ROUNDS
