"""The new-job form: each mistake is reported on the field it is about, and a valid form
queues the job and opens its page."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from portal.catalog.models import Dataset, ModelArchitecture
from portal.jobs.models import Job
from tests.factories import make_dataset

URL = reverse("jobs:new")


def post(client: Client, user: User, data: dict[str, Any], **changes: str) -> Any:
    client.force_login(user)
    return client.post(URL, {**data, **changes})


def test_it_reports_negative_epochs_on_the_epochs_field(
    client: Client, owner: User, job_form_data: dict[str, Any]
) -> None:
    response = post(client, owner, job_form_data, epochs="-3")

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == ["epochs"]
    assert "greater than or equal to 1" in errors["epochs"][0]
    assert b"greater than or equal to 1" in response.content
    assert not Job.objects.exists()


def test_it_reports_a_non_numeric_learning_rate_with_djangos_own_message(
    client: Client, owner: User, job_form_data: dict[str, Any]
) -> None:
    response = post(client, owner, job_form_data, learning_rate="fast")

    assert response.status_code == 400
    assert response.context["form"].errors == {"learning_rate": ["Enter a number."]}
    assert not Job.objects.exists()


def test_it_reports_more_processes_than_any_node_has_on_the_processes_field(
    client: Client, owner: User, job_form_data: dict[str, Any]
) -> None:
    # The only node (the cpu_node fixture) has 2 CPU slots; the schema alone would allow 3.
    response = post(client, owner, job_form_data, procs_per_node="3")

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == ["procs_per_node"]
    assert "largest node has 2 CPU slots" in errors["procs_per_node"][0]
    assert not Job.objects.exists()


def test_it_reports_a_hidden_size_that_is_not_a_number(
    client: Client, owner: User, job_form_data: dict[str, Any]
) -> None:
    response = post(client, owner, job_form_data, hp_hidden_sizes="32,wide")

    assert response.status_code == 400
    assert list(response.context["form"].errors) == ["hp_hidden_sizes"]


def test_it_reports_a_zero_width_layer_from_the_architecture_on_hidden_sizes(
    client: Client, owner: User, job_form_data: dict[str, Any]
) -> None:
    response = post(client, owner, job_form_data, hp_hidden_sizes="32,0")

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == ["hp_hidden_sizes"]
    assert errors["hp_hidden_sizes"] == ["Expected `int` >= 1"]
    response = post(client, owner, job_form_data, hp_dropout="1.5")
    assert response.context["form"].errors["hp_dropout"] == ["Expected `float` < 1.0"]


def test_a_valid_form_queues_the_job_and_opens_its_page(
    client: Client, owner: User, job_form_data: dict[str, Any]
) -> None:
    response = post(client, owner, job_form_data)

    job = Job.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("jobs:detail", kwargs={"job_id": job.pk})
    assert job.owner == owner
    assert job.state == Job.State.QUEUED
    assert job.name == "iris-from-the-form"
    assert job.procs_per_node == 2
    assert job.spec["training"]["epochs"] == 5
    assert job.spec["training"]["optimizer"] == "sgd"
    assert job.spec["hyperparameters"] == {
        "hidden_sizes": [16, 8],
        "activation": "tanh",
        "dropout": 0.1,
        "output": "logits",
    }
    assert job.spec["training"]["checkpoint_every"] == 2
    assert job.spec["training"]["keep_last"] == 3
    assert job.spec["training"]["best_metric"] == "val_accuracy"
    assert job.parameter_count == (4 * 16 + 16) + (16 * 8 + 8) + (8 * 3 + 3)


def test_the_form_offers_only_ready_datasets_the_user_may_see(
    client: Client, owner: User, outsider: User, iris: Dataset
) -> None:
    make_dataset(owner, name="Still validating", state=Dataset.State.VALIDATING)
    make_dataset(outsider, name="Someone else's")
    client.force_login(owner)
    response = client.get(URL)

    assert response.status_code == 200
    offered = list(response.context["form"].fields["dataset"].queryset)
    # The public built-ins (Iris among them), and neither the unready nor the outsider's one.
    assert iris in offered
    assert {dataset.name for dataset in offered}.isdisjoint({"Still validating", "Someone else's"})
    assert all(dataset.is_public for dataset in offered)
    assert b'data-testid="submit-job"' in response.content


def test_it_rejects_a_dataset_the_user_cannot_see(
    client: Client, owner: User, outsider: User, job_form_data: dict[str, Any]
) -> None:
    hidden = make_dataset(outsider, name="Someone else's")
    response = post(client, owner, job_form_data, dataset=str(hidden.pk))

    assert response.status_code == 400
    assert list(response.context["form"].errors) == ["dataset"]
    assert not Job.objects.exists()


@pytest.mark.parametrize("field", ["epochs", "nodes"])
def test_it_keeps_what_the_user_typed_when_it_reports_an_error(
    client: Client, owner: User, job_form_data: dict[str, Any], field: str
) -> None:
    response = post(client, owner, job_form_data, **{field: "0"}, name="keep-me")

    assert response.status_code == 400
    assert b'value="keep-me"' in response.content
    assert field in response.context["form"].errors


def test_the_form_shows_the_selected_architectures_fields_with_the_right_kinds(
    client: Client, owner: User, mlp: ModelArchitecture
) -> None:
    cnn = ModelArchitecture.objects.create(
        slug="my-cnn", name="CNN", family="cnn", is_public=True, default_params={"kernel_size": 5}
    )
    client.force_login(owner)
    form = client.get(URL, {"model": mlp.pk}).context["form"]
    assert form.hyperparameter_names == ["hidden_sizes", "activation", "dropout", "output"]
    assert 'value="32,32"' in str(form["hp_hidden_sizes"])
    assert 'type="number"' in str(form["hp_dropout"])
    assert "<select" in str(form["hp_activation"])

    response = client.get(URL, {"model": cnn.pk})
    form = response.context["form"]
    assert form.hyperparameter_names == ["channels", "kernel_size", "dropout"]
    # The model's default over the architecture's, and a choice of whole numbers.
    assert form["hp_kernel_size"].value() == 5
    assert '<option value="5" selected>' in str(form["hp_kernel_size"])
    assert b"Hyperparameters of CNN" in response.content


def test_no_worker_for_the_dry_run_answers_503_with_the_reason_on_the_form(
    client: Client, owner: User, job_form_data: dict[str, Any], settings: Any
) -> None:
    settings.TRAINYARD_DRY_RUN_QUEUE = "nobody-listens-here"
    settings.TRAINYARD_DRY_RUN_TIMEOUT_S = 0.3
    response = post(client, owner, job_form_data)

    assert response.status_code == 503
    [error] = response.context["form"].non_field_errors()
    assert error.startswith("The model could not be checked, so the job was not queued")
    assert not Job.objects.exists()


def test_the_preview_answers_what_the_scheduler_would_do_and_stores_nothing(
    client: Client, owner: User, job_form_data: dict[str, Any], cpu_node: Any
) -> None:
    client.force_login(owner)
    response = client.post(reverse("jobs:preview"), job_form_data)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-would-start="true"' in body, body
    assert f"Would start now on {cpu_node.name}." in body
    assert not Job.objects.exists()


def test_the_preview_of_an_invalid_form_lists_its_errors(
    client: Client, owner: User, job_form_data: dict[str, Any]
) -> None:
    client.force_login(owner)
    response = client.post(reverse("jobs:preview"), {**job_form_data, "epochs": "-3"})
    assert 'data-testid="preview-errors"' in response.content.decode()
    assert not Job.objects.exists()


def test_it_offers_and_stores_preemptible(
    client: Client, owner: User, job_form_data: dict[str, Any]
) -> None:
    client.force_login(owner)
    page = client.get(URL).content.decode()
    assert 'name="preemptible"' in page and 'type="checkbox"' in page
    response = post(client, owner, job_form_data, preemptible="on")
    assert response.status_code == 302
    job = Job.objects.get()
    assert job.preemptible is True
    assert job.spec["scheduling"]["preemptible"] is True
