"""Job pages: the list (filtered, sorted, paged by keyset), the submit form (blank, a copy of
a job, or from a template), one job's page, comparing jobs, and cancelling one job or several."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from portal.accounts.http import AuthenticatedHttpRequest
from portal.accounts.models import Team
from portal.jobs import compare
from portal.jobs.filters import JobFilterForm
from portal.jobs.forms import CHOICE_LABELS, JobForm
from portal.jobs.job_templates import (
    job_template_delete,
    job_template_get_visible,
    job_template_save,
    job_templates_visible_to,
)
from portal.jobs.listing import PAGE_SIZE, SORTS, jobs_listed, jobs_page
from portal.jobs.models import Job
from portal.jobs.phases import phase_bars
from portal.jobs.preview import job_preview
from portal.jobs.selectors import (
    checkpoint_path,
    job_attempts,
    job_checkpoints,
    job_get_visible,
    job_queue_position,
    why_pending_visible,
)
from portal.jobs.services import DryRunUnavailable, job_cancel, job_submit, jobs_cancel
from portal.jobs.telemetry import log_truncated
from portal.jobs.throttling import submit_retry_after
from portal.jobs.usage import attempts_usage

JOBS_PER_PAGE = PAGE_SIZE
# Checkboxes one "Cancel selected" may carry: a page's worth, and then some.
MAX_BULK_CANCEL = 500
TIMES = "\N{MULTIPLICATION SIGN}"


def format_duration(start: datetime | None, end: datetime | None) -> str:
    """ "1h 02m", "3m 07s", "12s"; empty before the job starts."""
    if start is None:
        return ""
    seconds = max(0, int(((end or timezone.now()) - start).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


def resources_label(job: Job) -> str:
    nodes = f"{job.nodes} node{'s' if job.nodes != 1 else ''}"
    if job.gpus_per_node:
        return f"{nodes} {TIMES} {job.gpus_per_node} GPU{'s' if job.gpus_per_node != 1 else ''}"
    procs = job.procs_per_node
    return f"{nodes} {TIMES} {procs} CPU proc{'s' if procs != 1 else ''}"


def _labelled(section: dict[str, Any]) -> dict[str, Any]:
    """A spec section with the form's display names for its choices ("adam" -> "Adam")."""
    shown = dict(section)
    for name, labels in CHOICE_LABELS.items():
        if name in shown:
            shown[name] = labels.get(shown[name], shown[name])
    return shown


def _hyperparameter_rows(params: dict[str, Any]) -> list[tuple[str, list[str] | None, str]]:
    """(label, chips for a list, text otherwise) for each stored hyperparameter."""
    rows: list[tuple[str, list[str] | None, str]] = []
    for name, value in _labelled(params).items():
        label = name.replace("_", " ").capitalize()
        if isinstance(value, list):
            rows.append((label, [str(item) for item in value], ""))
        else:
            rows.append((label, None, str(value)))
    return rows


@require_http_methods(["GET"])
def job_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = JobFilterForm(request.GET, user=request.user)
    form.is_valid()  # each bad value is shown, and that one filter ignored
    filters = form.filters()
    page = jobs_page(
        jobs_listed(user=request.user, filters=filters),
        sort=filters.sort,
        after=form.cleaned_data.get("after") or "",
        before=form.cleaned_data.get("before") or "",
        size=JOBS_PER_PAGE,
    )
    rows = [
        {
            "job": job,
            "resources": resources_label(job),
            "duration": format_duration(job.started_at, job.finished_at),
            "cancellable": not job.is_terminal,
        }
        for job in page.jobs
    ]
    column, descending = filters.sort.lstrip("-"), filters.sort.startswith("-")
    # A header sorts by its column, and again the other way round; a new sort starts at
    # the first page.
    sorts = {
        key: {
            "param": f"{'' if key == column and descending else '-'}{key}",
            "current": ("descending" if descending else "ascending") if key == column else "",
        }
        for key in SORTS
    }
    return render(
        request,
        "jobs/list.html",
        {
            "form": form,
            "filtered": form.is_filtered,
            "page": page,
            "rows": rows,
            "sorts": sorts,
            "first_page": page.newer is None,
        },
    )


@require_POST
def job_cancel_many(request: AuthenticatedHttpRequest) -> HttpResponseRedirect:
    """ "Cancel selected" on the job list: back to the same view of the list."""
    ids = [int(value) for value in request.POST.getlist("job") if value.isdigit()]
    cancelled = jobs_cancel(user=request.user, job_ids=ids[:MAX_BULK_CANCEL])
    if cancelled:
        names = ", ".join(f"#{job.pk}" for job in cancelled)
        messages.success(
            request,
            f"Cancelling {len(cancelled)} job{'s' if len(cancelled) != 1 else ''}: {names}.",
        )
    else:
        messages.info(request, "No unfinished job was selected.")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = reverse("jobs:list")
    return HttpResponseRedirect(back)


