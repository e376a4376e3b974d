"""The answer for a path under STATIC_URL that WhiteNoise does not serve."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponseNotFound


@login_not_required
def static_not_found(request: HttpRequest, missing: str) -> HttpResponseNotFound:
    return HttpResponseNotFound("Not found.", content_type="text/plain")
