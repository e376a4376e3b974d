"""Submitting a job: what is stored, what is sent on commit, and what is refused."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import ValidationError

from portal.catalog.models import Dataset, ModelArchitecture
from portal.cluster.models import Node
from portal.jobs.models import Job
from portal.jobs.scheduling import schedule_pass
from portal.jobs.schemas import JobRequest, TrainingParams
from portal.jobs.services import CUSTOM_CODE_NOT_CHECKED, DryRunUnavailable, job_submit
from portal.lib.ticks import scheduler_tick_send
from tests.factories import make_dataset, make_team, make_user
from tests.jobs.helpers import cpu_request, node, submit


def error_messages(excinfo: pytest.ExceptionInfo[ValidationError]) -> dict[str, list[str]]:
    return excinfo.value.message_dict


def test_it_queues_a_job_with_the_models_defaults_under_the_fields_set(
    owner, iris, mlp, django_capture_on_commit_callbacks
):
    node(cpu_slots=4)
    with django_capture_on_commit_callbacks() as callbacks:
        job = submit(
            owner,
            iris,
            mlp,
            hyperparameters={"hidden_sizes": [8]},
            training={"epochs": 3},
            **cpu_request(procs=2),
        )
    job.refresh_from_db()
    assert job.state == Job.State.QUEUED
    assert job.name == "MLP on Iris"
    assert (job.nodes, job.procs_per_node, job.gpus_per_node) == (1, 2, 0)
    assert job.spec["hyperparameters"] == {
        "hidden_sizes": [8],
        "activation": "relu",
        "dropout": 0.0,
        "output": "logits",
    }
    assert job.spec["training"]["epochs"] == 3
    # The dry run on the control worker built it for Iris: 4*8+8 + 8*3+3 parameters.
    assert job.parameter_count == 67
    assert job.model_check == "Dry run: 67 parameters."
    assert job.spec["name"] == "MLP on Iris"
    # The request as stored is a valid request again.
    assert JobRequest.model_validate(job.spec).resources.procs_per_node == 2
    # A scheduling pass is requested after the commit.
    assert callbacks.count(scheduler_tick_send) == 1


def test_model_defaults_fill_what_the_request_leaves_out(owner, iris, mlp):
    node(cpu_slots=1)
    mlp.default_params = {"hidden_sizes": [64, 16], "activation": "tanh", "dropout": 0.25}
    mlp.save()
    job = submit(owner, iris, mlp, name="  mine  ", hyperparameters={"dropout": 0.5})
    assert job.spec["hyperparameters"] == {
        "hidden_sizes": [64, 16],
        "activation": "tanh",
        "dropout": 0.5,
        "output": "logits",
    }
    assert job.name == "mine"


def test_the_job_belongs_to_the_users_first_team(owner, teammate, iris, mlp):
    node()
    make_team("aardvarks", owner)
    job = submit(owner, iris, mlp)
    assert job.team is not None and job.team.name == "aardvarks"


def test_a_user_without_a_team_submits_a_teamless_job(outsider, iris, mlp):
    node()
    assert submit(outsider, iris, mlp).team is None


@pytest.mark.parametrize(
    ("training", "field"),
    [
        ({"epochs": 0}, "training.epochs"),
        ({"epochs": -5}, "training.epochs"),
        ({"learning_rate": 0.0}, "training.learning_rate"),
        ({"learning_rate": -0.1}, "training.learning_rate"),
    ],
)
def test_it_rejects_invalid_training_numbers_even_from_an_unvalidated_request(
    owner, iris, mlp, training, field
):
    node()
    # model_construct skips pydantic's checks, as a careless caller might; the service checks.
    request = JobRequest.model_construct(
        dataset=iris.pk, model=mlp.pk, training=TrainingParams.model_construct(**training)
    )
    with pytest.raises(ValidationError) as excinfo:
        job_submit(user=owner, request=request)
    assert list(error_messages(excinfo)) == [field]
    assert not Job.objects.exists()


def test_it_rejects_more_processes_than_any_node_has(owner, iris, mlp):
    node(cpu_slots=2)
    node(cpu_slots=1)
    with pytest.raises(ValidationError) as excinfo:
        submit(owner, iris, mlp, **cpu_request(procs=64))
    assert error_messages(excinfo) == {
        "resources.procs_per_node": [
            "No node can run 64 processes: the largest node has 2 CPU slots."
        ]
    }


def test_it_rejects_gpus_no_node_has(owner, iris, mlp):
    node(cpu_slots=8, gpu_count=2)
    with pytest.raises(ValidationError) as excinfo:
        submit(owner, iris, mlp, resources={"gpus_per_node": 4})
    assert error_messages(excinfo) == {
        "resources.gpus_per_node": ["No node can run 4 GPUs per node: the largest node has 2 GPUs."]
    }


def test_it_rejects_more_nodes_than_can_run_the_job(owner, iris, mlp):
    node(cpu_slots=4)
    node(cpu_slots=1)
    with pytest.raises(ValidationError) as excinfo:
        submit(owner, iris, mlp, **cpu_request(nodes=2, procs=2))
    assert error_messages(excinfo) == {
        "resources.nodes": ["Only 1 node can run 2 processes; the job asks for 2 nodes."]
    }


def test_a_job_only_draining_or_offline_nodes_fit_is_accepted_and_waits_for_them(owner, iris, mlp):
    node(cpu_slots=1)
    draining = node(cpu_slots=16, is_draining=True)
    offline = node(cpu_slots=16, state=Node.State.OFFLINE)
    job = submit(owner, iris, mlp, **cpu_request(procs=4))
    assert job.state == Job.State.QUEUED
    assert schedule_pass() == 0
    job.refresh_from_db()
    assert job.state_reason.startswith("Waiting for nodes: needs 1 node with 4 CPU slots;")
    assert f"{draining.name} is draining" in job.state_reason
    assert f"{offline.name} is offline" in job.state_reason
    # What no node of the cluster could ever run is still refused, whatever the nodes' state.
    with pytest.raises(ValidationError) as excinfo:
        submit(owner, iris, mlp, **cpu_request(procs=17))
    assert error_messages(excinfo) == {
        "resources.procs_per_node": [
            "No node can run 17 processes: the largest node has 16 CPU slots."
        ]
    }


def test_draining_the_whole_cluster_for_maintenance_does_not_stop_submissions(owner, iris, mlp):
    worker = node(cpu_slots=2, is_draining=True)
    job = submit(owner, iris, mlp, **cpu_request(procs=2))
    assert schedule_pass() == 0
    Node.objects.filter(pk=worker.pk).update(is_draining=False)
    assert schedule_pass() == 1
    job.refresh_from_db()
    assert job.state == Job.State.SCHEDULED


def test_it_counts_draining_and_offline_nodes_towards_a_gang(owner, iris, mlp):
    node(cpu_slots=2, state=Node.State.OFFLINE)
    node(cpu_slots=2, is_draining=True)
    node(cpu_slots=1)
    assert submit(owner, iris, mlp, **cpu_request(nodes=2, procs=2)).state == Job.State.QUEUED
    with pytest.raises(ValidationError) as excinfo:
        submit(owner, iris, mlp, **cpu_request(nodes=3, procs=2))
    assert error_messages(excinfo) == {
        "resources.nodes": ["Only 2 nodes can run 2 processes; the job asks for 3 nodes."]
    }


def test_it_rejects_a_job_when_no_node_has_joined_the_cluster(owner, iris, mlp):
    with pytest.raises(ValidationError) as excinfo:
        submit(owner, iris, mlp)
    assert error_messages(excinfo) == {
        "resources.procs_per_node": [
            "No node can run 1 process: no node has joined the cluster yet."
        ]
    }


def test_it_rejects_an_unknown_dataset_and_model(owner, iris, mlp):
    node()
    with pytest.raises(ValidationError) as excinfo:
        job_submit(user=owner, request=JobRequest(dataset=999_999, model=999_999))
    assert set(error_messages(excinfo)) == {"dataset", "model"}


def test_it_rejects_another_users_private_dataset(owner, outsider, iris, mlp):
    node()
    private = make_dataset(outsider, name="Secret")
    with pytest.raises(ValidationError) as excinfo:
        job_submit(user=owner, request=JobRequest(dataset=private.pk, model=mlp.pk))
    assert error_messages(excinfo) == {
        "dataset": [f"There is no dataset {private.pk} that you can use."]
    }


def test_it_accepts_a_teammates_dataset(owner, teammate, iris, mlp):
    node()
    team = owner.teams.get()
    shared = make_dataset(owner, name="Shared", team=team)
    job = job_submit(user=teammate, request=JobRequest(dataset=shared.pk, model=mlp.pk))
    assert job.dataset == shared


def test_it_rejects_a_dataset_that_is_not_ready(owner, iris, mlp):
    node()
    pending = make_dataset(owner, name="Pending", state=Dataset.State.VALIDATING)
    with pytest.raises(ValidationError) as excinfo:
        job_submit(user=owner, request=JobRequest(dataset=pending.pk, model=mlp.pk))
    assert error_messages(excinfo) == {"dataset": ["Dataset Pending is validating, not ready."]}


def test_an_inactive_admin_is_not_an_admin(iris, mlp):
    node()
    admin = make_user("former-admin", is_staff=True)
    admin.is_active = False
    admin.save()
    private = make_dataset(make_user(), name="P2")
    with pytest.raises(ValidationError):
        job_submit(user=admin, request=JobRequest(dataset=private.pk, model=mlp.pk))


def test_hyperparameters_are_checked_against_the_architecture_with_dotted_errors(owner, iris, mlp):
    node()
    cases = {
        "hidden_sizes": ([16, 0], "hyperparameters.hidden_sizes.1", "Expected `int` >= 1"),
        "activation": ("swish", "hyperparameters.activation", "Invalid enum value 'swish'"),
        "channels": ([8], "hyperparameters.channels", "Object contains unknown field"),
        "architecture": ("cnn", "hyperparameters.architecture", "The model decides"),
    }
    for name, (value, key, message) in cases.items():
        with pytest.raises(ValidationError) as excinfo:
            submit(owner, iris, mlp, hyperparameters={name: value})
        [(got_key, [got_message])] = error_messages(excinfo).items()
        assert (got_key, message in got_message) == (key, True), got_message
    assert not Job.objects.exists()


def test_a_model_that_does_not_fit_the_datasets_shape_is_refused_on_hyperparameters(owner, iris):
    node()
    cnn = ModelArchitecture.objects.create(slug="my-cnn", name="CNN", family="cnn", is_public=True)
    with pytest.raises(ValidationError) as excinfo:
        submit(owner, iris, cnn)
    [message] = error_messages(excinfo)["hyperparameters"]
    assert message.startswith("The model does not fit Iris v1: ")
    assert not Job.objects.exists()


def test_no_worker_answering_the_dry_run_is_unavailable_not_a_crash(owner, iris, mlp, settings):
    node()
    settings.TRAINYARD_DRY_RUN_QUEUE = f"nobody-listens-{uuid.uuid4().hex[:8]}"
    settings.TRAINYARD_DRY_RUN_TIMEOUT_S = 0.5
    with pytest.raises(DryRunUnavailable, match="no worker on the 'nobody-listens-"):
        submit(owner, iris, mlp)
    assert not Job.objects.exists()


def test_custom_code_is_not_dry_run_and_the_job_says_so(owner, iris):
    node()
    custom = ModelArchitecture.objects.create(
        slug="mine",
        name="Mine",
        family=ModelArchitecture.Family.CUSTOM,
        code_uri="file:///srv/storage/models/net.py",
        code_sha256="ab" * 32,
        default_params={"width": 8},
        owner=owner,
    )
    job = submit(owner, iris, custom, hyperparameters={"depth": 2})
    assert job.parameter_count is None
    assert job.model_check == CUSTOM_CODE_NOT_CHECKED
    assert job.spec["hyperparameters"] == {"width": 8, "depth": 2}


def test_a_regression_dataset_refuses_cross_entropy_and_best_by_accuracy(owner, mlp):
    node()
    prices = make_dataset(owner, task=Dataset.Task.REGRESSION, classes=[])
    with pytest.raises(ValidationError) as excinfo:
        submit(owner, prices, mlp, training={"best_metric": "val_accuracy"})
    assert set(error_messages(excinfo)) == {"training.loss", "training.best_metric"}
    job = submit(owner, prices, mlp, training={"loss": "mse"})
    # One output: the standardised target.
    assert job.parameter_count == (2 * 32 + 32) + (32 * 32 + 32) + (32 + 1)
