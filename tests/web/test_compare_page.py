"""The compare page: settings diffed, final and best metrics side by side, every job visible
or a 404, at most MAX_COMPARED."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.jobs.compare import MAX_COMPARED
from portal.jobs.models import Job
from tests.factories import make_job, make_metric_points

URL = reverse("jobs:compare")


def with_points(owner: User, *, lr: float, losses: list[float], accuracies: list[float]) -> Job:
    job = make_job(owner, state=Job.State.SUCCEEDED)
    job.spec["training"]["learning_rate"] = lr
    job.save(update_fields=["spec"])
    make_metric_points(job, losses=losses, accuracies=accuracies)
    return job


def test_it_diffs_the_settings_and_shows_final_and_best_metrics(
    client: Client, owner: User
) -> None:
    a = with_points(owner, lr=0.01, losses=[1.0, 0.5, 0.7], accuracies=[0.5, 0.9, 0.8])
    b = with_points(owner, lr=0.1, losses=[0.9, 0.4], accuracies=[0.6, 0.95])
    client.force_login(owner)

    with CaptureQueriesContext(connection) as queries:
        response = client.get(URL, {"jobs": f"{a.pk},{b.pk}"})

    assert response.status_code == 200
    rows = {row.label: row for row in response.context["rows"]}
    assert rows["Learning rate"].values == ["0.01", "0.1"] and rows["Learning rate"].differs
    assert rows["Epochs"].values == ["30", "30"] and not rows["Epochs"].differs
    summaries = dict(response.context["summaries"])
    assert (summaries[a].final_val_loss, summaries[a].best_val_loss) == (0.7, 0.5)
    assert (summaries[a].final_val_accuracy, summaries[a].best_val_accuracy) == (0.8, 0.9)
    assert summaries[b].points == 4
    content = response.content.decode()
    assert content.count("data-differs") >= 1
    assert f'"metrics": "/api/v1/jobs/{a.pk}/metrics/"' in content
    few = len(queries)

    c = with_points(owner, lr=1.0, losses=[0.3], accuracies=[0.99])
    with CaptureQueriesContext(connection) as more:
        assert client.get(URL, {"jobs": f"{a.pk},{b.pk},{c.pk}"}).status_code == 200
    assert len(more) == few  # no query per job


def test_one_job_you_cannot_see_makes_the_page_a_404(
    client: Client, owner: User, outsider: User
) -> None:
    mine = make_job(owner)
    theirs = make_job(outsider)
    client.force_login(owner)
    assert client.get(URL, {"jobs": f"{mine.pk},{theirs.pk}"}).status_code == 404
    assert client.get(URL, {"jobs": f"{mine.pk},{10**12}"}).status_code == 404
    assert client.get(URL, {"jobs": f"{mine.pk}"}).status_code == 200


def test_the_ids_must_be_a_short_list_of_numbers(client: Client, owner: User) -> None:
    jobs = [make_job(owner) for _ in range(MAX_COMPARED + 1)]
    client.force_login(owner)
    ids = [str(job.pk) for job in jobs]
    assert client.get(URL, {"jobs": ",".join(ids[:MAX_COMPARED])}).status_code == 200
    assert client.get(URL, {"jobs": ",".join(ids)}).status_code == 404
    for bad in ("", "1,x", "-1", "1,,2", str(2**63)):
        assert client.get(URL, {"jobs": bad}).status_code == 404
    # A repeated id counts once.
    assert client.get(URL, {"jobs": f"{ids[0]},{ids[0]}"}).status_code == 200
