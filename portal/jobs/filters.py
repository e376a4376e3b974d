"""The job list's filters, read from the query string, so any view of the list is a link that
can be bookmarked and shared (`/jobs/?owner=alice&state=failed`)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django import forms
from django.contrib.auth.models import AbstractBaseUser, User
from django.db.models import Exists, OuterRef
from django.utils import timezone

from portal.accounts.models import Team
from portal.accounts.selectors import user_is_admin
from portal.catalog.selectors import datasets_visible_to, models_visible_to
from portal.jobs.listing import DEFAULT_SORT, JobFilters
from portal.jobs.models import Job

SORT_CHOICES = [
    ("-created", "Newest first"),
    ("created", "Oldest first"),
    ("name", "Name, A to Z"),
    ("-name", "Name, Z to A"),
    ("state", "State, A to Z"),
    ("-state", "State, Z to A"),
]


def _day_start(day: Any) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


class JobFilterForm(forms.Form):
    """GET parameters of the job list. Every field is optional; a bad value is reported and
    that one filter ignored, so a mistyped link still shows a list."""

    q = forms.CharField(required=False, max_length=200, label="Name contains")
    state = forms.ChoiceField(required=False, choices=[("", "Any state"), *Job.State.choices])
    owner = forms.ChoiceField(required=False)
    team = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    dataset = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    model = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    pool = forms.CharField(required=False, max_length=63)
    since = forms.DateField(
        required=False, label="Created from", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, label="Created to", widget=forms.DateInput(attrs={"type": "date"})
    )
    sort = forms.ChoiceField(required=False, choices=SORT_CHOICES)
    # Keyset cursors (`portal.jobs.listing`); not shown.
    after = forms.CharField(required=False, max_length=500, widget=forms.HiddenInput)
    before = forms.CharField(required=False, max_length=500, widget=forms.HiddenInput)

    def __init__(self, data: Any, *, user: AbstractBaseUser) -> None:
        super().__init__(data)
        admin = user_is_admin(user)
        teams = Team.objects.all() if admin else Team.objects.filter(members=user.pk)
        team_choices = list(teams.order_by("name").values_list("pk", "name"))
        # Whose jobs the viewer could filter to: anyone with a job (admins), or themselves
        # and their teammates.
        people = User.objects.filter(Exists(Job.objects.filter(owner=OuterRef("pk"))))
        if not admin:
            people = User.objects.filter(teams__in=[pk for pk, _ in team_choices]) | (
                User.objects.filter(pk=user.pk)
            )
        names = sorted(set(people.values_list("username", flat=True)))
        everyone = "Everyone" if admin else "Me and my teams"
        self.fields["owner"].choices = [  # type: ignore[attr-defined]
            ("", everyone),
            ("me", "Me"),
            ("team", "My teams"),
            *[(name, name) for name in names],
        ]
        self.fields["team"].choices = [("", "Any team"), *team_choices]  # type: ignore[attr-defined]
        datasets = datasets_visible_to(user).order_by("name").values_list("pk", "name")
        models = models_visible_to(user).order_by("name").values_list("pk", "name")
        self.fields["dataset"].choices = [("", "Any dataset"), *datasets]  # type: ignore[attr-defined]
        self.fields["model"].choices = [("", "Any model"), *models]  # type: ignore[attr-defined]

    def filters(self) -> JobFilters:
        """The filters whose values are valid (`is_valid()` must have run)."""
        data = self.cleaned_data
        since, until = data.get("since"), data.get("until")
        return JobFilters(
            q=data.get("q") or "",
            state=data.get("state") or "",
            owner=data.get("owner") or "",
            team=data.get("team"),
            dataset=data.get("dataset"),
            model=data.get("model"),
            pool=data.get("pool") or "",
            created_after=_day_start(since) if since else None,
            # "To" a date includes that whole day.
            created_before=_day_start(until + timedelta(days=1)) if until else None,
            sort=data.get("sort") or DEFAULT_SORT,
        )

    @property
    def is_filtered(self) -> bool:
        shown = ("q", "state", "owner", "team", "dataset", "model", "pool", "since", "until")
        return any(self.cleaned_data.get(name) for name in shown)
