"""The body of each OS process in the parallel-submission tests (started with `spawn`, so it
is a fresh interpreter with its own Django and its own PostgreSQL connection)."""

from __future__ import annotations

import contextlib
import os
from typing import Any


def submit_and_schedule(
    database_url: str,
    usernames: list[str],
    submissions: int,
    request: dict[str, Any],
    barrier: Any,
    pass_every: int,
) -> None:
    """For each username in turn: wait for the other processes, then submit `submissions`
    jobs as that user as fast as possible, with a scheduler pass after every `pass_every`
    submits (0: none); then wait for the others again (the parent checks the round)."""
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.exceptions import ValidationError

    from portal.jobs.scheduling import schedule_pass
    from portal.jobs.schemas import JobRequest
    from portal.jobs.services import job_submit

    job_request = JobRequest.model_validate(request)
    for username in usernames:
        user = User.objects.get(username=username)
        barrier.wait(timeout=120)
        for index in range(1, submissions + 1):
            # A refusal (the queued-jobs limit) is an outcome: the parent counts what was queued.
            with contextlib.suppress(ValidationError):
                job_submit(user=user, request=job_request)
            if pass_every and index % pass_every == 0:
                schedule_pass()
        barrier.wait(timeout=120)
