"""Search pages: the list, a new-search form, one search (trials, charts, cancel, register the
best trial), and the JSON its charts poll."""

from __future__ import annotations

from typing import Any

import pydantic
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from portal.accounts.http import AuthenticatedHttpRequest
from portal.catalog.models import Dataset
from portal.catalog.selectors import datasets_visible_to, models_visible_to
from portal.experiments.forms import SearchForm
from portal.experiments.models import Search, Trial
from portal.experiments.schemas import SearchRequest
from portal.experiments.selectors import (
    search_chart,
    search_get_visible,
    search_trials,
    searches_visible_to,
    trial_duration_s,
)
from portal.experiments.services import (
    search_cancel,
    search_create,
    search_register_best,
    trial_cancel,
)
from portal.jobs.schemas import dotted_errors
from portal.lib.realtime import json_finite

SEARCHES_PER_PAGE = 50


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


@require_http_methods(["GET"])
def search_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    searches = (
        searches_visible_to(request.user)
        .select_related("owner", "model", "dataset", "best_trial")
        .annotate(trial_count=Count("trials"))
        .order_by("-created_at", "-id")
    )
    page = Paginator(searches, SEARCHES_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "experiments/list.html", {"page": page})


def _form(request: AuthenticatedHttpRequest, data: Any = None) -> SearchForm:
    models = models_visible_to(request.user).order_by("name")
    wanted = (data or request.GET).get("model")
    architecture = None
    if wanted and str(wanted).isdigit():
        architecture = models.filter(pk=int(wanted)).first()
    architecture = architecture or models.first()
    datasets = datasets_visible_to(request.user).filter(state=Dataset.State.READY).order_by("name")
    return SearchForm(data, models=models, datasets=datasets, architecture=architecture)


@require_http_methods(["GET", "POST"])
def search_new(request: AuthenticatedHttpRequest) -> HttpResponse:
    if request.method == "GET" or "choose_model" in request.POST:
        form = _form(request, request.POST if request.method == "POST" else None)
        if request.method == "POST":
            form.errors.clear()  # a model change only redraws the space fields
        return render(request, "experiments/new.html", {"form": form})
    form = _form(request, request.POST)
    if form.is_valid():
        payload = form.payload()
        if form.is_valid():
            try:
                search = search_create(
                    user=request.user, request=SearchRequest.model_validate(payload)
                )
            except pydantic.ValidationError as exc:
                _add_errors(form, dotted_errors(exc))
            except ValidationError as exc:
                _add_errors(form, exc.message_dict)
            else:
                messages.success(request, f"Search {search.name} started.")
                return redirect("experiments:detail", search_id=search.pk)
    return render(request, "experiments/new.html", {"form": form}, status=400)


def _add_errors(form: SearchForm, errors: dict[str, list[str]]) -> None:
    for key, problems in errors.items():
        field = form.field_for(key)
        for problem in problems:
            form.add_error(field, f"{key}: {problem}" if field is None else problem)


def _rows(trials: list[Trial]) -> list[dict[str, Any]]:
    return [
        {
            "trial": trial,
            "duration_s": trial_duration_s(trial),
            "duration": _duration(trial_duration_s(trial)),
        }
        for trial in trials
    ]


@require_http_methods(["GET"])
def search_detail(request: AuthenticatedHttpRequest, search_id: int) -> HttpResponse:
    search = search_get_visible(user=request.user, search_id=search_id)
    trials = search_trials(search)
    compare = [t.job_id for t in trials if t.job_id and t.best_value is not None]
    context = {
        "search": search,
        "rows": _rows(trials),
        "dimensions": [dimension["name"] for dimension in search.space],
        "best": search.best_trial,
        "compare_ids": ",".join(str(job_id) for job_id in compare[:10]),
        "config": {
            "chart": json_finite(search_chart(search, trials)),
            "running": not search.is_terminal,
        },
    }
    return render(request, "experiments/detail.html", context)


@require_http_methods(["GET"])
def search_chart_json(request: AuthenticatedHttpRequest, search_id: int) -> JsonResponse:
    search = search_get_visible(user=request.user, search_id=search_id)
    chart = json_finite(search_chart(search, search_trials(search)))
    return JsonResponse({"chart": chart, "running": not search.is_terminal, "state": search.state})


@require_POST
def search_cancel_view(request: AuthenticatedHttpRequest, search_id: int) -> HttpResponse:
    search = search_get_visible(user=request.user, search_id=search_id)
    search_cancel(user=request.user, search=search)
    messages.success(request, "The search and its unfinished trials were cancelled.")
    return redirect("experiments:detail", search_id=search.pk)


@require_POST
def trial_cancel_view(
    request: AuthenticatedHttpRequest, search_id: int, number: int
) -> HttpResponse:
    search = search_get_visible(user=request.user, search_id=search_id)
    trial = search.trials.filter(number=number).first()
    if trial is None:
        raise Http404("No such trial.")
    trial_cancel(user=request.user, trial=trial)
    messages.success(request, f"Trial {number} was cancelled.")
    return redirect("experiments:detail", search_id=search.pk)


@require_POST
def search_register_view(request: AuthenticatedHttpRequest, search_id: int) -> HttpResponse:
    search: Search = search_get_visible(user=request.user, search_id=search_id)
    try:
        version = search_register_best(
            user=request.user, search=search, name=request.POST.get("name", "")
        )
    except ValidationError as exc:
        for problems in exc.message_dict.values():
            for problem in problems:
                messages.error(request, problem)
        return redirect("experiments:detail", search_id=search.pk)
    messages.success(request, f"Registered {version.name} v{version.version}.")
    return redirect("registry:detail", version_id=version.pk)
