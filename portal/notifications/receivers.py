"""What the apps below announce, turned into notifications (connected in `apps.ready`).

A job's end (succeeded, failed; a cancel was the user's own doing) and its flags (stalled,
idle, preempted) notify its owner; so does a search's end. Each receiver builds the event's
data once (`messages.EventData`) and calls `services.notify`.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.urls import NoReverseMatch, reverse

from portal.jobs.models import Job
from portal.notifications.messages import EventData
from portal.notifications.models import Event
from portal.notifications.services import notify

logger = logging.getLogger(__name__)

FLAG_EVENTS = {
    "stalled": Event.JOB_STALLED,
    "idle": Event.JOB_IDLE,
    "preempted": Event.JOB_PREEMPTED,
}
FLAG_WORDS = {"stalled": "stalled", "idle": "is idle on its GPUs", "preempted": "was preempted"}


def subject_url(path: str) -> str:
    """`path` on this portal: absolute when TRAINYARD_PUBLIC_URL says where that is."""
    return f"{settings.TRAINYARD_PUBLIC_URL}{path}" if path else ""


def job_data(job: Job, *, event: str, title: str, detail: str) -> EventData:
    return {
        "event": event,
        "title": title,
        "detail": detail,
        "subject": {
            "kind": "job",
            "id": job.pk,
            "name": job.name,
            "state": job.state,
            "reason": job.state_reason,
            "url": subject_url(reverse("jobs:detail", kwargs={"job_id": job.pk})),
        },
    }


def on_job_finished(sender: Any, *, job: Job, **kwargs: Any) -> None:
    ends: dict[str, Event] = {
        Job.State.SUCCEEDED: Event.JOB_SUCCEEDED,
        Job.State.FAILED: Event.JOB_FAILED,
    }
    event = ends.get(job.state)
    if event is None:
        return
    title = f"Job {job.name} #{job.pk} {job.state}"
    notify(user=job.owner, data=job_data(job, event=event, title=title, detail=job.state_reason))


def on_job_flagged(sender: Any, *, job: Job, flag: str, detail: str = "", **kwargs: Any) -> None:
    event = FLAG_EVENTS.get(flag)
    if event is None:
        logger.warning("job %s flagged %r: not a flag notifications know", job.pk, flag)
        return
    title = f"Job {job.name} #{job.pk} {FLAG_WORDS[flag]}"
    notify(user=job.owner, data=job_data(job, event=event, title=title, detail=detail))


def _search_path(search: Any) -> str:
    # The search page's URL, however the experiments app names it.
    getter = getattr(search, "get_absolute_url", None)
    if callable(getter):
        return str(getter())
    try:
        return reverse("experiments:search-detail", kwargs={"search_id": search.pk})
    except NoReverseMatch:
        try:
            return reverse("experiments:search-detail", args=[search.pk])
        except NoReverseMatch:
            return ""


def on_search_finished(sender: Any, *, search: Any, **kwargs: Any) -> None:
    state = str(getattr(search, "state", ""))
    event = {"succeeded": Event.SEARCH_SUCCEEDED, "failed": Event.SEARCH_FAILED}.get(state)
    if event is None:
        return
    reason = str(getattr(search, "state_reason", "") or "")
    data: EventData = {
        "event": event,
        "title": f"Search {search.name} #{search.pk} {state}",
        "detail": reason,
        "subject": {
            "kind": "search",
            "id": search.pk,
            "name": search.name,
            "state": state,
            "reason": reason,
            "url": subject_url(_search_path(search)),
        },
    }
    notify(user=search.owner, data=data)
