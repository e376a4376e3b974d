"""The plan preview (`POST /api/v1/jobs/?dry_run=true`, the job form's "Preview"): a submit's
checks, then the scheduler's own planning over the current cluster and queue plus the job, as
if submitted now. Nothing is stored (`portal.jobs.scheduling.plan_preview`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from django.contrib.auth.models import AbstractBaseUser

from portal.jobs.scheduling import plan_preview
from portal.jobs.schemas import JobRequest
from portal.jobs.selectors import why_pending_visible
from portal.jobs.services import job_unsaved, job_validate


class PlanPreview(TypedDict):
    would_start: bool
    nodes: list[str]  # where it would start now
    reason: str  # the sentence its `state_reason` would say
    jobs_ahead: int  # in its queue
    binding_limit: dict[str, Any] | None  # the quota limit that holds it back
    estimated_start: datetime | None
    why_pending: dict[str, Any] | None  # the record it would get (the API's `why_pending`)


def job_preview(*, user: AbstractBaseUser, request: JobRequest) -> PlanPreview:
    """What the scheduler would do with `request` submitted by `user` now; raises what a
    submit raises for an invalid request."""
    job = job_unsaved(user=user, valid=job_validate(user=user, request=request))
    preview = plan_preview(job=job)
    [why] = why_pending_visible(user=user, records=[preview.why_pending])
    return {
        "would_start": preview.would_start,
        "nodes": list(preview.nodes),
        "reason": preview.reason,
        "jobs_ahead": why["position"] - 1 if why else 0,
        "binding_limit": why["quota"] if why else None,
        "estimated_start": preview.estimated_start,
        "why_pending": why,
    }
