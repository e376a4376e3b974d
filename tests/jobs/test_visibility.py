"""Who sees which job: the owner, teammates and admins; nobody else, not even by id."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import Http404

from portal.jobs.selectors import job_get_visible, jobs_visible_to
from tests.factories import make_team, make_user
from tests.jobs.helpers import node, submit


@pytest.fixture
def job(owner, teammate, iris, mlp):
    node()
    return submit(owner, iris, mlp)


def test_the_owner_sees_their_job(owner, job):
    assert job_get_visible(user=owner, job_id=job.pk) == job
    assert list(jobs_visible_to(owner)) == [job]


def test_a_teammate_sees_the_teams_job(teammate, job):
    assert job_get_visible(user=teammate, job_id=job.pk) == job
    assert list(jobs_visible_to(teammate)) == [job]


def test_an_outsider_gets_404_for_another_users_job(outsider, job):
    with pytest.raises(Http404):
        job_get_visible(user=outsider, job_id=job.pk)
    assert not jobs_visible_to(outsider).exists()


def test_an_anonymous_user_sees_nothing(job):
    with pytest.raises(Http404):
        job_get_visible(user=AnonymousUser(), job_id=job.pk)
    assert not jobs_visible_to(AnonymousUser()).exists()


def test_an_admin_sees_every_job(admin_user, job):
    assert job_get_visible(user=admin_user, job_id=job.pk) == job


def test_a_job_in_several_of_the_users_teams_is_listed_once(owner, teammate, job):
    make_team("second", owner, teammate)
    assert jobs_visible_to(teammate).count() == 1


def test_a_member_of_another_team_does_not_see_it(job):
    stranger = make_user("stranger")
    make_team("other", stranger)
    with pytest.raises(Http404):
        job_get_visible(user=stranger, job_id=job.pk)


def test_an_unknown_id_is_404(owner, job):
    with pytest.raises(Http404):
        job_get_visible(user=owner, job_id=job.pk + 1000)
