"""Run again with changes in the browser: `/jobs/new/?from=<id>` opens the form filled with
the job's spec, and submitting it with one field changed queues a job whose spec differs by
that field only."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from portal.catalog.models import ModelArchitecture
from portal.catalog.services import SEED_MLP_SLUG
from portal.jobs.models import Job
from portal.jobs.schemas import JobRequest
from portal.jobs.services import job_submit
from tests.api.test_job_copy import spec_difference


def as_posted(form: Any) -> dict[str, str]:
    """What a browser posts for the form as rendered (unchecked boxes are absent)."""
    data: dict[str, str] = {}
    for bound in form:
        value = bound.field.prepare_value(bound.value())
        if value is None or value is False:
            continue
        data[bound.html_name] = "on" if value is True else str(value)
    return data


def source_job(owner: User, iris: Any, mlp: Any) -> Job:
    return job_submit(
        user=owner,
        request=JobRequest.model_validate(
            {
                "name": "first try",
                "dataset": iris.pk,
                "model": mlp.pk,
                "hyperparameters": {"hidden_sizes": [12, 6], "activation": "tanh"},
                "training": {"epochs": 4, "learning_rate": 0.02, "optimizer": "sgd"},
                "resources": {"procs_per_node": 2},
                "scheduling": {"preemptible": True},
            }
        ),
    )


def test_the_form_opens_filled_with_the_jobs_spec(
    client: Client, owner: User, iris: Any, mlp: Any, cpu_node: Any
) -> None:
    job = source_job(owner, iris, mlp)
    client.force_login(owner)

    page = client.get(reverse("jobs:new"), {"from": job.pk})

    assert page.status_code == 200
    posted = as_posted(page.context["form"])
    assert posted["name"] == "first try"
    assert (posted["epochs"], posted["learning_rate"], posted["optimizer"]) == ("4", "0.02", "sgd")
    assert (posted["hp_hidden_sizes"], posted["hp_activation"]) == ("12,6", "tanh")
    assert posted["procs_per_node"] == "2"
    content = page.content.decode()
    assert f'<input type="hidden" name="from" value="{job.pk}">' in content
    assert f"a copy of job #{job.pk}" in content
    detail = client.get(reverse("jobs:detail", args=[job.pk])).content.decode()
    assert f'href="/jobs/new/?from={job.pk}" data-testid="run-again"' in detail


def test_submitting_it_with_one_change_differs_only_by_that_field(
    client: Client, owner: User, iris: Any, mlp: Any, cpu_node: Any
) -> None:
    job = source_job(owner, iris, mlp)
    client.force_login(owner)
    posted = as_posted(client.get(reverse("jobs:new"), {"from": job.pk}).context["form"])

    response = client.post(reverse("jobs:new"), {**posted, "from": str(job.pk), "epochs": "9"})

    assert response.status_code == 302, response.context["form"].errors
    copy = Job.objects.exclude(pk=job.pk).get()
    assert spec_difference(job.spec, copy.spec) == {"training.epochs"}
    assert copy.spec["training"]["epochs"] == 9
    # The form has no preemptible field; the copy keeps the source's.
    assert copy.preemptible is True


def test_a_job_you_cannot_see_is_a_404(
    client: Client, owner: User, outsider: User, iris: Any, mlp: Any, cpu_node: Any
) -> None:
    job = source_job(owner, iris, mlp)
    client.force_login(outsider)
    assert client.get(reverse("jobs:new"), {"from": job.pk}).status_code == 404
    assert client.get(reverse("jobs:new"), {"from": "x"}).status_code == 404


def test_picking_another_model_keeps_the_copy_and_its_training_settings(
    client: Client, owner: User, iris: Any, mlp: Any, cpu_node: Any
) -> None:
    job = source_job(owner, iris, mlp)
    other = ModelArchitecture.objects.get(slug=SEED_MLP_SLUG)
    client.force_login(owner)

    # What the form's script loads when the model select changes on a copy.
    page = client.get(reverse("jobs:new"), {"from": job.pk, "model": other.pk})

    assert page.status_code == 200
    form = page.context["form"]
    assert form.architecture == other
    posted = as_posted(form)
    assert (posted["model"], posted["dataset"]) == (str(other.pk), str(iris.pk))
    assert (posted["epochs"], posted["learning_rate"], posted["optimizer"]) == ("4", "0.02", "sgd")
    assert f'<input type="hidden" name="from" value="{job.pk}">' in page.content.decode()
