"""Where an attempt's time went: its phases, from queued to exited (docs/telemetry.md "Phases").

The nodes report six (`workers.messages.NODE_PHASES`, stored as `AttemptPhase` rows per node
rank); the portal knows the other three from rows it has anyway: *queued* is when the job was
submitted (or, for a later attempt, when the previous one ended and requeued it), *placed* is
when the scheduler pass created the attempt, and *exited* is when its last share's exit was
stored. A gang moves as fast as its slowest node, so the bar takes each node phase at its
latest node; the API lists every node's own time as well.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise

from portal.jobs.models import Attempt, AttemptPhase, Job
from portal.jobs.selectors import attempt_is_current
from workers.messages import AttemptPhaseEntry

logger = logging.getLogger(__name__)

# Every phase in the order an attempt passes them.
PHASES: tuple[str, ...] = (
    "queued",
    "placed",
    *AttemptPhase.Phase.values,
    "exited",
)
# What the time from a phase to the next one is spent on: the bar's segment labels.
SEGMENT_LABELS: dict[str, str] = {
    "queued": "queued",
    "placed": "to the node",
    "received": "dataset",
    "dataset_fetched": "launcher",
    "torchrun_started": "rendezvous",
    "rendezvous_done": "to first step",
    "first_step": "training",
    "last_step": "finishing",
}


@dataclass(frozen=True)
class PhaseMark:
    """One phase of one attempt: when, and on which node rank (None: the portal's own)."""

    phase: str
    at: datetime
    node_rank: int | None


@dataclass(frozen=True)
class Segment:
    """The time from one phase to the next reached, as the job page's bar shows it."""

    phase: str
    label: str
    seconds: float

    @property
    def duration(self) -> str:
        return duration_label(self.seconds)

    @property
    def millis(self) -> int:
        """Whole milliseconds, for the bar's widths (`static/js/phases.js`)."""
        return round(self.seconds * 1000)


def attempt_phase_record(entry: AttemptPhaseEntry) -> bool:
    """A node reached a phase of an attempt. Fenced like checkpoints: the attempt must be its
    job's latest and not lost. The first report of a phase per node rank wins, so a repeated
    delivery changes nothing. True if it was accepted (or already stored)."""
    if not attempt_is_current(attempt_id=entry.attempt, job_id=entry.job):
        logger.info("ignoring phase %s of superseded attempt %s", entry.phase, entry.attempt)
        return False
    AttemptPhase.objects.bulk_create(
        [
            AttemptPhase(
                attempt_id=entry.attempt,
                node_rank=entry.node_rank,
                phase=entry.phase,
                at=datetime.fromtimestamp(entry.ts, tz=UTC),
            )
        ],
        ignore_conflicts=True,
    )
    return True


def queued_times(job: Job, attempts: Iterable[Attempt]) -> dict[int, datetime]:
    """When each attempt's job (re)entered the queue: submission for the first attempt, the
    end of the previous attempt for each later one (that end is what requeued it)."""
    queued: dict[int, datetime] = {}
    previous_end = job.created_at
    for attempt in sorted(attempts, key=lambda a: a.number):
        queued[attempt.pk] = previous_end
        previous_end = attempt.finished_at or attempt.created_at
    return queued


def attempt_marks(attempt: Attempt, *, queued_at: datetime) -> list[PhaseMark]:
    """Every phase mark of `attempt`, in time order: the portal's, and each node's own.
    Reads `attempt.phases` and `attempt.placements` (prefetch them for many attempts)."""
    marks = [
        PhaseMark("queued", queued_at, None),
        PhaseMark("placed", attempt.created_at, None),
    ]
    marks += [PhaseMark(row.phase, row.at, row.node_rank) for row in attempt.phases.all()]
    if attempt.finished_at is not None:
        marks.append(PhaseMark("exited", attempt.finished_at, None))
    order = {phase: index for index, phase in enumerate(PHASES)}
    return sorted(marks, key=lambda m: (order[m.phase], m.at, m.node_rank or 0))


def phase_segments(marks: Sequence[PhaseMark]) -> list[Segment]:
    """The bar: from each phase reached (at its latest node) to the next phase reached.

    A phase no node reported (a trainer that failed before its first step) is skipped, so the
    time shows under the last phase that was reached. Clocks differ between portal and
    nodes; a negative span (a skewed clock) is shown as zero rather than hidden."""
    latest: dict[str, datetime] = {}
    for mark in marks:
        if mark.phase not in latest or mark.at > latest[mark.phase]:
            latest[mark.phase] = mark.at
    reached = [phase for phase in PHASES if phase in latest]
    return [
        Segment(
            phase=phase,
            label=SEGMENT_LABELS[phase],
            seconds=max(0.0, (latest[following] - latest[phase]).total_seconds()),
        )
        for phase, following in pairwise(reached)
    ]


def duration_label(seconds: float) -> str:
    """`0.42 s`, `7.3 s`, `4 min 05 s`, `2 h 03 min`: short enough for a bar segment."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass(frozen=True)
class PhaseBar:
    """One attempt's bar on the job page."""

    attempt: Attempt
    segments: list[Segment]

    @property
    def total(self) -> str:
        return duration_label(sum(segment.seconds for segment in self.segments))


def phase_bars(job: Job, attempts: Sequence[Attempt]) -> list[PhaseBar]:
    """The bars of `attempts` (in their order), with `phases` and `placements` prefetched."""
    queued = queued_times(job, attempts)
    return [
        PhaseBar(
            attempt=attempt,
            segments=phase_segments(attempt_marks(attempt, queued_at=queued[attempt.pk])),
        )
        for attempt in attempts
    ]
