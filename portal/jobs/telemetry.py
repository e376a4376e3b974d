"""Reads of a job's logs and per-rank figures (selectors; ingest writes them).

Log pages go by a cursor of `(attempt, node_rank) -> seq`, the last line a reader has of each
node share. Seq is contiguous within a share, so a page stops at the first missing seq of a
share: with several ingest processes, a later batch of a share can commit before an earlier
one, and a cursor that jumped past the hole would never see it. The next page (or the live
event of the missing batch) fills it.

The cursor travels as text, `<attempt>.<node_rank>.<seq>` joined by `,` (`LogCursor`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import reduce
from operator import or_
from typing import Any

from django.db.models import Q

from portal.jobs.models import Job, JobLogVolume, LogLine, Placement, RankSample

Share = tuple[int, int]  # (attempt id, node rank)
_CURSOR_PART = re.compile(r"^(\d{1,19})\.(\d{1,9})\.(-?\d{1,10})$")
# A cursor names at most this many shares (attempts x nodes); more is refused as garbled.
MAX_CURSOR_SHARES = 2000


class LogCursor(dict[Share, int]):
    """The last seq a reader has of each share; shares not named are wanted from seq 0."""

    @classmethod
    def parse(cls, text: str) -> LogCursor:
        """The cursor `text` names; `ValueError` if it is not one."""
        cursor = cls()
        for part in filter(None, text.split(",")):
            match = _CURSOR_PART.match(part)
            if match is None:
                raise ValueError(f"{part!r} is not <attempt>.<node_rank>.<seq>")
            cursor[(int(match[1]), int(match[2]))] = max(int(match[3]), -1)
        if len(cursor) > MAX_CURSOR_SHARES:
            raise ValueError(f"a log cursor names at most {MAX_CURSOR_SHARES} shares")
        return cursor

    def text(self) -> str:
        return ",".join(f"{a}.{r}.{s}" for (a, r), s in sorted(self.items()))

    def take(self, line: LogLine | Mapping[str, Any]) -> bool:
        """Advance over `line` if it is the next of its share; False for a repeat or a line
        past a hole."""
        if isinstance(line, LogLine):
            share, seq = (line.attempt_id, line.node_rank), line.seq
        else:
            share, seq = (line["attempt"], line["node_rank"]), line["seq"]
        if seq != self.get(share, -1) + 1:
            return False
        self[share] = seq
        return True


@dataclass(frozen=True)
class LogFilter:
    """What a reader narrows a log to: one rank's lines, lines containing some text."""

    rank: int | None = None
    search: str = ""

    @property
    def narrowed(self) -> bool:
        return self.rank is not None or bool(self.search)

    def apply(self, lines: Q) -> Q:
        if self.rank is not None:
            lines &= Q(rank=self.rank)
        if self.search:
            lines &= Q(line__icontains=self.search)
        return lines


def _after(cursor: LogCursor) -> Q:
    if not cursor:
        return Q()
    named = reduce(or_, (Q(attempt_id=a, node_rank=r) for a, r in cursor))
    later = reduce(or_, (Q(attempt_id=a, node_rank=r, seq__gt=s) for (a, r), s in cursor.items()))
    return ~named | later


def log_lines_after(
    *, job: Job, cursor: LogCursor, limit: int = 1000, where: LogFilter = LogFilter()
) -> tuple[list[LogLine], LogCursor, bool]:
    """The job's lines after `cursor`, in `(attempt, node_rank, seq)` order, at most `limit`:
    `(lines, next cursor, more stored already)`. Unfiltered, a share's lines stop at its first
    hole; a narrowed read (`where`) has holes by design and only moves past what it returned."""
    rows = list(
        LogLine.objects.filter(where.apply(Q(job=job) & _after(cursor))).order_by(
            "attempt_id", "node_rank", "seq"
        )[: limit + 1]
    )
    more = len(rows) > limit
    following = LogCursor(cursor)
    if where.narrowed:
        lines = rows[:limit]
        for line in lines:
            following[(line.attempt_id, line.node_rank)] = line.seq
        return lines, following, more
    lines = [line for line in rows[:limit] if following.take(line)]
    # Past a hole there is nothing more to have yet: say so, or a reader looping on
    # `more` would ask for the same page until the hole fills.
    return lines, following, more and len(lines) == limit


