"""At submit: the team a job is charged to, the queued-jobs limit, the priority range."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from portal.jobs.models import Job
from portal.jobs.scheduling import schedule_pass
from tests.factories import make_team, make_user
from tests.quotas.conftest import gpu_job, gpu_nodes, set_quota


def test_the_queued_jobs_limit_refuses_the_next_submit_naming_the_limit(owner, iris, custom_model):
    gpu_nodes(1)
    set_quota(owner, max_queued_jobs=2)
    gpu_job(owner, iris, custom_model)
    gpu_job(owner, iris, custom_model)
    with pytest.raises(ValidationError) as refused:
        gpu_job(owner, iris, custom_model)
    assert refused.value.message_dict == {
        "__all__": [
            "Your quota allows 2 queued jobs and 2 are queued: wait for one to start, "
            "or cancel one."
        ]
    }
    assert Job.objects.filter(owner=owner).count() == 2
    # Once one starts, there is room in the queue again.
    assert schedule_pass() == 2
    gpu_job(owner, iris, custom_model)


def test_a_teams_queued_jobs_limit_counts_every_members_jobs(owner, teammate, iris, custom_model):
    gpu_nodes(1)
    set_quota(owner.teams.get(), max_queued_jobs=1)
    gpu_job(teammate, iris, custom_model)
    with pytest.raises(ValidationError, match="Team vision's quota allows 1 queued jobs"):
        gpu_job(owner, iris, custom_model)


def test_the_cluster_default_applies_without_a_quota_row(owner, iris, custom_model, settings):
    gpu_nodes(1)
    settings.TRAINYARD_QUOTA_DEFAULTS = {**settings.TRAINYARD_QUOTA_DEFAULTS, "max_queued_jobs": 1}
    gpu_job(owner, iris, custom_model)
    with pytest.raises(ValidationError, match="Your quota allows 1 queued jobs"):
        gpu_job(owner, iris, custom_model)
    # A quota row's own value wins over the default.
    set_quota(owner, max_queued_jobs=5)
    gpu_job(owner, iris, custom_model)


def test_a_priority_outside_the_users_and_teams_range_is_refused_with_the_range(
    owner, teammate, iris, custom_model
):
    gpu_nodes(1)
    set_quota(owner, min_priority=-10, max_priority=20)
    set_quota(owner.teams.get(), max_priority=10)
    with pytest.raises(ValidationError) as refused:
        gpu_job(owner, iris, custom_model, priority=15)
    assert refused.value.message_dict == {
        "priority": ["Priority 15 is outside the allowed range: -10 to 10."]
    }
    with pytest.raises(ValidationError, match="allowed range: -10 to 10"):
        gpu_job(owner, iris, custom_model, priority=-11)
    assert gpu_job(owner, iris, custom_model, priority=10).priority == 10
    # The teammate has no own quota: only the team's bound applies.
    assert gpu_job(teammate, iris, custom_model, priority=-100).priority == -100


def test_the_job_is_charged_to_the_team_asked_for_if_the_user_is_in_it(owner, iris, custom_model):
    gpu_nodes(1)
    make_team("zebra", owner)
    make_team("aardvark", owner)
    make_team("strangers", make_user("someone"))
    assert str(gpu_job(owner, iris, custom_model).team) == "aardvark"
    assert str(gpu_job(owner, iris, custom_model, team="zebra").team) == "zebra"
    with pytest.raises(ValidationError) as refused:
        gpu_job(owner, iris, custom_model, team="strangers")
    assert refused.value.message_dict == {
        "team": ["You are not a member of a team named strangers; your teams: aardvark, zebra."]
    }
