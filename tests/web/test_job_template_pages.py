"""Job templates in the browser: save from the form and from a job page, list, use (the form
filled with it), delete."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from portal.jobs.models import Job, JobTemplate
from tests.web.test_job_copy_form import as_posted


def test_the_form_saves_a_template_without_submitting(
    client: Client, owner: User, teammate: User, job_form_data: dict[str, Any]
) -> None:
    client.force_login(owner)
    response = client.post(
        reverse("jobs:new"),
        {
            **job_form_data,
            "save_template": "1",
            "template_name": "tanh net",
            "template_team": "vision",
        },
    )
    assert response.status_code == 302 and response["Location"] == reverse("jobs:templates")
    assert not Job.objects.exists()
    template = JobTemplate.objects.get()
    assert (template.name, template.team.name if template.team else None) == ("tanh net", "vision")
    assert template.spec["hyperparameters"]["activation"] == "tanh"
    assert template.spec["training"]["epochs"] == 5

    # The teammate sees it, opens the form from it, and submits it as it is.
    client.force_login(teammate)
    listing = client.get(reverse("jobs:templates")).content.decode()
    assert f'href="/jobs/new/?template={template.pk}" data-testid="use-template"' in listing
    form = client.get(reverse("jobs:new"), {"template": template.pk}).context["form"]
    posted = as_posted(form)
    assert (posted["hp_activation"], posted["epochs"]) == ("tanh", "5")
    submitted = client.post(reverse("jobs:new"), {**posted, "template": str(template.pk)})
    assert submitted.status_code == 302
    job = Job.objects.get()
    assert job.owner == teammate and job.spec["training"]["epochs"] == 5


def test_a_job_page_saves_its_spec_as_a_template(
    client: Client, owner: User, submit_job: Callable[..., Job]
) -> None:
    job = submit_job(owner, name="keeper")
    client.force_login(owner)
    response = client.post(reverse("jobs:save-template", args=[job.pk]), {"name": "keeper"})
    assert response.status_code == 302
    assert JobTemplate.objects.get(owner=owner).spec == job.spec
    twice = client.post(
        reverse("jobs:save-template", args=[job.pk]), {"name": "keeper"}, follow=True
    )
    assert "exists for you" in twice.content.decode()


def test_delete_removes_it_and_others_get_404s(
    client: Client, owner: User, outsider: User, submit_job: Callable[..., Job]
) -> None:
    job = submit_job(owner)
    client.force_login(owner)
    client.post(reverse("jobs:save-template", args=[job.pk]), {"name": "gone soon"})
    template = JobTemplate.objects.get()

    client.force_login(outsider)
    assert client.post(reverse("jobs:template-delete", args=[template.pk])).status_code == 404
    assert client.get(reverse("jobs:new"), {"template": template.pk}).status_code == 404
    assert (
        client.post(reverse("jobs:save-template", args=[job.pk]), {"name": "x"}).status_code == 404
    )
    client.force_login(owner)
    assert client.post(reverse("jobs:template-delete", args=[template.pk])).status_code == 302
    assert not JobTemplate.objects.exists()
