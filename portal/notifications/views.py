"""Notification pages: the list (mark read), preferences, webhooks and their delivery log."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from portal.accounts.http import AuthenticatedHttpRequest
from portal.notifications import selectors, services
from portal.notifications.models import Event

PAGE_SIZE = 50


class PreferencesForm(forms.Form):
    events = forms.MultipleChoiceField(
        choices=Event.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    email = forms.BooleanField(required=False, label="Also by email")


class WebhookForm(forms.Form):
    url = forms.CharField(max_length=500, label="URL", help_text="http(s), on a public host.")
    events = forms.MultipleChoiceField(
        choices=Event.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[Event.JOB_SUCCEEDED, Event.JOB_FAILED],
    )


def _page(
    request: AuthenticatedHttpRequest,
    *,
    webhook_form: WebhookForm | None = None,
    secret: str = "",
    status: int = 200,
) -> HttpResponse:
    preferences = services.preferences_of(request.user)
    notifications = Paginator(selectors.notifications_of(request.user), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    response = render(
        request,
        "notifications/list.html",
        {
            "notifications": notifications,
            "preferences_form": PreferencesForm(
                initial={"events": preferences.events, "email": preferences.email}
            ),
            "webhook_form": webhook_form or WebhookForm(),
            "webhooks": selectors.webhooks_of(request.user),
            "secret": secret,
        },
        status=status,
    )
    # A new webhook's secret must not survive in a cache or the back button's copy.
    response["Cache-Control"] = "no-store"
    return response


@require_http_methods(["GET"])
def notification_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _page(request)


@require_POST
def notifications_read(request: AuthenticatedHttpRequest) -> HttpResponseRedirect:
    """Mark one notification read (`id`), or all of them."""
    value = request.POST.get("id", "")
    ids = [int(value)] if value.isdigit() and int(value) < 2**63 else None
    services.notifications_mark_read(user=request.user, ids=ids)
    return redirect("notifications:list")


@require_POST
def preferences_save(request: AuthenticatedHttpRequest) -> HttpResponseRedirect:
    form = PreferencesForm(request.POST)
    if form.is_valid():
        services.preferences_update(
            user=request.user, events=form.cleaned_data["events"], email=form.cleaned_data["email"]
        )
        messages.success(request, "Saved your notification preferences.")
    return redirect("notifications:list")


@require_POST
def webhook_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = WebhookForm(request.POST)
    if not form.is_valid():
        return _page(request, webhook_form=form, status=400)
    try:
        issued = services.webhook_create(
            user=request.user, url=form.cleaned_data["url"], events=form.cleaned_data["events"]
        )
    except ValidationError as exc:
        for field, errors in exc.message_dict.items():
            for error in errors:
                form.add_error(field if field in form.fields else None, error)
        return _page(request, webhook_form=form, status=400)
    return _page(request, secret=issued.secret)


@require_http_methods(["GET"])
def webhook_detail(request: AuthenticatedHttpRequest, webhook_id: int) -> HttpResponse:
    webhook = selectors.webhook_get_own(user=request.user, webhook_id=webhook_id)
    deliveries = Paginator(
        selectors.deliveries_of(request.user, webhook=webhook), PAGE_SIZE
    ).get_page(request.GET.get("page"))
    return render(
        request, "notifications/webhook.html", {"webhook": webhook, "deliveries": deliveries}
    )


@require_POST
def webhook_test(request: AuthenticatedHttpRequest, webhook_id: int) -> HttpResponseRedirect:
    webhook = selectors.webhook_get_own(user=request.user, webhook_id=webhook_id)
    services.webhook_test(user=request.user, webhook=webhook)
    messages.success(request, "Queued a test delivery.")
    return redirect("notifications:webhook", webhook_id=webhook.pk)


@require_POST
def webhook_delete(request: AuthenticatedHttpRequest, webhook_id: int) -> HttpResponseRedirect:
    webhook = selectors.webhook_get_own(user=request.user, webhook_id=webhook_id)
    services.webhook_delete(user=request.user, webhook=webhook)
    messages.success(request, f"Deleted the webhook to {webhook.url}.")
    return redirect("notifications:list")