def _form_source(request: AuthenticatedHttpRequest) -> tuple[dict[str, object] | None, str]:
    """The spec the form starts from, and what it is (for the page): a job's (`?from=<id>`,
    "run again with changes") or a template's (`?template=<id>`); a 404 for one the user may
    not see. The form carries the choice as a hidden field, so the POST sees it too."""
    params = request.POST if request.method == "POST" else request.GET
    for key in ("from", "template"):
        value = params.get(key, "")
        if not value:
            continue
        if not value.isdigit() or int(value) >= 2**63:
            raise Http404("No such job or template.")
        if key == "from":
            job = job_get_visible(user=request.user, job_id=int(value))
            return job.spec, f"a copy of job #{job.pk} ({job.name})"
        template = job_template_get_visible(user=request.user, template_id=int(value))
        return template.spec, f"template {template.name}"
    return None, ""


@require_http_methods(["GET", "POST"])
def job_new(request: AuthenticatedHttpRequest) -> HttpResponse:
    source, source_label = _form_source(request)
    form = JobForm(
        request.POST or None,
        user=request.user,
        selected_model=request.GET.get("model"),
        selected_dataset=request.GET.get("dataset"),
        source=source,
    )
    context: dict[str, object] = {
        "form": form,
        "source_label": source_label,
        "source_fields": {
            key: request.POST.get(key) or request.GET.get(key, "") for key in ("from", "template")
        },
        "teams": Team.objects.filter(members=request.user.pk).order_by("name"),
    }
    retry_after = submit_retry_after(request) if request.method == "POST" else None
    if retry_after is not None and "save_template" not in request.POST:
        form.add_error(
            None,
            f"You are submitting jobs too fast; try again in {retry_after} seconds.",
        )
        response = render(request, "jobs/new.html", context, status=429)
        response["Retry-After"] = str(retry_after)
        return response
    if request.method == "POST" and form.is_valid():
        assert form.job_request is not None
        if "save_template" in request.POST:
            return _save_template_from_form(request, form, context)
        try:
            job = job_submit(user=request.user, request=form.job_request)
        except ValidationError as exc:
            form.add_submit_errors(exc)
        except DryRunUnavailable as exc:
            form.add_error(None, str(exc))
            return render(request, "jobs/new.html", context, status=503)
        else:
            messages.success(request, f"Submitted {job.name or f'job #{job.pk}'}.")
            return redirect("jobs:detail", job_id=job.pk)
    return render(
        request,
        "jobs/new.html",
        context,
        status=400 if form.is_bound and form.errors else 200,
    )


