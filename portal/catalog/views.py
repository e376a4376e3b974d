"""Catalog pages: the datasets and model architectures a user can train with (read-only)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from portal.catalog.selectors import datasets_visible_to, models_visible_to


@require_http_methods(["GET"])
def dataset_list(request: HttpRequest) -> HttpResponse:
    datasets = datasets_visible_to(request.user).select_related("owner", "team")
    return render(request, "catalog/datasets.html", {"datasets": datasets})


@require_http_methods(["GET"])
def model_list(request: HttpRequest) -> HttpResponse:
    models = models_visible_to(request.user).select_related("owner", "team")
    return render(request, "catalog/models.html", {"models": models})
