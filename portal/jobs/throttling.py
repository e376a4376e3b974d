"""The per-user job submission limit, shared by the API and the form.

One history per user (in the Redis cache), so switching between the API and the form does not
double the allowance. The rate is `TRAINYARD_SUBMIT_RATE` ("30/minute"; None: no limit), read
per request so tests can change it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from rest_framework.throttling import SimpleRateThrottle


class SubmitRateThrottle(SimpleRateThrottle):
    """DRF's sliding-window throttle on POSTs (submissions) only, keyed by user."""

    scope = "job-submit"

    def __init__(self) -> None:
        # The base class reads the rate once, from its class attribute; ours is a setting.
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)

    def get_rate(self) -> str | None:
        rate: str | None = settings.TRAINYARD_SUBMIT_RATE
        return rate

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if request.method != "POST" or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


def submit_retry_after(request: HttpRequest) -> int | None:
    """For the form: None when this submission may go ahead (and counts it), else the seconds
    to wait."""
    throttle = SubmitRateThrottle()
    if throttle.allow_request(request, None):  # type: ignore[arg-type]
        return None
    wait = throttle.wait()
    return max(1, int(wait + 0.999)) if wait is not None else 1
