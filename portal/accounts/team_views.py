"""The teams pages: everyone sees their own teams; admins create, rename and delete teams,
add and remove members, and set each team's and each user's quota. A team (or user) you
may not see answers 404, like another user's job."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from portal.accounts import selectors, services
from portal.accounts.http import AuthenticatedHttpRequest
from portal.accounts.limits import PRIORITY_CEILING, PRIORITY_FLOOR, QUOTA_FIELDS, Limits
from portal.accounts.models import Team
from portal.lib.text import validate_safe_text


class TeamNameForm(forms.Form):
    name = forms.CharField(max_length=100, validators=[validate_safe_text])


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)


class QuotaForm(forms.Form):
    """Every limit of a quota; blank: the cluster default applies."""

    max_gpus = forms.IntegerField(label="GPUs at once", required=False, min_value=0)
    max_cpu_slots = forms.IntegerField(label="CPU slots at once", required=False, min_value=0)
    max_running_jobs = forms.IntegerField(label="Running jobs", required=False, min_value=0)
    max_queued_jobs = forms.IntegerField(label="Queued jobs", required=False, min_value=0)
    max_gpu_hours = forms.FloatField(label="GPU-hours in the window", required=False, min_value=0)
    max_cpu_slot_hours = forms.FloatField(
        label="CPU-slot-hours in the window", required=False, min_value=0
    )
    min_priority = forms.IntegerField(
        label="Lowest priority",
        required=False,
        min_value=PRIORITY_FLOOR,
        max_value=PRIORITY_CEILING,
    )
    max_priority = forms.IntegerField(
        label="Highest priority",
        required=False,
        min_value=PRIORITY_FLOOR,
        max_value=PRIORITY_CEILING,
    )


def _staff(request: AuthenticatedHttpRequest) -> User:
    if not selectors.user_is_admin(request.user):
        raise Http404
    return request.user


def _quota_context(holder: User | Team, form: QuotaForm | None = None) -> dict[str, Any]:
    quota = selectors.quota_of(holder)
    initial = {name: getattr(quota, name) for name in QUOTA_FIELDS} if quota else {}
    return {
        "quota_form": form or QuotaForm(initial=initial),
        "effective": Limits.of(quota),
        "defaults": Limits.of(None),
    }


def _apply_quota(request: AuthenticatedHttpRequest, holder: User | Team, form: QuotaForm) -> bool:
    if not form.is_valid():
        return False
    try:
        services.quota_set(holder=holder, values=form.cleaned_data, by=_staff(request))
    except ValidationError as exc:
        for field, errors in exc.message_dict.items():
            for error in errors:
                form.add_error(field if field in form.fields else None, error)
        return False
    return True


@require_http_methods(["GET", "POST"])
def team_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = TeamNameForm()
    if request.method == "POST":
        by = _staff(request)
        form = TeamNameForm(request.POST)
        if form.is_valid():
            try:
                team = services.team_create(name=form.cleaned_data["name"], by=by)
            except ValidationError as exc:
                form.add_error("name", exc.message_dict.get("name", exc.messages))
            else:
                messages.success(request, f"Created team {team.name}.")
                return redirect("accounts:team", team_id=team.pk)
    teams = selectors.teams_visible_to(request.user).order_by("name")
    return render(
        request,
        "accounts/teams.html",
        {"teams": teams, "form": form, "admin": selectors.user_is_admin(request.user)},
        status=400 if form.errors else 200,
    )


def _team_page(
    request: AuthenticatedHttpRequest, team: Team, *, status: int = 200, **forms_: Any
) -> HttpResponse:
    return render(
        request,
        "accounts/team.html",
        {
            "team": team,
            "admin": selectors.user_is_admin(request.user),
            "rename_form": forms_.get("rename_form") or TeamNameForm(initial={"name": team.name}),
            "member_form": forms_.get("member_form") or MemberForm(),
            **_quota_context(team, forms_.get("quota_form")),
        },
        status=status,
    )


@require_http_methods(["GET"])
def team_detail(request: AuthenticatedHttpRequest, team_id: int) -> HttpResponse:
    return _team_page(request, selectors.team_get_visible(user=request.user, team_id=team_id))


def _admin_team(request: AuthenticatedHttpRequest, team_id: int) -> tuple[Team, User]:
    team = selectors.team_get_visible(user=request.user, team_id=team_id)
    return team, _staff(request)


@require_POST
def team_rename(request: AuthenticatedHttpRequest, team_id: int) -> HttpResponse:
    team, by = _admin_team(request, team_id)
    form = TeamNameForm(request.POST)
    if form.is_valid():
        try:
            services.team_rename(team=team, name=form.cleaned_data["name"], by=by)
        except ValidationError as exc:
            form.add_error("name", exc.message_dict.get("name", exc.messages))
        else:
            messages.success(request, f"Renamed to {team.name}.")
            return redirect("accounts:team", team_id=team.pk)
    return _team_page(request, team, status=400, rename_form=form)


@require_POST
def team_delete(request: AuthenticatedHttpRequest, team_id: int) -> HttpResponseRedirect:
    team, by = _admin_team(request, team_id)
    name = team.name
    services.team_delete(team=team, by=by)
    messages.success(request, f"Deleted team {name}.")
    return redirect("accounts:teams")


@require_POST
def team_member_add(request: AuthenticatedHttpRequest, team_id: int) -> HttpResponse:
    team, by = _admin_team(request, team_id)
    form = MemberForm(request.POST)
    if form.is_valid():
        name = form.cleaned_data["username"].strip()
        user = User.objects.filter(username=name, is_active=True).first()
        if user is None:
            form.add_error("username", f"There is no user {name}.")
        else:
            services.team_member_add(team=team, user=user, by=by)
            messages.success(request, f"Added {user.username} to {team.name}.")
            return redirect("accounts:team", team_id=team.pk)
    return _team_page(request, team, status=400, member_form=form)


@require_POST
def team_member_remove(
    request: AuthenticatedHttpRequest, team_id: int, username: str
) -> HttpResponseRedirect:
    team, by = _admin_team(request, team_id)
    member = team.members.filter(username=username).first()
    if member is None:
        raise Http404
    services.team_member_remove(team=team, user=member, by=by)
    messages.success(request, f"Removed {member.username} from {team.name}.")
    return redirect("accounts:team", team_id=team.pk)


@require_POST
def team_quota(request: AuthenticatedHttpRequest, team_id: int) -> HttpResponse:
    team, _ = _admin_team(request, team_id)
    form = QuotaForm(request.POST)
    if _apply_quota(request, team, form):
        messages.success(request, f"Saved the quota of {team.name}.")
        return redirect("accounts:team", team_id=team.pk)
    return _team_page(request, team, status=400, quota_form=form)


@require_http_methods(["GET", "POST"])
def user_quota(request: AuthenticatedHttpRequest, username: str) -> HttpResponse:
    _staff(request)
    holder = User.objects.filter(username=username).first()
    if holder is None:
        raise Http404
    form = None
    if request.method == "POST":
        form = QuotaForm(request.POST)
        if _apply_quota(request, holder, form):
            messages.success(request, f"Saved the quota of {holder.username}.")
            return redirect("accounts:user-quota", username=holder.username)
    return render(
        request,
        "accounts/user_quota.html",
        {"holder": holder, "teams": holder.teams.order_by("name"), **_quota_context(holder, form)},
        status=400 if form is not None else 200,
    )
