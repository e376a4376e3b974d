"""One job's page carries what its long-run charts need: the series and timeline API routes
(for the script), the timeline chart, and the CSV export link."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from tests.factories import make_job

pytestmark = pytest.mark.django_db


def test_the_job_page_wires_the_series_the_timeline_and_the_export(
    client: Client, owner: User
) -> None:
    job = make_job(owner)
    client.force_login(owner)

    response = client.get(reverse("jobs:detail", kwargs={"job_id": job.pk}))

    assert response.status_code == 200
    config = response.context["config"]
    assert config["seriesUrl"] == f"/api/v1/jobs/{job.pk}/metrics/series/"
    assert config["timelineUrl"] == f"/api/v1/jobs/{job.pk}/timeline/"
    body = response.content.decode()
    assert 'data-testid="chart-timeline"' in body
    assert f'href="/api/v1/jobs/{job.pk}/metrics.csv"' in body
    # The page's session may read them (the API takes sessions as well as tokens).
    assert client.get(config["seriesUrl"]).status_code == 200
    assert client.get(config["timelineUrl"]).status_code == 200
