"""What the experiments app does when the jobs app announces (`portal.jobs.signals`)."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from portal.experiments.models import Trial
from portal.experiments.services import search_advance_on_commit
from portal.jobs.models import Job
from portal.jobs.signals import job_finished


@receiver(job_finished, sender=Job, dispatch_uid="experiments-trial-finished")
def trial_job_finished(sender: type[Job], job: Job, **kwargs: Any) -> None:
    """A trial's job ended: its search may end the trial and launch the next. The work is the
    control worker's (it runs the next trials' dry runs); this only asks for it, from
    whichever process made the move (ingest, web, a worker)."""
    search_id = Trial.objects.filter(job_id=job.pk).values_list("search_id", flat=True).first()
    if search_id is not None:
        search_advance_on_commit(search_id)
