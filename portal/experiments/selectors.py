"""Reads for searches: who sees which search, its trials, and what its page draws."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from portal.accounts.models import Team
from portal.accounts.selectors import user_is_admin
from portal.experiments.models import Search, Trial


def searches_visible_to(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Search]:
    """The user's own searches and their teams'; every search for admins (as for jobs)."""
    searches = Search.objects.all()
    if user_is_admin(user):
        return searches
    if not user.is_authenticated:
        return searches.none()
    teams = Team.objects.filter(members=user.pk).values("pk")
    return searches.filter(Q(owner=user.pk) | Q(team__in=teams))


def search_get_visible(*, user: AbstractBaseUser | AnonymousUser, search_id: int) -> Search:
    """The search, if the user may see it; Http404 otherwise, so an id reveals nothing."""
    found = (
        searches_visible_to(user)
        .select_related("owner", "team", "dataset", "model", "best_trial__job")
        .filter(pk=search_id)
        .first()
    )
    if found is None:
        raise Http404("No such search.")
    return found


def search_trials(search: Search) -> list[Trial]:
    """Every trial of `search` in number order, each with its job: one query."""
    return list(search.trials.select_related("job").order_by("number"))


def trial_duration_s(trial: Trial) -> float | None:
    job = trial.job
    if job is None or job.started_at is None:
        return None
    end = job.finished_at or trial.finished_at
    if end is None:
        end = timezone.now()
    return max((end - job.started_at).total_seconds(), 0.0)


def search_chart(search: Search, trials: list[Trial]) -> dict[str, Any]:
    """What the page draws: each trial's metric per epoch, the best completed value after
    each trial (by number), and each trial's params against its best value."""
    maximize = search.direction == Search.Direction.MAXIMIZE
    best: float | None = None
    best_over: list[float | None] = []
    for trial in trials:
        if trial.state == Trial.State.COMPLETED and trial.best_value is not None:
            value = trial.best_value
            if best is None or (value > best if maximize else value < best):
                best = value
        best_over.append(best)
    return {
        "metric": search.metric,
        "direction": search.direction,
        "dimensions": [dimension["name"] for dimension in search.space],
        "trials": [
            {
                "number": trial.number,
                "job": trial.job_id,
                "state": trial.state,
                "params": trial.params,
                "best": trial.best_value,
                "curve": sorted(
                    ([int(step), value] for step, value in trial.intermediate.items()),
                    key=lambda pair: pair[0],
                ),
            }
            for trial in trials
        ],
        "best_over_trials": best_over,
    }
