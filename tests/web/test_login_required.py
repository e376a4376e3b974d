"""Every page sends an anonymous visitor to the login page, and acts on nothing."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from portal.accounts.models import ApiToken
from portal.cluster.models import Node
from portal.jobs.models import Job
from tests.factories import PASSWORD, make_user

PAGES = [
    ("jobs:list", {}),
    ("jobs:new", {}),
    ("jobs:detail", {"job_id": 1}),
    ("catalog:datasets", {}),
    ("catalog:models", {}),
    ("cluster:nodes", {}),
    ("accounts:tokens", {}),
]
ACTIONS = [
    ("jobs:cancel", {"job_id": 1}),
    ("jobs:new", {}),
    ("cluster:drain", {"node_id": 1}),
    ("accounts:tokens", {}),
    ("accounts:revoke", {"token_id": 1}),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "kwargs"), PAGES)
def test_it_sends_an_anonymous_visitor_to_the_login_page(
    client: Client, name: str, kwargs: dict[str, int]
) -> None:
    url = reverse(name, kwargs=kwargs)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "kwargs"), ACTIONS)
def test_it_refuses_an_anonymous_post(client: Client, name: str, kwargs: dict[str, int]) -> None:
    response = client.post(reverse(name, kwargs=kwargs), {"name": "x", "draining": "true"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert not Job.objects.exists()
    assert not ApiToken.objects.exists()
    assert not Node.objects.filter(is_draining=True).exists()


@pytest.mark.django_db
def test_the_login_page_signs_a_user_in_and_lands_on_the_jobs_list(client: Client) -> None:
    make_user("ada")
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert b'name="username"' in page.content

    response = client.post(reverse("login"), {"username": "ada", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("jobs:list")
    assert client.get(reverse("jobs:list")).status_code == 200