@require_POST
def job_preview_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The job form's "Preview": what the scheduler would do with the form's job now (the
    plan preview), as a fragment the form shows; nothing is stored."""
    form = JobForm(request.POST, user=request.user)
    preview = None
    if form.is_valid():
        assert form.job_request is not None
        try:
            preview = job_preview(user=request.user, request=form.job_request)
        except ValidationError as exc:
            form.add_submit_errors(exc)
        except DryRunUnavailable as exc:
            form.add_error(None, str(exc))
    errors = [
        f"{form.fields[name].label if name in form.fields else ''}: {message}".lstrip(": ")
        for name, messages in form.errors.items()
        for message in messages
    ]
    return render(request, "jobs/_plan_preview.html", {"preview": preview, "errors": errors})


def _save_template_from_form(
    request: AuthenticatedHttpRequest, form: JobForm, context: dict[str, object]
) -> HttpResponse:
    assert form.job_request is not None
    try:
        template = job_template_save(
            user=request.user,
            name=request.POST.get("template_name", ""),
            spec=form.job_request,
            team=request.POST.get("template_team") or None,
            replace=request.POST.get("template_replace") == "on",
        )
    except ValidationError as exc:
        for messages_ in exc.message_dict.values():
            for message in messages_:
                form.add_error(None, f"The template was not saved: {message}")
        return render(request, "jobs/new.html", context, status=400)
    messages.success(request, f"Saved template {template.name}.")
    return redirect("jobs:templates")


@require_http_methods(["GET"])
def job_detail(request: AuthenticatedHttpRequest, job_id: int) -> HttpResponse:
    job = job_get_visible(user=request.user, job_id=job_id)
    attempts = job_attempts(job)
    checkpoints = job_checkpoints(job)
    # The newest "best so far" is the job's best.
    best = next((c for c in reversed(checkpoints) if c.is_best), None)
    spec: dict[str, Any] = job.spec if isinstance(job.spec, dict) else {}
    latest = next(iter(attempts), None)
    [why] = why_pending_visible(
        user=request.user,
        records=[job.why_pending if job.state == Job.State.QUEUED else None],
    )
    estimate = why.get("estimated_start") if why else None
    # Newest first: the latest preemption.
    preempted = next((a for a in attempts if a.preempted_by_id is not None), None)
    config = {
        "id": job.pk,
        "state": job.state,
        "attempt": latest.pk if latest else None,
        "terminal": sorted(Job.TERMINAL),
        "wsPath": f"/ws/jobs/{job.pk}/",
        "logsPath": reverse("jobs-api:logs", args=[job.pk]),
        # Long runs' charts and the device timeline (static/js/job-charts.js).
        "seriesUrl": reverse("jobs-api:metrics-series", kwargs={"job_id": job.pk}),
        "timelineUrl": reverse("jobs-api:timeline", kwargs={"job_id": job.pk}),
    }
    return render(
        request,
        "jobs/detail.html",
        {
            "job": job,
            "attempts": attempts,
            "log_truncated": log_truncated(job),
            "log_cap": filesizeformat(settings.TRAINYARD_LOG_MAX_BYTES_PER_JOB),
            "phase_bars": phase_bars(job, list(attempts)),
            "hyperparameters": _hyperparameter_rows(spec.get("hyperparameters", {})),
            "checkpoints": [
                {
                    "checkpoint": checkpoint,
                    "available": checkpoint_path(checkpoint) is not None,
                    "download": reverse(
                        "jobs-api:checkpoint-download",
                        kwargs={"job_id": job.pk, "checkpoint_id": checkpoint.pk},
                    ),
                }
                for checkpoint in checkpoints
            ],
            "best_checkpoint_id": best.pk if best else None,
            "training": _labelled(spec.get("training", {})),
            "resources": resources_label(job),
            "duration": format_duration(job.started_at, job.finished_at),
            # The reason's position is as of the last scheduler pass; this one is current.
            "queue_position": job_queue_position(job),
            # From the attempts' placements already loaded: live, up to now, no query.
            "usage": attempts_usage(attempts, now=timezone.now()),
            "why": why,
            "why_estimate": datetime.fromisoformat(estimate) if estimate else None,
            "preempted": preempted,
            "config": config,
            "teams": Team.objects.filter(members=request.user.pk).order_by("name"),
        },
    )


@require_POST
def job_cancel_view(request: AuthenticatedHttpRequest, job_id: int) -> HttpResponseRedirect:
    job = job_get_visible(user=request.user, job_id=job_id)
    if job.is_terminal:
        messages.info(request, f"Job #{job.pk} had already finished.")
    else:
        job = job_cancel(user=request.user, job=job)
        messages.success(request, f"Cancelling job #{job.pk}.")
    return redirect("jobs:detail", job_id=job.pk)


@require_http_methods(["GET"])
def job_compare(request: AuthenticatedHttpRequest) -> HttpResponse:
    """`/jobs/compare/?jobs=3,5,8`: the curves overlaid, the settings diffed, the metrics side
    by side. A 404 unless the viewer may see every job named."""
    ids = compare.compare_ids(request.GET.get("jobs", ""))
    jobs = compare.jobs_compared(user=request.user, job_ids=ids)
    summaries = compare.metric_summaries(jobs)
    config = {
        "jobs": [
            {
                "id": job.pk,
                "name": job.name,
                "metrics": reverse("jobs-api:metrics", kwargs={"job_id": job.pk}),
            }
            for job in jobs
        ]
    }
    return render(
        request,
        "jobs/compare.html",
        {
            "jobs": jobs,
            "rows": compare.settings_diff(jobs),
            "summaries": [(job, summaries[job.pk]) for job in jobs],
            "config": config,
            "max_compared": compare.MAX_COMPARED,
        },
    )


@require_http_methods(["GET"])
def job_template_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    templates = job_templates_visible_to(request.user)
    return render(request, "jobs/templates.html", {"templates": templates})


@require_POST
def job_template_from_job(request: AuthenticatedHttpRequest, job_id: int) -> HttpResponse:
    """ "Save as template" on a job page: the job's stored spec under a name."""
    job = job_get_visible(user=request.user, job_id=job_id)
    try:
        template = job_template_save(
            user=request.user,
            name=request.POST.get("name", ""),
            spec=job.spec,
            team=request.POST.get("team") or None,
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("jobs:detail", job_id=job.pk)
    messages.success(request, f"Saved template {template.name}.")
    return redirect("jobs:templates")


@require_POST
def job_template_delete_view(
    request: AuthenticatedHttpRequest, template_id: int
) -> HttpResponseRedirect:
    template = job_template_get_visible(user=request.user, template_id=template_id)
    job_template_delete(user=request.user, template=template)
    messages.success(request, f"Deleted template {template.name}.")
    return redirect("jobs:templates")
