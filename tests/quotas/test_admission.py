"""At admission: a job over a limit waits and says which limit binds; later jobs still start."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from portal.jobs.models import Attempt, Job, Placement
from portal.jobs.quotas import QuotaLedger
from portal.jobs.scheduling import schedule_pass
from tests.factories import make_attempt, make_job, make_user
from tests.jobs.helpers import cpu_request, node, submit
from tests.quotas.conftest import gpu_job, gpu_nodes, set_quota


def test_a_job_over_the_gpu_quota_waits_naming_the_limit_and_a_smaller_one_starts(
    owner, iris, custom_model
):
    gpu_nodes(2)
    set_quota(owner, max_gpus=6)
    first = gpu_job(owner, iris, custom_model, gpus=4, priority=5)
    big = gpu_job(owner, iris, custom_model, gpus=4, priority=3)
    small = gpu_job(owner, iris, custom_model, gpus=2, priority=1)
    assert schedule_pass() == 2
    for job in (first, big, small):
        job.refresh_from_db()
    assert (first.state, big.state, small.state) == ("scheduled", "queued", "scheduled")
    assert big.state_reason.startswith(
        "Waiting for quota: owner's quota: 4 of 6 GPUs in use, this job asks for 4."
    )


def test_the_team_quota_binds_across_members(owner, teammate, iris, custom_model):
    gpu_nodes(1)
    set_quota(owner.teams.get(), max_gpus=4, max_running_jobs=1)
    gpu_job(owner, iris, custom_model, gpus=1)
    waiting = gpu_job(teammate, iris, custom_model, gpus=1)
    assert schedule_pass() == 1
    waiting.refresh_from_db()
    assert waiting.state_reason.startswith(
        "Waiting for quota: team vision's quota: 1 of 1 running jobs in use, this job asks for 1."
    )


def test_cpu_slot_and_slot_hour_limits_bind_cpu_jobs_only(owner, iris, custom_model):
    node(cpu_slots=8)
    gpu_nodes(1)
    set_quota(owner, max_cpu_slots=3, max_gpus=0)
    first = submit(owner, iris, custom_model, **cpu_request(procs=2))
    second = submit(owner, iris, custom_model, **cpu_request(procs=2))
    gpu = gpu_job(owner, iris, custom_model, gpus=1)
    assert schedule_pass() == 1
    second.refresh_from_db()
    gpu.refresh_from_db()
    assert Job.objects.get(pk=first.pk).state == "scheduled"
    assert "2 of 3 CPU slots in use, this job asks for 2" in second.state_reason
    assert "0 of 0 GPUs in use, this job asks for 1" in gpu.state_reason


def test_gpu_hours_in_the_window_block_new_gpu_jobs(owner, iris, custom_model, settings):
    settings.TRAINYARD_QUOTA_WINDOW_DAYS = 30
    worker = gpu_nodes(1)[0]
    set_quota(owner, max_gpu_hours=10)
    now = timezone.now()
    # 8 GPUs for 2 hours a week ago: 16 GPU-hours; and 8 GPUs for 2 hours 40 days ago, outside.
    for days in (7, 40):
        old = make_job(owner, state=Job.State.SUCCEEDED, gpus_per_node=8)
        attempt = make_attempt(old, nodes=[worker], state=Attempt.State.SUCCEEDED)
        Placement.objects.filter(attempt=attempt).update(
            gpus=8,
            slots=0,
            started_at=now - timedelta(days=days, hours=2),
            finished_at=now - timedelta(days=days),
        )
    job = gpu_job(owner, iris, custom_model)
    assert schedule_pass() == 0
    job.refresh_from_db()
    assert job.state_reason.startswith(
        "Waiting for quota: owner's quota: 16 of 10 GPU-hours used in the last 30 days."
    )
    set_quota(owner, max_gpu_hours=20)
    assert schedule_pass() == 1


def test_the_ledger_reads_in_a_fixed_number_of_queries_however_many_jobs_and_users(
    iris, custom_model, django_assert_max_num_queries
):
    users = [make_user() for _ in range(12)]
    for user in users:
        set_quota(user, max_gpus=1, max_gpu_hours=100)
    few = [make_job(users[0], gpus_per_node=1)]
    many = [make_job(user, gpus_per_node=1) for user in users for _ in range(3)]
    with django_assert_max_num_queries(6) as one:
        QuotaLedger.load(few)
    with django_assert_max_num_queries(len(one.captured_queries)):
        ledger = QuotaLedger.load(many)
    assert ledger.blocked(many[0]) is None
    ledger.charge(many[0])
    assert ledger.blocked(many[1]) is not None
    assert [v.limit for v in ledger.limits(many[1])] == ["gpus", "gpu_hours"]
