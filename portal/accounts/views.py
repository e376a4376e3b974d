"""The API tokens page: list your tokens, create one (its secret is shown once), revoke one."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from portal.accounts.http import AuthenticatedHttpRequest
from portal.accounts.models import ApiToken
from portal.accounts.selectors import api_tokens_of
from portal.accounts.services import IssuedToken, api_token_create, api_token_revoke
from portal.lib.text import validate_safe_text


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        validators=[validate_safe_text],
        help_text="What the token is for, e.g. “laptop CLI”.",
    )
    scope = forms.ChoiceField(choices=ApiToken.Scope.choices, initial=ApiToken.Scope.WRITE)
    expires_in_days = forms.IntegerField(
        label="Expires after (days)",
        required=False,
        min_value=1,
        max_value=3650,
        initial=90,
        help_text="Leave empty for a token that never expires.",
    )


def _tokens_page(
    request: AuthenticatedHttpRequest,
    form: TokenForm,
    issued: IssuedToken | None = None,
    status: int = 200,
) -> HttpResponse:
    tokens = api_tokens_of(request.user)
    response = render(
        request,
        "accounts/tokens.html",
        {"form": form, "tokens": tokens, "issued": issued},
        status=status,
    )
    # The plaintext must not survive in a cache or the back button's copy of the page.
    response["Cache-Control"] = "no-store"
    return response


@require_http_methods(["GET", "POST"])
def token_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _tokens_page(request, TokenForm())
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _tokens_page(request, form, status=400)
    days = form.cleaned_data["expires_in_days"]
    issued = api_token_create(
        user=request.user,
        name=form.cleaned_data["name"],
        scope=form.cleaned_data["scope"],
        expires_in=timedelta(days=days) if days else None,
    )
    # Rendered into this response rather than redirected: the secret never touches the session.
    return _tokens_page(request, TokenForm(), issued=issued)


@require_POST
def token_revoke(request: AuthenticatedHttpRequest, token_id: int) -> HttpResponseRedirect:
    token = get_object_or_404(api_tokens_of(request.user), pk=token_id)
    api_token_revoke(token=token)
    messages.success(request, f"Revoked “{token.name}”.")
    return redirect("accounts:tokens")
