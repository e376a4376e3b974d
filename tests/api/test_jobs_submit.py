"""POST /api/v1/jobs/: a valid request is queued; a bad one answers 400 keyed by field path."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from portal.catalog.models import ModelArchitecture
from portal.jobs.models import Job
from tests.api.conftest import TokenClient


def post_job(client_for: TokenClient, user: User, body: Any) -> Any:
    return client_for(user).post("/api/v1/jobs/", body, format="json")


def test_it_queues_a_job_submitted_with_a_token(
    client_for: TokenClient, owner: User, job_body: dict[str, Any]
) -> None:
    response = post_job(client_for, owner, job_body)

    assert response.status_code == 201, response.json()
    body = response.json()
    job = Job.objects.get(pk=body["id"])
    assert job.owner == owner
    assert body["state"] == "queued" == job.state
    assert body["owner"] == "owner"
    assert body["name"] == "iris-mlp"
    assert body["dataset"] == {"id": job_body["dataset"], "name": job.dataset.name}
    assert body["model"] == {"id": job_body["model"], "name": job.model.name}
    assert body["resources"] == {"nodes": 1, "procs_per_node": 2, "gpus_per_node": 0}
    assert body["spec"]["training"]["epochs"] == 2
    assert body["attempts"] == []
    assert body["urls"] == {
        "self": f"http://testserver/api/v1/jobs/{job.pk}/",
        "web": f"/jobs/{job.pk}/",
        "websocket": f"/ws/jobs/{job.pk}/",
    }


def test_it_rejects_negative_epochs(
    client_for: TokenClient, owner: User, job_body: dict[str, Any]
) -> None:
    job_body["training"]["epochs"] = -3

    response = post_job(client_for, owner, job_body)

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["training.epochs"]
    assert "greater than or equal to 1" in response.json()["errors"]["training.epochs"][0]
    assert not Job.objects.exists()


def test_it_rejects_a_learning_rate_sent_as_a_string(
    client_for: TokenClient, owner: User, job_body: dict[str, Any]
) -> None:
    # Even a numeric string: the API takes JSON numbers and converts nothing.
    job_body["training"]["learning_rate"] = "0.05"

    response = post_job(client_for, owner, job_body)

    assert response.status_code == 400
    assert response.json()["errors"]["training.learning_rate"] == ["Input should be a valid number"]
    assert not Job.objects.exists()


def test_it_rejects_more_processes_than_any_node_has(
    client_for: TokenClient, owner: User, job_body: dict[str, Any]
) -> None:
    job_body["resources"]["procs_per_node"] = 3  # the only node has 2 CPU slots

    response = post_job(client_for, owner, job_body)

    assert response.status_code == 400
    assert "resources.procs_per_node" in response.json()["errors"]
    assert not Job.objects.exists()


def test_it_reports_every_bad_field_at_once(
    client_for: TokenClient, owner: User, job_body: dict[str, Any]
) -> None:
    job_body["training"]["epochs"] = 0
    job_body["resources"]["nodes"] = 0
    job_body["surprise"] = True

    response = post_job(client_for, owner, job_body)

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"training.epochs", "resources.nodes", "surprise"}


def test_it_checks_hyperparameters_against_the_models_architecture(
    client_for: TokenClient, owner: User, job_body: dict[str, Any]
) -> None:
    job_body["hyperparameters"] = {"activation": "swish", "hidden_sizes": [8, 0]}

    response = post_job(client_for, owner, job_body)

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "hyperparameters.activation": ["Invalid enum value 'swish'"],
        "hyperparameters.hidden_sizes.1": ["Expected `int` >= 1"],
    }
    assert not Job.objects.exists()


def test_a_shape_the_model_cannot_take_is_a_400_on_hyperparameters(
    client_for: TokenClient, owner: User, job_body: dict[str, Any]
) -> None:
    cnn = ModelArchitecture.objects.create(slug="my-cnn", name="CNN", family="cnn", is_public=True)
    job_body["model"] = cnn.pk

    response = post_job(client_for, owner, job_body)

    assert response.status_code == 400
    [message] = response.json()["errors"]["hyperparameters"]
    assert message.startswith("The model does not fit Iris v1: ")


def test_no_worker_answering_the_dry_run_is_a_503_and_nothing_is_queued(
    client_for: TokenClient, owner: User, job_body: dict[str, Any], settings: Any
) -> None:
    settings.TRAINYARD_DRY_RUN_QUEUE = "nobody-listens-here"
    settings.TRAINYARD_DRY_RUN_TIMEOUT_S = 0.3

    response = post_job(client_for, owner, job_body)

    assert response.status_code == 503
    [message] = response.json()["errors"]["__all__"]
    assert "no worker on the 'nobody-listens-here' queue answered within 0.3 s" in message
    assert not Job.objects.exists()


def test_the_answer_has_the_dry_runs_parameter_count(
    client_for: TokenClient, owner: User, job_body: dict[str, Any]
) -> None:
    job_body["hyperparameters"] = {"hidden_sizes": [5]}
    body = post_job(client_for, owner, job_body).json()
    assert body["parameter_count"] == (4 * 5 + 5) + (5 * 3 + 3)
    assert body["model_check"] == f"Dry run: {body['parameter_count']} parameters."


def test_it_rejects_a_body_that_is_not_an_object(
    client_for: TokenClient, owner: User, job_body: dict[str, Any]
) -> None:
    response = post_job(client_for, owner, [job_body])

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["__all__"]


def test_it_rejects_malformed_json_in_the_same_shape(client_for: TokenClient, owner: User) -> None:
    response = client_for(owner).post(
        "/api/v1/jobs/", '{"dataset": 1,', content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["errors"]["__all__"][0].startswith("JSON parse error")


def test_it_rejects_a_dataset_the_user_cannot_see(
    client_for: TokenClient, owner: User, job_body: dict[str, Any]
) -> None:
    job_body["dataset"] = 987654

    response = post_job(client_for, owner, job_body)

    assert response.status_code == 400
    assert "dataset" in response.json()["errors"]


def test_it_takes_only_json(client_for: TokenClient, owner: User, job_body: dict[str, Any]) -> None:
    response = client_for(owner).post("/api/v1/jobs/", {"name": "x"})  # multipart form

    assert response.status_code == 415
