"""The dataset pages: the upload form and its progress-bar script, one version's page (schema,
preview, chart data, versions, the train link, delete), and the list of newest versions."""

from __future__ import annotations

import json
import re

from django.contrib.auth.models import User
from django.test import Client

from portal.catalog.models import Dataset
from portal.catalog.tasks import validate_dataset
from portal.jobs.models import Job
from tests.factories import make_dataset, make_job, small_csv


def uploaded(client: Client, user: User, name: str = "plants") -> Dataset:
    """A version uploaded through the API as the browser's script sends it (session + CSRF
    header), then validated."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(user)
    response = client.post(
        "/api/v1/datasets/",
        {"file": SimpleUploadedFile(f"{name}.csv", small_csv()), "target": "label"},
    )
    assert response.status_code == 201, response.content
    validate_dataset(response.json()["id"])
    return Dataset.objects.get(pk=response.json()["id"])


def test_the_upload_page_renders_the_form_and_loads_its_script(client: Client, owner: User) -> None:
    client.force_login(owner)
    response = client.get("/catalog/datasets/upload/")

    assert response.status_code == 200
    html = response.content.decode()
    for field in ("file", "name", "target", "task", "missing", "normalization", "split_seed"):
        assert f'name="{field}"' in html
    assert 'type="file"' in html and "csrfmiddlewaretoken" in html
    assert 'data-testid="upload-bar"' in html
    assert '<script type="module" src="/static/js/dataset-upload.js">' in html
    config = json.loads(re.search(r'id="upload-config"[^>]*>(.*?)</script>', html).group(1))  # type: ignore[union-attr]
    assert config["api"] == "/api/v1/datasets/"


def test_the_progress_bar_script_is_served(client: Client) -> None:
    response = client.get("/static/js/dataset-upload.js")

    assert response.status_code == 200
    script = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    assert 'xhr.upload.addEventListener("progress"' in script
    assert "X-CSRFToken" in script


def test_a_browser_upload_is_csrf_checked_and_leaves_nothing_when_refused(
    owner: User, storage_root: object
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(owner)
    response = strict.post(
        "/api/v1/datasets/",
        {"file": SimpleUploadedFile("d.csv", small_csv()), "target": "label"},
    )

    assert response.status_code == 403
    assert not [p for p in storage_root.rglob("*") if p.is_file()]  # type: ignore[attr-defined]


def test_the_dataset_page_shows_schema_preview_chart_and_versions(
    client: Client, owner: User, storage_root: object
) -> None:
    first = uploaded(client, owner)
    second = uploaded(client, owner)

    response = client.get(f"/catalog/datasets/{second.pk}/")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="schema"' in html and ">height<" in html and ">target<" in html
    assert 'data-testid="preview"' in html and ">0.5<" in html
    assert f'href="/jobs/new/?dataset={second.pk}"' in html
    assert f'href="/catalog/datasets/{first.pk}/">v1<' in html
    assert 'data-testid="delete-dataset"' in html
    config = response.context["config"]
    assert config["settled"] is True and config["chart"]["kind"] == "classes"
    assert '<script type="module" src="/static/js/dataset.js">' in html


def test_a_version_being_validated_polls_and_offers_no_training(
    client: Client, owner: User, storage_root: object
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(owner)
    dataset_id = client.post(
        "/api/v1/datasets/", {"file": SimpleUploadedFile("d.csv", small_csv()), "target": "label"}
    ).json()["id"]

    response = client.get(f"/catalog/datasets/{dataset_id}/")

    assert response.context["config"]["settled"] is False
    assert 'data-testid="validating"' in response.content.decode()
    assert 'data-testid="train-on-dataset"' not in response.content.decode()


def test_a_teammate_sees_the_page_without_the_delete_button(
    client: Client, owner: User, teammate: User, storage_root: object
) -> None:
    dataset = uploaded(client, owner)
    client.force_login(teammate)

    html = client.get(f"/catalog/datasets/{dataset.pk}/").content.decode()

    assert "plants" in html and 'data-testid="delete-dataset"' not in html


def test_deleting_from_the_page_and_the_refusal_when_in_use(
    client: Client, owner: User, iris: Dataset
) -> None:
    used = uploaded(client, owner)
    free = uploaded(client, owner, name="free")
    job = make_job(owner, name="trains-on-plants")
    Job.objects.filter(pk=job.pk).update(dataset=used)

    refused = client.post(f"/catalog/datasets/{used.pk}/delete/", follow=True)
    assert refused.redirect_chain[-1][0] == f"/catalog/datasets/{used.pk}/"
    assert "trains-on-plants" in refused.content.decode()
    assert Dataset.objects.filter(pk=used.pk).exists()

    deleted = client.post(f"/catalog/datasets/{free.pk}/delete/", follow=True)
    assert deleted.redirect_chain[-1][0] == "/catalog/datasets/"
    assert "Deleted free v1" in deleted.content.decode()
    assert not Dataset.objects.filter(pk=free.pk).exists()


def test_the_list_shows_each_names_newest_version(client: Client, owner: User) -> None:
    make_dataset(owner, name="plants")
    newest = make_dataset(owner, name="plants")
    client.force_login(owner)

    response = client.get("/catalog/datasets/")

    assert [d.pk for d in response.context["datasets"] if d.name == "plants"] == [newest.pk]
    assert f'href="/catalog/datasets/{newest.pk}/"' in response.content.decode()
