"""Roll metric points up into blocks (`MetricBlock`), what long runs' charts read.

A block holds the extremes of `MetricBlock.BLOCK_POINTS` consecutive seqs of one attempt, per
split. Only blocks that lie wholly below the attempt's newest block but one are written: every
point of such a block is stored (ingest stores an attempt's points within a batch of each
other), so a block is written once and never changes, and the insert is idempotent. The
points after an attempt's last block stay raw; `portal.jobs.series` reads them as they are.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.db.models import Max, OuterRef, Q, Subquery
from django.utils import timezone

from portal.jobs.models import Attempt, MetricBlock, MetricPoint

# An attempt that ended this long ago has no more points coming: beat stops looking at it.
SETTLED_AFTER = timedelta(hours=1)

FINITE = "{col} < 'Infinity'::float8 AND {col} > '-Infinity'::float8"

# Built from constants and table names; every value is a parameter.
_ROLL_SQL = f"""
INSERT INTO {MetricBlock._meta.db_table}
    (job_id, attempt_id, split, block, count, first_at, last_at,
     loss_min, loss_max, accuracy_min, accuracy_max, loss_last, accuracy_last)
SELECT job_id, attempt_id, split, seq / %(size)s, count(*), min(reported_at), max(reported_at),
       min(loss) FILTER (WHERE {FINITE.format(col="loss")}),
       max(loss) FILTER (WHERE {FINITE.format(col="loss")}),
       min(accuracy) FILTER (WHERE {FINITE.format(col="accuracy")}),
       max(accuracy) FILTER (WHERE {FINITE.format(col="accuracy")}),
       (array_agg(loss ORDER BY seq DESC))[1],
       (array_agg(accuracy ORDER BY seq DESC))[1]
FROM {MetricPoint._meta.db_table}
WHERE attempt_id = %(attempt)s AND seq >= %(start)s AND seq < %(end)s
GROUP BY job_id, attempt_id, split, seq / %(size)s
ON CONFLICT DO NOTHING
"""  # noqa: S608


def metric_blocks_roll(*, attempt_ids: list[int] | None = None) -> int:
    """Write the blocks that are due: of `attempt_ids`, or by default of every attempt still
    running or ended within `SETTLED_AFTER`. Returns the number of block rows written."""
    size = MetricBlock.BLOCK_POINTS
    attempts = Attempt.objects.all()
    if attempt_ids is None:
        recent = timezone.now() - SETTLED_AFTER
        attempts = attempts.filter(Q(finished_at__isnull=True) | Q(finished_at__gte=recent))
    else:
        attempts = attempts.filter(pk__in=attempt_ids)
    newest = MetricPoint.objects.filter(attempt=OuterRef("pk")).order_by("-seq").values("seq")
    due = attempts.annotate(
        last_block=Max("metric_blocks__block"), newest_seq=Subquery(newest[:1])
    ).filter(newest_seq__isnull=False)
    written = 0
    with connection.cursor() as cursor:
        for attempt_id, last_block, newest_seq in due.values_list("pk", "last_block", "newest_seq"):
            start = 0 if last_block is None else (last_block + 1) * size
            end = (newest_seq // size - 1) * size
            if end <= start:
                continue
            cursor.execute(
                _ROLL_SQL, {"size": size, "attempt": attempt_id, "start": start, "end": end}
            )
            written += cursor.rowcount
    return written
