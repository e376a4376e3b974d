"""Another user's model version answers 404 on every registry route; a teammate's is shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User

from portal.registry.models import ModelVersion
from portal.registry.selectors import model_version_file
from tests.factories import make_team
from tests.registry.conftest import TokenClient
from tests.registry.support import make_model_version, make_trained_job, signed_in

API_ROUTES = [
    ("get", "/api/v1/model-versions/{id}/"),
    ("get", "/api/v1/model-versions/{id}/files/safetensors/"),
    ("get", "/api/v1/model-versions/{id}/files/torchscript/"),
    ("post", "/api/v1/model-versions/{id}/predict/"),
]
PAGE_ROUTES = [
    ("get", "/trained-models/{id}/"),
    ("post", "/trained-models/{id}/try/"),
    ("get", "/trained-models/{id}/files/safetensors/"),
    ("get", "/trained-models/{id}/files/torchscript/"),
]


@pytest.fixture
def version(owner: User) -> ModelVersion:
    return make_model_version(owner)


@pytest.mark.parametrize(("method", "route"), API_ROUTES)
def test_another_users_version_is_404_on_every_api_route(
    api: TokenClient, outsider: User, version: ModelVersion, method: str, route: str
) -> None:
    client = api(outsider)
    url = route.format(id=version.pk)

    response = getattr(client, method)(url, {"rows": [{"a": 1, "b": 2}]}, format="json")

    assert response.status_code == 404


@pytest.mark.parametrize(("method", "route"), PAGE_ROUTES)
def test_another_users_version_is_404_on_every_page(
    outsider: User, version: ModelVersion, method: str, route: str
) -> None:
    response = getattr(signed_in(outsider), method)(route.format(id=version.pk), {"rows": "[]"})

    assert response.status_code == 404


def test_the_list_shows_only_what_the_user_may_see(
    api: TokenClient, owner: User, outsider: User, version: ModelVersion
) -> None:
    theirs = make_model_version(outsider, name="theirs")

    listed = api(owner).get("/api/v1/model-versions/").json()["results"]
    page = signed_in(owner).get("/trained-models/").content.decode()

    assert [item["id"] for item in listed] == [version.pk]
    assert f'data-model-version-id="{version.pk}"' in page
    assert f'data-model-version-id="{theirs.pk}"' not in page


def test_registering_another_users_job_is_404(api: TokenClient, owner: User, outsider: User):
    job = make_trained_job(owner)

    api_response = api(outsider).post(
        "/api/v1/model-versions/", {"job": job.pk, "name": "stolen"}, format="json"
    )
    page_response = signed_in(outsider).post(f"/trained-models/register/{job.pk}/", {"name": "x"})

    assert api_response.status_code == 404
    assert page_response.status_code == 404
    assert not ModelVersion.objects.filter(job=job).exists()


def test_a_teammate_reads_and_downloads_the_teams_version(
    api: TokenClient, owner: User, outsider: User
) -> None:
    teammate = outsider
    make_team("vision", owner, teammate)
    version = make_model_version(owner)
    client = api(teammate)

    detail = client.get(f"/api/v1/model-versions/{version.pk}/")
    download = client.get(f"/api/v1/model-versions/{version.pk}/files/safetensors/")

    assert detail.status_code == 200
    assert detail.json()["job"]["id"] == version.job_id
    assert download.status_code == 200
    path, _ = model_version_file(version, "safetensors")
    assert download.getvalue() == Path(path).read_bytes()
    assert 'filename="flower-classifier-v1.safetensors"' in download["Content-Disposition"]


def test_the_page_shows_lineage_and_links_to_job(owner: User, version: ModelVersion) -> None:
    page = signed_in(owner).get(f"/trained-models/{version.pk}/").content.decode()

    assert f'href="/jobs/{version.job_id}/"' in page
    assert version.dataset.name in page
    assert "minmax" in page
    assert 'data-testid="try-form"' in page


def test_a_succeeded_jobs_page_offers_to_register_it(owner: User) -> None:
    job = make_trained_job(owner)

    page = signed_in(owner).get(f"/jobs/{job.pk}/").content.decode()
    response = signed_in(owner).post(f"/trained-models/register/{job.pk}/", {"name": "flowers"})

    assert f'action="/trained-models/register/{job.pk}/"' in page
    version = ModelVersion.objects.get(job=job)
    assert response.status_code == 302
    assert response["Location"] == f"/trained-models/{version.pk}/"


def test_a_running_jobs_page_has_no_register_button(owner: User) -> None:
    job = make_trained_job(owner, state="running")

    page = signed_in(owner).get(f"/jobs/{job.pk}/").content.decode()

    assert "register-job" not in page
