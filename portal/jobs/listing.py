"""Reads for the job list page: its filters, its sort, and keyset pages that stay fast at any
depth.

A page is the `size` jobs after (or before) a cursor, the `(sort value, id)` of the row at its
edge, so PostgreSQL walks an index from that row instead of counting past every earlier one as
OFFSET does: the thousandth page costs what the first does (`bench/job_list.py`).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime

from portal.jobs.models import Job
from portal.jobs.selectors import jobs_visible_to

# The columns a list may be sorted by: never null, so a keyset on (column, id) is total.
SORTS: dict[str, str] = {"created": "created_at", "name": "name", "state": "state"}
DEFAULT_SORT = "-created"
PAGE_SIZE = 50


@dataclass(frozen=True)
class JobFilters:
    """What the list shows: each field narrows it; None (or blank) leaves it alone."""

    q: str = ""
    state: str = ""
    # "" everyone the viewer may see, "me" their own jobs, "team" their teams' jobs, or
    # a username.
    owner: str = ""
    team: int | None = None
    dataset: int | None = None
    model: int | None = None
    pool: str = ""
    created_after: datetime | None = None
    created_before: datetime | None = None
    sort: str = DEFAULT_SORT


Cursor = tuple[Any, int]


def cursor_encode(value: Any, job_id: int) -> str:
    """An opaque, URL-safe token for the row `(value, id)`."""
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = json.dumps([value, job_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_decode(token: str, sort: str) -> Cursor | None:
    """The row a token names, or None for a token this sort did not make (a stale or
    edited link): the list then starts at its first page, which is always correct."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value, job_id = json.loads(raw)
    except (ValueError, binascii.Error, TypeError):
        return None
    if not isinstance(value, str) or type(job_id) is not int or not 0 < job_id < 2**63:
        return None
    if SORTS[sort.lstrip("-")] == "created_at":
        moment = parse_datetime(value)
        if moment is None or moment.tzinfo is None:
            return None
        return (moment, job_id)
    return (value, job_id)


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    # Tokens for the pages either side; None where there is none.
    newer: str | None
    older: str | None


def jobs_listed(*, user: AbstractBaseUser, filters: JobFilters) -> QuerySet[Job]:
    """The jobs `user` may see, narrowed by `filters` (unsorted)."""
    jobs = jobs_visible_to(user)
    if filters.owner == "me":
        jobs = jobs.filter(owner=user.pk)
    elif filters.owner == "team":
        jobs = jobs.filter(team__members=user.pk)
    elif filters.owner:
        jobs = jobs.filter(owner__username=filters.owner)
    if filters.state:
        jobs = jobs.filter(state=filters.state)
    if filters.team is not None:
        jobs = jobs.filter(team=filters.team)
    if filters.dataset is not None:
        jobs = jobs.filter(dataset=filters.dataset)
    if filters.model is not None:
        jobs = jobs.filter(model=filters.model)
    if filters.pool:
        jobs = jobs.filter(pool=filters.pool)
    if filters.created_after is not None:
        jobs = jobs.filter(created_at__gte=filters.created_after)
    if filters.created_before is not None:
        jobs = jobs.filter(created_at__lt=filters.created_before)
    if filters.q:
        jobs = jobs.filter(name__icontains=filters.q)
    return jobs


def jobs_page(
    jobs: QuerySet[Job],
    *,
    sort: str = DEFAULT_SORT,
    after: str = "",
    before: str = "",
    size: int = PAGE_SIZE,
) -> JobPage:
    """One page of `jobs` in `sort` order (`-` for descending, the id breaking ties): the
    first, or the one after the row `after` names, or the one before the row `before` names.
    Two queries at most whatever the depth; owner, dataset and model come with each job."""
    column = SORTS[sort.lstrip("-")]
    descending = sort.startswith("-")
    backwards = bool(before) and not after
    cursor = cursor_decode(before if backwards else after, sort) if (after or before) else None
    # Walking backwards is walking forwards in the opposite order, then turning the rows round.
    forward_desc = descending != backwards
    if cursor is not None:
        value, job_id = cursor
        beyond = "lt" if forward_desc else "gt"
        # The first condition is implied by the second; it is there so PostgreSQL starts its
        # index scan at the cursor's row instead of filtering the whole index with the OR.
        jobs = jobs.filter(**{f"{column}__{beyond}e": value}).filter(
            Q(**{f"{column}__{beyond}": value}) | Q(**{column: value, f"id__{beyond}": job_id})
        )
    order = (f"-{column}", "-id") if forward_desc else (column, "id")
    rows = list(jobs.select_related("owner", "dataset", "model").order_by(*order)[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()

    def token(job: Job) -> str:
        return cursor_encode(getattr(job, column), job.pk)

    if not rows:
        return JobPage(jobs=[], newer=None, older=None)
    newer: str | None
    older: str | None
    if backwards:
        newer = token(rows[0]) if more else None
        older = token(rows[-1])
    else:
        newer = token(rows[0]) if cursor is not None else None
        older = token(rows[-1]) if more else None
    return JobPage(jobs=rows, newer=newer, older=older)
