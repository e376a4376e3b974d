from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from portal.audit.context import client_ip_of, reset_current_client_ip, set_current_client_ip


class ClientAddressMiddleware:
    """Makes the request's client address available to `audit_record` while it is handled."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = set_current_client_ip(client_ip_of(request))
        try:
            return self.get_response(request)
        finally:
            reset_current_client_ip(token)
