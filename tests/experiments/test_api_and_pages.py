"""The searches REST API and pages: create, list, detail with trials, cancel, register the best
(400 before any trial completed); another user's search is 404 on every route."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from portal.experiments.models import Search, Trial
from portal.experiments.services import search_advance
from portal.jobs.models import Job
from tests.api.conftest import TokenClient
from tests.experiments.helpers import create, search_body

pytestmark = pytest.mark.usefixtures("cpu_node")


def test_a_search_is_created_listed_and_read_with_its_trials(
    owner: Any, iris: Any, mlp: Any, client_for: TokenClient
) -> None:
    api = client_for(owner)
    created = api.post("/api/v1/searches/", search_body(iris, mlp), format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["state"], body["direction"], body["max_trials"]) == ("running", "minimize", 4)
    assert body["trials"] == [] and body["best_trial"] is None
    search_advance(search_id=body["id"])

    listed = api.get("/api/v1/searches/").json()
    assert [s["id"] for s in listed["results"]] == [body["id"]]
    assert listed["results"][0]["trial_count"] == 2
    detail = api.get(f"/api/v1/searches/{body['id']}/").json()
    trial = detail["trials"][0]
    assert trial["job_state"] == "queued" and trial["job_state_reason"]
    assert 0.001 <= trial["params"]["training.learning_rate"] <= 0.3


def test_a_space_value_the_model_refuses_is_a_400_on_its_dimension(
    owner: Any, iris: Any, mlp: Any, client_for: TokenClient
) -> None:
    space = [{"name": "hyperparameters.dropout", "kind": "uniform", "low": 0.1, "high": 2.0}]
    answer = client_for(owner).post(
        "/api/v1/searches/", search_body(iris, mlp, space=space), format="json"
    )
    assert answer.status_code == 400
    assert "space.0" in answer.json()["errors"]
    assert not Search.objects.exists()


def test_cancel_through_the_api_cancels_the_trials(
    owner: Any, iris: Any, mlp: Any, client_for: TokenClient
) -> None:
    search = create(owner, iris, mlp)
    search_advance(search_id=search.pk)
    answer = client_for(owner).post(f"/api/v1/searches/{search.pk}/cancel/")
    assert answer.status_code == 202
    assert answer.json()["state"] == "cancelled"
    assert {t["job_state"] for t in answer.json()["trials"]} == {"cancelled"}
    assert not Job.objects.filter(trial__search=search).exclude(state="cancelled").exists()


def test_one_trial_is_cancelled_through_the_api(
    owner: Any, iris: Any, mlp: Any, client_for: TokenClient
) -> None:
    search = create(owner, iris, mlp)
    search_advance(search_id=search.pk)
    answer = client_for(owner).post(f"/api/v1/searches/{search.pk}/trials/0/cancel/")
    assert answer.status_code == 202 and answer.json()["state"] == "cancelled"
    assert Trial.objects.get(search=search, number=1).state == Trial.State.RUNNING


def test_registering_before_any_trial_completed_is_a_400(
    owner: Any, iris: Any, mlp: Any, client_for: TokenClient
) -> None:
    search = create(owner, iris, mlp)
    answer = client_for(owner).post(
        f"/api/v1/searches/{search.pk}/register-best/", {"name": "x"}, format="json"
    )
    assert answer.status_code == 400
    assert "search" in answer.json()["errors"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/searches/{id}/"),
        ("post", "/api/v1/searches/{id}/cancel/"),
        ("post", "/api/v1/searches/{id}/trials/0/cancel/"),
        ("post", "/api/v1/searches/{id}/register-best/"),
        ("get", "/searches/{id}/"),
        ("get", "/searches/{id}/chart.json"),
        ("post", "/searches/{id}/cancel/"),
    ],
)
def test_another_users_search_is_not_found(
    owner: Any, outsider: Any, iris: Any, mlp: Any, client_for: TokenClient, method: str, path: str
) -> None:
    search = create(owner, iris, mlp)
    search_advance(search_id=search.pk)
    if path.startswith("/api/"):
        client: Any = client_for(outsider)
    else:
        client = Client()
        client.force_login(outsider)
    answer = getattr(client, method)(path.format(id=search.pk))
    assert answer.status_code == 404
    assert Search.objects.get(pk=search.pk).state == Search.State.RUNNING
    assert client_for(outsider).get("/api/v1/searches/").json()["results"] == []


def test_the_search_page_shows_trials_and_the_new_form_starts_one(
    owner: Any, iris: Any, mlp: Any
) -> None:
    client = Client()
    client.force_login(owner)
    form = client.get(f"/searches/new/?model={mlp.pk}")
    assert form.status_code == 200
    assert b"hyperparameters.dropout" in form.content
    answer = client.post(
        "/searches/new/",
        {
            "name": "form search",
            "model": mlp.pk,
            "dataset": iris.pk,
            "epochs": 3,
            "batch_size": 16,
            "learning_rate": 0.01,
            "procs_per_node": 1,
            "method": "random",
            "metric": "val_loss",
            "direction": "",
            "max_trials": 3,
            "parallelism": 1,
            "seed": 0,
            "early_stopping": "median",
            "min_resource": 1,
            "reduction_factor": 3,
            "space__training__learning_rate": "0.001..0.1 log",
            "space__hyperparameters__hidden_sizes": "[[8], [16, 16]]",
        },
    )
    search = Search.objects.get(name="form search")
    assert answer.status_code == 302 and answer["Location"] == f"/searches/{search.pk}/"
    assert [d["kind"] for d in search.space] == ["log_uniform", "choice"]
    assert search.pruner == Search.Pruner.MEDIAN
    search_advance(search_id=search.pk)
    page = client.get(f"/searches/{search.pk}/")
    assert page.status_code == 200
    assert b'data-testid="trials"' in page.content and b"training.learning_rate" in page.content
    assert b'id="search-config"' in page.content
    chart = client.get(f"/searches/{search.pk}/chart.json").json()
    assert chart["running"] is True and len(chart["chart"]["trials"]) == 1


def test_a_bad_space_field_is_shown_on_the_form(owner: Any, iris: Any, mlp: Any) -> None:
    client = Client()
    client.force_login(owner)
    answer = client.post(
        "/searches/new/",
        {
            "model": mlp.pk,
            "dataset": iris.pk,
            "epochs": 3,
            "batch_size": 16,
            "learning_rate": 0.01,
            "procs_per_node": 1,
            "method": "random",
            "metric": "val_loss",
            "max_trials": 3,
            "parallelism": 1,
            "seed": 0,
            "early_stopping": "none",
            "min_resource": 1,
            "reduction_factor": 3,
            "space__hyperparameters__dropout": "0.1..3",
        },
    )
    assert answer.status_code == 400
    assert b"3.0" in answer.content and not Search.objects.exists()
