"""Fair share: each user's recent use of the cluster, the scheduler's second sort key.

A placement's use is its GPUs (or CPU slots) times the time it held them, each moment weighted
by 2^-(age / half-life), `TRAINYARD_FAIR_SHARE_HALF_LIFE_H`: an hour of 8 GPUs a half-life ago
counts as 4 GPU-hours now. Summed per job owner in one query, in PostgreSQL; placements that
ended more than 20 half-lives ago weigh under one millionth and are left out.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection

from portal.jobs.models import Attempt, Job, Placement

# Ages past this many half-lives are clamped (2^-60 is 0 for any sum we make): PostgreSQL's
# power() raises on underflow.
_MAX_HALF_LIVES = 60.0


def decayed_usage(now: datetime) -> dict[int, tuple[float, float]]:
    """Owner id -> (decayed GPU-hours, decayed CPU-slot-hours) as of `now`."""
    half_life_s = settings.TRAINYARD_FAIR_SHARE_HALF_LIFE_H * 3600.0
    # The integral of 2^-(age/h) over [start, end] is h/ln2 * (2^-(age_end/h) - 2^-(age_start/h)).
    scale = half_life_s / math.log(2) / 3600.0
    weight = (
        "(power(0.5, LEAST(EXTRACT(EPOCH FROM (%(now)s - COALESCE(p.finished_at, %(now)s)))"
        " / %(h)s, %(cap)s)) - power(0.5, LEAST(EXTRACT(EPOCH FROM (%(now)s - p.started_at))"
        " / %(h)s, %(cap)s)))"
    )
    # Table names from the models and a fixed expression: every value is a parameter.
    sql = (
        f"SELECT j.owner_id, SUM(p.gpus * {weight}), SUM(p.slots * {weight}) "  # noqa: S608
        f"FROM {Placement._meta.db_table} p "
        f"JOIN {Attempt._meta.db_table} a ON a.id = p.attempt_id "
        f"JOIN {Job._meta.db_table} j ON j.id = a.job_id "
        "WHERE p.started_at IS NOT NULL AND p.started_at <= %(now)s "
        "AND (p.finished_at IS NULL OR p.finished_at > %(since)s) "
        "GROUP BY j.owner_id"
    )
    params: dict[str, datetime | float] = {
        "now": now,
        "h": half_life_s,
        "cap": _MAX_HALF_LIVES,
        "since": now - timedelta(seconds=20 * half_life_s),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {
            owner: (float(gpu or 0.0) * scale, float(slot or 0.0) * scale)
            for owner, gpu, slot in cursor.fetchall()
        }
