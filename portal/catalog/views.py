"""Catalog pages: datasets (list, upload, one version's page, delete, download) and models.

The upload page's script sends the form to the REST API (`POST /api/v1/datasets/`) with
XMLHttpRequest, for its upload progress; the dataset page polls the API while validation runs.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from portal.accounts.http import AuthenticatedHttpRequest
from portal.accounts.selectors import user_is_admin
from portal.catalog import selectors, services, storage
from portal.catalog.models import Dataset
from portal.catalog.selectors import datasets_visible_to, models_visible_to
from portal.catalog.serializers import DatasetUploadSerializer


@require_http_methods(["GET"])
def dataset_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    datasets = selectors.datasets_filtered(
        datasets_visible_to(request.user).select_related("owner", "team"), latest=True
    )
    return render(request, "catalog/datasets.html", {"datasets": datasets})


@require_http_methods(["GET"])
def dataset_upload_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    fields = DatasetUploadSerializer().fields
    context = {
        "formats": Dataset.Format.choices,
        "tasks": Dataset.Task.choices,
        "defaults": {name: field.default for name, field in fields.items()},
        "max_bytes": settings.TRAINYARD_DATASET_MAX_BYTES,
        "config": {
            "api": reverse("catalog-api:datasets"),
            "maxBytes": settings.TRAINYARD_DATASET_MAX_BYTES,
        },
    }
    return render(request, "catalog/dataset_upload.html", context)


def _may_delete(request: AuthenticatedHttpRequest, dataset: Dataset) -> bool:
    return user_is_admin(request.user) or dataset.owner_id == request.user.pk


@require_http_methods(["GET"])
def dataset_detail(request: AuthenticatedHttpRequest, dataset_id: int) -> HttpResponse:
    dataset = selectors.dataset_get_visible(user=request.user, dataset_id=dataset_id)
    versions = selectors.dataset_versions(user=request.user, dataset=dataset)
    schema = dataset.schema if isinstance(dataset.schema, list) else []
    preview = dataset.preview if isinstance(dataset.preview, list) else []
    columns = [str(column.get("name", "")) for column in schema if isinstance(column, dict)]
    if not columns and preview and isinstance(preview[0], dict):
        columns = list(preview[0])
    rows = [[row.get(column, "") for column in columns] for row in preview if isinstance(row, dict)]
    context = {
        "dataset": dataset,
        "versions": versions,
        "schema": schema,
        "columns": columns,
        "rows": rows,
        "may_delete": _may_delete(request, dataset),
        "train_url": f"{reverse('jobs:new')}?dataset={dataset.pk}",
        "config": {
            "id": dataset.pk,
            "api": reverse("catalog-api:dataset", args=[dataset.pk]),
            "state": dataset.state,
            "settled": dataset.is_settled,
            "chart": dataset.chart if isinstance(dataset.chart, dict) else {},
        },
    }
    return render(request, "catalog/dataset_detail.html", context)


@require_POST
def dataset_delete_view(request: AuthenticatedHttpRequest, dataset_id: int) -> HttpResponseRedirect:
    dataset = selectors.dataset_get_visible(user=request.user, dataset_id=dataset_id)
    try:
        services.dataset_delete(user=request.user, dataset=dataset)
    except services.DatasetInUse as exc:
        messages.error(request, str(exc))
        return redirect("catalog:dataset", dataset_id=dataset.pk)
    except PermissionDenied as exc:
        messages.error(request, str(exc))
        return redirect("catalog:dataset", dataset_id=dataset.pk)
    messages.success(request, f"Deleted {dataset}.")
    return redirect("catalog:datasets")


@require_http_methods(["GET"])
def dataset_download(request: AuthenticatedHttpRequest, dataset_id: int) -> FileResponse:
    dataset = selectors.dataset_get_visible(user=request.user, dataset_id=dataset_id)
    if not storage.storage_exists(dataset.uri):
        raise Http404("The file of this dataset is not stored (an invalid upload is removed).")
    filename = Path(dataset.filename).name or f"dataset-{dataset.pk}"
    return FileResponse(
        storage.storage_open(dataset.uri),
        as_attachment=True,
        filename=filename,
        content_type="application/octet-stream",
    )


@require_http_methods(["GET"])
def model_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    models = models_visible_to(request.user).select_related("owner", "team")
    return render(request, "catalog/models.html", {"models": models})
