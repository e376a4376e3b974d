"""Maximum run time: the reaper (`portal.jobs.tasks.reap_nodes`, every
`TRAINYARD_REAP_TICK_S`) stops every attempt that has run past its job's `max_run_time_s`.

The clock starts when the attempt's first node reports it started (or, before that, when it
was placed), the same start the scheduler's reservations and estimates count from, so a
reservation's start is honoured to within one reaper tick plus the nodes' cancel grace.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import DateTimeField, ExpressionWrapper, F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from portal.jobs.models import Attempt
from portal.jobs.services import attempt_timed_out


def attempts_past_run_time() -> list[int]:
    """Ids of the active attempts past their job's maximum run time, in one query."""
    deadline = ExpressionWrapper(
        Coalesce(F("started_at"), F("created_at"))
        + F("job__max_run_time_s") * Value(timedelta(seconds=1)),
        output_field=DateTimeField(),
    )
    return list(
        Attempt.objects.filter(state__in=Attempt.ACTIVE)
        .annotate(deadline=deadline)
        .filter(deadline__lt=timezone.now())
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def attempts_stop_past_run_time() -> int:
    """Stop every attempt past its maximum run time; returns how many were stopped."""
    return sum(attempt_timed_out(attempt_id=attempt_id) for attempt_id in attempts_past_run_time())
