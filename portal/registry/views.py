"""Registry pages: the model versions a user can see, one version's lineage and a "try it"
prediction form, downloads, and registering a job from its page."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from portal.accounts.http import AuthenticatedHttpRequest
from portal.jobs.selectors import job_get_visible
from portal.lib.calls import WorkerUnavailable
from portal.registry.forms import RegisterForm, TryItForm
from portal.registry.models import ModelVersion
from portal.registry.predict import PredictionRefused, model_version_predict
from portal.registry.selectors import (
    model_version_file,
    model_version_get_visible,
    model_versions_visible_to,
)
from portal.registry.services import model_version_register

VERSIONS_PER_PAGE = 50
# Rows the "try it" box starts with, from the dataset's preview.
EXAMPLE_ROWS = 3


@require_http_methods(["GET"])
def model_version_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    versions = model_versions_visible_to(request.user).order_by("name", "-version")
    page = Paginator(versions, VERSIONS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "registry/list.html", {"page": page})


def _example_rows(version: ModelVersion) -> str:
    """A few of the dataset's preview rows without the target: a starting point to edit."""
    preview = version.dataset.preview
    if not isinstance(preview, list):
        return ""
    rows = [
        {key: value for key, value in row.items() if key != version.dataset.target}
        for row in preview[:EXAMPLE_ROWS]
        if isinstance(row, dict)
    ]
    return json.dumps(rows, indent=1) if rows else ""


def _detail(
    request: AuthenticatedHttpRequest,
    version: ModelVersion,
    form: TryItForm,
    *,
    predictions: list[dict[str, Any]] | None = None,
    status: int = 200,
) -> HttpResponse:
    return render(
        request,
        "registry/detail.html",
        {
            "version": version,
            "dataset": version.dataset,
            "form": form,
            "predictions": predictions,
            "hyperparameters": json.dumps(version.hyperparameters, indent=2, sort_keys=True),
            "architecture": json.dumps(version.architecture, indent=2, sort_keys=True),
            "preprocessing": version.dataset.preprocessing,
        },
        status=status,
    )


@require_http_methods(["GET"])
def model_version_detail(request: AuthenticatedHttpRequest, version_id: int) -> HttpResponse:
    version = model_version_get_visible(user=request.user, version_id=version_id)
    form = TryItForm(initial={"rows": _example_rows(version)})
    return _detail(request, version, form)


@require_POST
def model_version_try(request: AuthenticatedHttpRequest, version_id: int) -> HttpResponse:
    version = model_version_get_visible(user=request.user, version_id=version_id)
    form = TryItForm(request.POST)
    if not form.is_valid():
        return _detail(request, version, form, status=400)
    try:
        predictions = model_version_predict(version=version, rows=form.cleaned_data["rows"])
    except PredictionRefused as exc:
        form.add_error("rows", str(exc))
        return _detail(request, version, form, status=400)
    except WorkerUnavailable as exc:
        form.add_error(None, f"No prediction worker answered ({exc}). Try again shortly.")
        return _detail(request, version, form, status=503)
    return _detail(request, version, form, predictions=predictions)


@require_http_methods(["GET"])
def model_version_download(
    request: AuthenticatedHttpRequest, version_id: int, kind: str
) -> FileResponse:
    version = model_version_get_visible(user=request.user, version_id=version_id)
    path, filename = model_version_file(version, kind)
    return FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=filename,
        content_type="application/octet-stream",
    )


@require_POST
def job_register(request: AuthenticatedHttpRequest, job_id: int) -> HttpResponseRedirect:
    job = job_get_visible(user=request.user, job_id=job_id)
    form = RegisterForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, f"Not registered: {error}")
        return redirect("jobs:detail", job_id=job.pk)
    try:
        version = model_version_register(user=request.user, job=job, name=form.cleaned_data["name"])
    except ValidationError as exc:
        for error in exc.messages:
            messages.error(request, f"Not registered: {error}")
        return redirect("jobs:detail", job_id=job.pk)
    messages.success(request, f"Registered {version.name} v{version.version}.")
    return redirect("registry:detail", version_id=version.pk)
