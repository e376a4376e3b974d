"""The job list at scale: filters in the URL, sortable columns, keyset pages, and cancelling
several jobs at once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from portal.jobs import views
from portal.jobs.listing import cursor_encode
from portal.jobs.models import Job
from tests.factories import make_job

LIST = "/jobs/"


def listed(response: Any) -> list[int]:
    assert response.status_code == 200
    return [row["job"].pk for row in response.context["rows"]]


def test_the_url_filters_to_one_users_failed_jobs(
    client: Client, owner: User, teammate: User
) -> None:
    team = teammate.teams.get()
    wanted = [
        make_job(teammate, state=Job.State.FAILED, team=team, name=f"broken-{n}") for n in range(2)
    ]
    make_job(teammate, state=Job.State.SUCCEEDED, team=team)
    make_job(owner, state=Job.State.FAILED)
    client.force_login(owner)

    response = client.get(LIST, {"owner": "teammate", "state": "failed"})

    assert sorted(listed(response)) == sorted(job.pk for job in wanted)
    # The same link, shared, shows the same view; the form shows the filters it applies.
    assert 'value="failed" selected' in response.content.decode()
    assert listed(client.get(f"{LIST}?state=failed&owner=teammate")) == listed(response)


def test_me_and_my_teams_narrow_the_list(client: Client, owner: User, teammate: User) -> None:
    team = teammate.teams.get()
    mine = make_job(owner)
    ours = make_job(teammate, team=team)
    client.force_login(owner)

    assert listed(client.get(LIST, {"owner": "me"})) == [mine.pk]
    assert listed(client.get(LIST, {"owner": "team"})) == [ours.pk]
    assert listed(client.get(LIST, {"team": team.pk})) == [ours.pk]


def test_a_normal_user_cannot_filter_their_way_to_an_outsiders_jobs(
    client: Client, owner: User, outsider: User
) -> None:
    make_job(outsider, state=Job.State.FAILED)
    mine = make_job(owner, state=Job.State.FAILED)
    client.force_login(owner)

    response = client.get(LIST, {"owner": "outsider", "state": "failed"})

    # "outsider" is no choice of theirs: that filter is refused and the rest still applies.
    assert listed(response) == [mine.pk]
    assert response.context["form"].errors["owner"]
    assert b'data-owner="outsider"' not in response.content


def test_search_pool_and_time_range_filters(client: Client, owner: User) -> None:
    now = timezone.now()
    old = make_job(owner, name="resnet-old", created_at=now - timedelta(days=10))
    new = make_job(owner, name="resnet-new", pool="a100")
    make_job(owner, name="bert")
    client.force_login(owner)

    assert sorted(listed(client.get(LIST, {"q": "RESNET"}))) == sorted([old.pk, new.pk])
    assert listed(client.get(LIST, {"pool": "a100"})) == [new.pk]
    since = (now - timedelta(days=2)).date().isoformat()
    assert old.pk not in listed(client.get(LIST, {"q": "resnet", "since": since}))
    until = (now - timedelta(days=5)).date().isoformat()
    assert listed(client.get(LIST, {"until": until})) == [old.pk]


def test_a_bad_filter_value_is_reported_and_ignored(client: Client, owner: User) -> None:
    job = make_job(owner)
    client.force_login(owner)

    response = client.get(LIST, {"state": "exploded", "since": "yesterday"})

    assert listed(response) == [job.pk]
    assert set(response.context["form"].errors) == {"state", "since"}


@pytest.mark.parametrize("sort", ["-created", "created", "name", "-name", "state", "-state"])
def test_keyset_pages_walk_the_whole_list_both_ways_without_repeats(
    client: Client, owner: User, sort: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = timezone.now()
    states = [Job.State.QUEUED, Job.State.FAILED, Job.State.SUCCEEDED]
    # Equal creation times and names: the id must break every tie.
    jobs = [
        make_job(
            owner,
            name=f"job-{n % 4}",
            state=states[n % 3],
            created_at=now - timedelta(minutes=n // 2),
        )
        for n in range(23)
    ]
    client.force_login(owner)
    monkeypatch.setattr(views, "JOBS_PER_PAGE", 5)

    seen: list[int] = []
    pages = []
    response = client.get(LIST, {"sort": sort})
    for _ in range(10):
        pages.append(listed(response))
        seen += pages[-1]
        older = response.context["page"].older
        if older is None:
            break
        response = client.get(LIST, {"sort": sort, "after": older})
    assert sorted(seen) == sorted(job.pk for job in jobs)
    assert len(seen) == len(set(seen))
    assert [len(page) for page in pages] == [5, 5, 5, 5, 3]
    # And back from the last page to the first.
    back = [pages[-1]]
    for _ in range(10):
        newer = response.context["page"].newer
        if newer is None:
            break
        response = client.get(LIST, {"sort": sort, "before": newer})
        back.append(listed(response))
    assert back[::-1] == pages

    # Each page is in the sort's order.
    column = {"created": "created_at", "name": "name", "state": "state"}[sort.lstrip("-")]
    keys = [
        (getattr(job, column), job.pk) for job in sorted(jobs, key=lambda job: seen.index(job.pk))
    ]
    assert keys == sorted(keys, reverse=sort.startswith("-"))


def test_a_stale_or_forged_cursor_starts_at_the_first_page(client: Client, owner: User) -> None:
    jobs = [make_job(owner) for _ in range(3)]
    client.force_login(owner)
    first = listed(client.get(LIST))

    for cursor in ["garbage", cursor_encode("not a date", 5), cursor_encode(timezone.now(), -1)]:
        assert listed(client.get(LIST, {"after": cursor})) == first
    assert sorted(first) == sorted(job.pk for job in jobs)


def test_the_list_costs_the_same_queries_for_few_and_many_jobs(
    client: Client, owner: User, teammate: User
) -> None:
    make_job(owner)
    client.force_login(owner)
    with CaptureQueriesContext(connection) as few:
        client.get(LIST, {"state": "queued"})
    team = teammate.teams.get()
    for n in range(60):
        make_job(owner if n % 2 else teammate, team=team)

    with CaptureQueriesContext(connection) as many:
        response = client.get(LIST, {"state": "queued"})

    assert len(listed(response)) == 50
    assert len(many.captured_queries) == len(few.captured_queries)


def test_cancel_selected_cancels_two_queued_jobs_at_once_and_skips_the_rest(
    client: Client, owner: User, outsider: User
) -> None:
    first, second = make_job(owner), make_job(owner)
    done = make_job(owner, state=Job.State.SUCCEEDED)
    theirs = make_job(outsider)
    client.force_login(owner)
    back = f"{LIST}?state=queued"

    response = client.post(
        reverse("jobs:cancel-many"),
        {"job": [first.pk, second.pk, done.pk, theirs.pk, "x"], "next": back},
    )

    assert response.status_code == 302 and response["Location"] == back
    states = dict(Job.objects.values_list("pk", "state"))
    assert states[first.pk] == states[second.pk] == Job.State.CANCELLED
    assert states[done.pk] == Job.State.SUCCEEDED
    assert states[theirs.pk] == Job.State.QUEUED
    followed = client.get(back)
    assert f"Cancelling 2 jobs: #{first.pk}, #{second.pk}." in followed.content.decode()


def test_cancel_selected_never_redirects_off_site(client: Client, owner: User) -> None:
    job = make_job(owner)
    client.force_login(owner)

    response = client.post(
        reverse("jobs:cancel-many"), {"job": [job.pk], "next": "https://evil.example/"}
    )

    assert response["Location"] == reverse("jobs:list")


def test_cancel_selected_needs_a_post_and_the_csrf_token(owner: User) -> None:
    job = make_job(owner)
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)

    assert client.get(reverse("jobs:cancel-many")).status_code == 405
    assert client.post(reverse("jobs:cancel-many"), {"job": [job.pk]}).status_code == 403
    assert Job.objects.get(pk=job.pk).state == Job.State.QUEUED


def test_every_job_gets_a_checkbox_and_only_unfinished_ones_can_be_cancelled(
    client: Client, owner: User
) -> None:
    queued = make_job(owner)
    done = make_job(owner, state=Job.State.FAILED)
    client.force_login(owner)

    content = client.get(LIST).content.decode()

    # A finished job can be picked to compare, but "Cancel selected" counts only the others.
    assert (
        f'name="job" value="{queued.pk}" form="bulk-cancel" data-role="select" data-cancellable'
        in content
    )
    assert (
        f'name="job" value="{done.pk}" form="bulk-cancel" data-role="select" aria-label' in content
    )
    assert 'data-testid="compare-selected"' in content
