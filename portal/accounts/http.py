"""Request types for the signed-in pages."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest


class AuthenticatedHttpRequest(HttpRequest):
    """A request to a page behind LoginRequiredMiddleware, which admits no anonymous user."""

    user: User
