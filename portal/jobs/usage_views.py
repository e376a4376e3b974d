"""The usage page (`/usage/`: a chart over time and the heaviest jobs), its CSV export, and
the admins' quotas page (`/quotas/`: every user's and team's usage against each limit, live).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from portal.accounts.http import AuthenticatedHttpRequest
from portal.accounts.models import Team
from portal.accounts.selectors import team_ids_of, user_is_admin
from portal.jobs.quotas import quotas_overview
from portal.jobs.selectors import jobs_visible_to
from portal.jobs.usage import (
    USAGE_RANGES,
    Usage,
    UsageScope,
    jobs_with_usage,
    usage_csv_rows,
    usage_scope,
)

DEFAULT_DAYS = 30
TOP_JOBS = 50


def usage_days(raw: str | None) -> int:
    """The range asked for (`?days=`), one of USAGE_RANGES; the default otherwise."""
    try:
        days = int(raw or DEFAULT_DAYS)
    except ValueError:
        return DEFAULT_DAYS
    return days if days in USAGE_RANGES else DEFAULT_DAYS


def scope_of(request: AuthenticatedHttpRequest) -> UsageScope:
    return usage_scope(
        user=request.user,
        admin=user_is_admin(request.user),
        username=request.GET.get("user", "").strip(),
        team=request.GET.get("team", "").strip(),
    )


def usage_data(scope: UsageScope, days: int) -> dict[str, Any]:
    """The page's and the API's figures for `scope` over the last `days`."""
    now = timezone.now()
    since = now - timedelta(days=days)
    bucket = USAGE_RANGES[days]
    totals = scope.totals(since=since, now=now)
    return {
        "label": scope.label,
        "days": days,
        "since": since.timestamp(),
        "at": now.timestamp(),
        "bucket_s": bucket.total_seconds(),
        "totals": totals.as_dict(),
        "series": scope.series(since=since, now=now, bucket=bucket),
    }


@require_http_methods(["GET"])
def usage_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    scope = scope_of(request)
    days = usage_days(request.GET.get("days"))
    data = usage_data(scope, days)
    now = timezone.now()
    heaviest = jobs_with_usage(
        scope.jobs(jobs_visible_to(request.user)),
        since=now - timedelta(days=days),
        now=now,
    ).select_related("owner", "team")[:TOP_JOBS]
    admin = user_is_admin(request.user)
    teams = (
        Team.objects.order_by("name")
        if admin
        else Team.objects.filter(pk__in=team_ids_of(request.user))
    )
    return render(
        request,
        "jobs/usage.html",
        {
            "data": data,
            "ranges": sorted(USAGE_RANGES),
            "jobs": [
                {"job": job, "usage": Usage(int(job.gpu_us or 0), int(job.slot_us or 0))}  # type: ignore[attr-defined]
                for job in heaviest
            ],
            "teams": list(teams.values_list("name", flat=True)),
            "admin": admin,
            "query": request.GET.urlencode(),
        },
    )


class _Echo:
    """A file-like object whose write returns the line: `csv.writer` then yields rows."""

    def write(self, value: str) -> str:
        return value


@require_http_methods(["GET"])
def usage_csv(request: AuthenticatedHttpRequest) -> StreamingHttpResponse:
    """Every job of the scope that held anything in the range, one CSV row each, streamed."""
    scope = scope_of(request)
    days = usage_days(request.GET.get("days"))
    now = timezone.now()
    rows = usage_csv_rows(
        scope.jobs(jobs_visible_to(request.user)), since=now - timedelta(days=days), now=now
    )
    writer = csv.writer(_Echo())
    lines: Iterator[str] = (writer.writerow(row) for row in rows)
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="usage-{days}d-{now:%Y%m%d}.csv"'
    return response


@require_http_methods(["GET"])
def quotas_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    # Every user's and team's use is the admins' to see: for anyone else the page is not there.
    if not user_is_admin(request.user):
        raise Http404
    return render(request, "jobs/quotas.html", {"overview": quotas_overview()})
