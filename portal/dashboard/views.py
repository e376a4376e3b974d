"""The dashboard: the home page, the cluster at a glance."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from portal.accounts.http import AuthenticatedHttpRequest
from portal.accounts.selectors import user_is_admin
from portal.dashboard.selectors import (
    cluster_summary,
    queue_series,
    series_bucket_s,
    utilisation_series,
)

DEFAULT_HOURS = 24
RANGES = [(6, "6 h"), (24, "24 h"), (24 * 7, "7 days"), (24 * 30, "30 days")]


@require_http_methods(["GET"])
def dashboard(request: AuthenticatedHttpRequest) -> HttpResponse:
    # The first paint has every figure (the same dict the API answers); the page then
    # follows /ws/dashboard/ and fetches other ranges from the API.
    data = {
        "summary": cluster_summary(user=request.user),
        "hours": DEFAULT_HOURS,
        "bucket_s": series_bucket_s(DEFAULT_HOURS),
        "utilisation": utilisation_series(hours=DEFAULT_HOURS),
        "queue": queue_series(hours=DEFAULT_HOURS),
        "admin": user_is_admin(request.user),
    }
    return render(request, "dashboard/home.html", {"data": data, "ranges": RANGES})
