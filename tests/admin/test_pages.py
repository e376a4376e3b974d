"""Each model's change list and change page answer a staff superuser, in a fixed number of
queries however many rows there are; models whose writes go through services refuse edits."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.db.models import Model
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.accounts.models import ApiToken, Quota, Team
from portal.catalog.models import Dataset, ModelArchitecture
from portal.cluster.models import Node, NodeEvent, NodeSample
from portal.experiments.models import Search, Trial
from portal.jobs.models import (
    Attempt,
    AttemptPhase,
    Job,
    JobLogVolume,
    JobTemplate,
    LogLine,
    MetricBlock,
    MetricPoint,
    Placement,
    RankSample,
)
from portal.notifications.models import (
    Notification,
    NotificationPreferences,
    Webhook,
    WebhookDelivery,
)
from portal.registry.models import ModelVersion
from tests.admin.test_registry import our_models
from tests.factories import make_attempt, make_job, make_node, make_user

READ_ONLY: list[type[Model]] = [
    ApiToken,
    Quota,
    Node,
    NodeEvent,
    NodeSample,
    Job,
    Attempt,
    Placement,
    MetricPoint,
    MetricBlock,
    LogLine,
    AttemptPhase,
    RankSample,
    JobLogVolume,
    ModelVersion,
    Search,
    Trial,
    JobTemplate,
    Notification,
    NotificationPreferences,
    Webhook,
    WebhookDelivery,
]
NOT_ADDED_OR_DELETED: list[type[Model]] = [*READ_ONLY, Dataset, ModelArchitecture]


def url(model: type[Model], view: str, *args: object) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def label(model: type[Model]) -> str:
    return model._meta.label


def count_queries(client: Client, path: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200, path
    return len(queries)


@pytest.mark.parametrize("model", our_models(), ids=label)
def test_its_change_list_takes_no_query_per_row(
    admin_client_for: Client,
    world: Callable[[], None],
    model: type[Model],
    django_assert_max_num_queries: Callable[[int], object],
) -> None:
    path = url(model, "changelist")
    admin_client_for.get(path)  # warm the per-process caches
    few = count_queries(admin_client_for, path)
    world()
    world()

    with django_assert_max_num_queries(few):  # type: ignore[attr-defined]
        response = admin_client_for.get(path)

    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


@pytest.mark.parametrize("model", our_models(), ids=label)
def test_its_change_page_answers(
    admin_client_for: Client,
    world: Callable[[], None],
    model: type[Model],
    django_assert_max_num_queries: Callable[[int], object],
) -> None:
    row = model._default_manager.order_by("pk").first()
    assert row is not None

    with django_assert_max_num_queries(20):  # type: ignore[attr-defined]
        response = admin_client_for.get(url(model, "change", row.pk))

    assert response.status_code == 200
    assert str(row) in response.content.decode()


def test_a_jobs_page_takes_no_query_per_attempt_nor_an_attempts_page_per_placement(
    admin_client_for: Client, world: Callable[[], None]
) -> None:
    owner = make_user()
    nodes = [make_node() for _ in range(4)]
    short, long = make_job(owner, state=Job.State.RUNNING), make_job(owner, state=Job.State.RUNNING)
    one = make_attempt(short, nodes=nodes[:1], state=Attempt.State.LOST)
    for state in (Attempt.State.LOST, Attempt.State.LOST, Attempt.State.RUNNING):
        many = make_attempt(long, nodes=nodes, state=state)

    admin_client_for.get(url(Job, "change", short.pk))  # warm the per-process caches
    assert count_queries(admin_client_for, url(Job, "change", long.pk)) <= count_queries(
        admin_client_for, url(Job, "change", short.pk)
    )
    admin_client_for.get(url(Attempt, "change", one.pk))
    assert count_queries(admin_client_for, url(Attempt, "change", many.pk)) <= count_queries(
        admin_client_for, url(Attempt, "change", one.pk)
    )
    # The inlines list them, each linked to its own read-only page.
    job_page = admin_client_for.get(url(Job, "change", long.pk)).content.decode()
    assert all(url(Attempt, "change", a.pk) in job_page for a in long.attempts.all())
    attempt_page = admin_client_for.get(url(Attempt, "change", many.pk)).content.decode()
    assert all(url(Placement, "change", p.pk) in attempt_page for p in many.placements.all())


@pytest.mark.parametrize("model", NOT_ADDED_OR_DELETED, ids=label)
def test_it_refuses_to_add_or_delete(
    admin_client_for: Client, world: Callable[[], None], model: type[Model]
) -> None:
    row = model._default_manager.order_by("pk").first()
    assert row is not None
    before = model._default_manager.count()

    assert admin_client_for.get(url(model, "add")).status_code == 403
    assert admin_client_for.post(url(model, "delete", row.pk), {"post": "yes"}).status_code == 403
    assert model._default_manager.count() == before


@pytest.mark.parametrize("model", READ_ONLY, ids=label)
def test_a_service_owned_model_refuses_a_change(
    admin_client_for: Client, world: Callable[[], None], model: type[Model]
) -> None:
    row = model._default_manager.order_by("pk").first()
    assert row is not None

    response = admin_client_for.post(url(model, "change", row.pk), {"state": "succeeded"})

    assert response.status_code == 403
    # The page itself is a read-only view: no form to save.
    page = admin_client_for.get(url(model, "change", row.pk)).content.decode()
    assert 'name="_save"' not in page


def test_a_teams_members_are_edited_in_the_admin(
    admin_client_for: Client, world: Callable[[], None]
) -> None:
    team = Team.objects.order_by("pk").first()
    assert team is not None
    joiner = make_user("joiner")

    response = admin_client_for.post(
        url(Team, "change", team.pk),
        {
            "name": team.name,
            "members": [joiner.pk],
            "created_at_0": "2026-01-01",
            "created_at_1": "00:00:00",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert list(team.members.all()) == [joiner]


def test_an_operator_finds_the_jobs_on_a_node_and_of_an_owner(
    admin_client_for: Client, world: Callable[[], None]
) -> None:
    owner, other = make_user("alice"), make_user("bob")
    suspect, healthy = make_node("suspect"), make_node("healthy")
    on_suspect = make_job(owner, state=Job.State.RUNNING, name="on-suspect")
    make_attempt(on_suspect, nodes=[suspect, healthy])
    make_attempt(on_suspect, nodes=[suspect], number=2, state=Attempt.State.RUNNING)
    elsewhere = make_job(other, state=Job.State.RUNNING, name="elsewhere")
    make_attempt(elsewhere, nodes=[healthy])

    by_node = admin_client_for.get(
        url(Job, "changelist"), {"attempts__placements__node__id__exact": suspect.pk}
    )
    by_owner = admin_client_for.get(
        url(Job, "changelist"), {"owner__id__exact": str(other.pk), "state": "running"}
    )

    # Once each, though the job ran on the node twice.
    assert list(by_node.context["cl"].result_list) == [on_suspect]
    assert list(by_owner.context["cl"].result_list) == [elsewhere]
