"""Every page sends an anonymous visitor to the login page, and acts on nothing.

The routes come from the URL resolver, not a hand-kept list, so a new page cannot slip past the
check. Left out: the admin site, the API and Prometheus' `/metrics` (each has its own
authentication: `/metrics` a bearer token, tests/ops/test_prometheus.py), the login and
logout pages themselves, and static files. Which pages only admins may see is tested with each page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.resolvers import RoutePattern

from portal.accounts.models import ApiToken, Team
from portal.accounts.services import api_token_create
from portal.cluster.models import Node
from portal.jobs.models import Job
from tests.factories import PASSWORD, make_job, make_node, make_team, make_user

# static/: a file WhiteNoise does not have is a plain 404 for anyone (tests/web/test_hardening.py).
EXEMPT_PREFIXES = ("admin/", "api/", "static/", "metrics")
EXEMPT_NAMES = {"login", "logout"}
PARAMETER = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")


def _routes(
    patterns: Sequence[URLPattern | URLResolver], prefix: str = ""
) -> Iterator[tuple[str, str | None]]:
    """`(route, name)` for every URL pattern under `patterns`, e.g. `jobs/<int:job_id>/`."""
    for entry in patterns:
        if not isinstance(entry.pattern, RoutePattern):
            # A regex route would need its own way to fill in its groups: say so rather than skip.
            raise AssertionError(f"{prefix}{entry.pattern}: not a path() route; extend this test")
        route = prefix + str(entry.pattern)
        if route.startswith(EXEMPT_PREFIXES):
            continue
        if isinstance(entry, URLResolver):
            yield from _routes(entry.url_patterns, route)
        elif entry.name not in EXEMPT_NAMES:
            yield route, entry.name


ROUTES = sorted(route for route, _name in _routes(get_resolver().url_patterns))


def test_the_check_covers_every_page() -> None:
    # Guards the route walk itself: were it to find nothing, every test below would pass.
    assert {"", "jobs/<int:job_id>/", "cluster/nodes/", "account/tokens/"} <= set(ROUTES)


class Existing:
    """One real row per id a route takes, so that a page or action that forgot to ask for a
    login would find its object and act on it, rather than answer 404."""

    def __init__(self) -> None:
        owner = make_user("existing-owner")
        self.job = make_job(owner)
        self.node = make_node()
        self.token = api_token_create(user=owner, name="existing").token
        self.team = make_team("existing-team", owner)
        self.ids = {
            "job_id": self.job.pk,
            "node_id": self.node.pk,
            "token_id": self.token.pk,
            "team_id": self.team.pk,
        }
        self.names = {"username": owner.username}

    def url(self, route: str) -> str:
        def fill(match: re.Match[str]) -> str:
            if match["converter"] == "str" and match["name"] in self.names:
                return self.names[match["name"]]
            assert match["converter"] == "int", f"{route}: fill in {match[0]} in this test"
            return str(self.ids.get(match["name"], 1))

        return "/" + PARAMETER.sub(fill, route)


@pytest.fixture
def existing(db: None) -> Existing:
    return Existing()


@pytest.mark.parametrize("route", ROUTES)
def test_it_sends_an_anonymous_visitor_to_the_login_page(
    client: Client, existing: Existing, route: str
) -> None:
    url = existing.url(route)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


@pytest.mark.parametrize("route", ROUTES)
def test_it_refuses_an_anonymous_post(client: Client, existing: Existing, route: str) -> None:
    response = client.post(existing.url(route), {"name": "x", "draining": "true"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert list(Job.objects.values_list("pk", "state")) == [(existing.job.pk, Job.State.QUEUED)]
    assert list(ApiToken.objects.values_list("pk", "revoked_at")) == [(existing.token.pk, None)]
    assert not Node.objects.filter(is_draining=True).exists()
    assert list(Team.objects.values_list("name", flat=True)) == ["existing-team"]


@pytest.mark.django_db
def test_the_login_page_signs_a_user_in_and_lands_on_the_dashboard(client: Client) -> None:
    make_user("ada")
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert b'name="username"' in page.content

    response = client.post(reverse("login"), {"username": "ada", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard:home") == "/"
    assert client.get(reverse("dashboard:home")).status_code == 200
