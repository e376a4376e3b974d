"""Log retention (a service): the lines of long-finished jobs are deleted.

Run hourly by beat (`portal.jobs.tasks.expire_logs`). Lines go in chunks of one job at a time,
so a job with millions of lines never holds one long transaction or one huge lock.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.jobs.models import Job, JobLogVolume, LogLine

logger = logging.getLogger(__name__)

DELETE_CHUNK = 10_000


def log_lines_expire(*, days: int | None = None, chunk: int = DELETE_CHUNK) -> int:
    """Delete the log lines of jobs that finished more than `days` (default
    `TRAINYARD_LOG_RETENTION_DAYS`; 0 keeps everything) ago. Returns how many went."""
    days = settings.TRAINYARD_LOG_RETENTION_DAYS if days is None else days
    if days <= 0:
        return 0
    cutoff = timezone.now() - timedelta(days=days)
    expired = Job.objects.filter(finished_at__lt=cutoff, log_lines__isnull=False).distinct()
    deleted = 0
    for job_id in expired.values_list("pk", flat=True):
        while True:
            with transaction.atomic():
                ids = list(
                    LogLine.objects.filter(job_id=job_id).values_list("pk", flat=True)[:chunk]
                )
                if not ids:
                    break
                deleted += LogLine.objects.filter(pk__in=ids).delete()[0]
        JobLogVolume.objects.filter(job_id=job_id).delete()
    if deleted:
        logger.info("deleted %d log lines of jobs finished before %s", deleted, cutoff)
    return deleted