def log_lines_tail(*, job: Job, limit: int = 500) -> tuple[list[LogLine], LogCursor]:
    """The job's newest `limit` lines (in the order they were stored), and the cursor after
    them, naming every share the job has placed: where a page opened on a long job starts."""
    newest = list(LogLine.objects.filter(job=job).order_by("-id")[:limit])[::-1]
    cursor = LogCursor()
    for line in sorted(newest, key=lambda line: (line.attempt_id, line.node_rank, line.seq)):
        share = (line.attempt_id, line.node_rank)
        if share not in cursor or line.seq == cursor[share] + 1:
            cursor[share] = line.seq
    # Shares with no line in the tail start after their newest line, not at seq 0 (one
    # indexed look-up each: the unique key leads with attempt, node_rank, seq).
    shares = Placement.objects.filter(attempt__job=job).values_list("attempt_id", "node_rank")
    for attempt_id, node_rank in shares:
        if (attempt_id, node_rank) not in cursor:
            last = (
                LogLine.objects.filter(attempt_id=attempt_id, node_rank=node_rank)
                .order_by("-seq")
                .values_list("seq", flat=True)
                .first()
            )
            cursor[(attempt_id, node_rank)] = -1 if last is None else last
    return newest, cursor


def log_lines_iter(
    *, job: Job, where: LogFilter = LogFilter(), chunk: int = 5000
) -> Iterator[LogLine]:
    """Every stored line of the job in `(attempt, node_rank, seq)` order, read a chunk at a
    time by keyset, so a download of a long log never holds it all in memory."""
    after: tuple[int, int, int] = (0, -1, -1)
    while True:
        a, r, s = after
        page = list(
            LogLine.objects.filter(
                where.apply(
                    Q(job=job)
                    & (
                        Q(attempt_id__gt=a)
                        | Q(attempt_id=a, node_rank__gt=r)
                        | Q(attempt_id=a, node_rank=r, seq__gt=s)
                    )
                )
            )
            .order_by("attempt_id", "node_rank", "seq")
            .only("attempt_id", "node_rank", "rank", "local_rank", "seq", "stream", "line")[:chunk]
        )
        yield from page
        if len(page) < chunk:
            return
        last = page[-1]
        after = (last.attempt_id, last.node_rank, last.seq)


def log_line_text(line: LogLine) -> str:
    """One line of a downloaded log: who wrote it, then what."""
    who = f"node {line.node_rank}" + ("" if line.rank is None else f" rank {line.rank}")
    return f"[attempt {line.attempt_id} {who} {line.stream}] {line.line}\n"


def log_truncated(job: Job) -> bool:
    """Whether the job's log was cut at its cap (by a launcher or by ingest)."""
    return JobLogVolume.objects.filter(job=job, truncated_at__isnull=False).exists()


def log_ranks(job: Job) -> list[int]:
    """The ranks whose lines the job has (for the page's filter)."""
    return list(
        RankSample.objects.filter(job=job)
        .values_list("rank", flat=True)
        .distinct()
        .order_by("rank")
    )


def rank_samples(
    *,
    job: Job,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 10_000,
) -> list[RankSample]:
    """The job's per-rank samples reported in `[since, until)`, oldest first, at most `limit`."""
    rows = RankSample.objects.filter(job=job)
    if since is not None:
        rows = rows.filter(reported_at__gte=since)
    if until is not None:
        rows = rows.filter(reported_at__lt=until)
    return list(rows.order_by("reported_at", "rank")[:limit])
