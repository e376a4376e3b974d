"""REST API authentication with personal access tokens (`Authorization: Bearer ty_...`)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from portal.accounts.models import ApiToken
from portal.accounts.services import api_token_authenticate


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[AbstractBaseUser, ApiToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() not in {"bearer", "token"}:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        token = api_token_authenticate(header[1])
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


class TokenScopePermission(permissions.BasePermission):
    """Read-only tokens may only use safe methods. Sessions are not scoped."""

    message = "This token is read-only."

    def has_permission(self, request: Request, view: Any) -> bool:
        token = request.auth
        if isinstance(token, ApiToken) and token.scope == ApiToken.Scope.READ:
            return request.method in permissions.SAFE_METHODS
        return True


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Describes `ApiTokenAuthentication` in the OpenAPI schema. Defining it here registers it
    whenever DRF loads the authentication classes, before drf-spectacular walks the views."""

    target_class = "portal.accounts.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "ty_<prefix>_<secret>",
            "description": "A personal access token: `python manage.py token_create`.",
        }


def authenticated_user(request: Request) -> AbstractBaseUser:
    """The caller of an API view behind IsAuthenticated (which refused anonymous callers)."""
    user = request.user
    assert isinstance(user, AbstractBaseUser)
    return user
