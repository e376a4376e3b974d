"""The audit log page, for admins."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from portal.audit.selectors import audit_events

EVENTS_PER_PAGE = 100


@require_http_methods(["GET"])
def audit_log(request: HttpRequest) -> HttpResponse:
    user = request.user
    # The same rule as `portal.accounts.selectors.user_is_admin` (active staff), which this
    # low app cannot import; to anyone else the page does not exist.
    if not (user.is_active and user.is_staff):
        raise Http404
    page = Paginator(audit_events(), EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "audit/log.html", {"page": page})
