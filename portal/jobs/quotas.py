"""Quotas at admission: whether a job's owner and team may take its share of the cluster now.

The scheduler pass asks an `Admission` for each job it could place (`blocked`) and tells it of
each job it placed (`charge`), so one pass never admits past a limit; the pass runs under the
scheduler's advisory lock and the quota rows are locked for it (docs/quotas.md).
`Unlimited` admits everything (no quotas configured, and the pure tests of the ordering).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from portal.jobs.models import Job

QuotaLimit = Literal["gpus", "cpu_slots", "running_jobs", "gpu_hours", "cpu_slot_hours"]

_UNITS: dict[str, str] = {
    "gpus": "GPUs",
    "cpu_slots": "CPU slots",
    "running_jobs": "running jobs",
    "gpu_hours": "GPU-hours in 30 days",
    "cpu_slot_hours": "CPU-slot-hours in 30 days",
}


@dataclass(frozen=True)
class QuotaVerdict:
    """One limit as it applies to one job: who holds it, how much is allowed, in use, asked."""

    scope: Literal["user", "team"]
    holder: str  # the username or team name
    limit: QuotaLimit
    allowed: float
    used: float
    asked: float

    @property
    def headroom(self) -> float:
        return max(0.0, self.allowed - self.used)

    @property
    def binds(self) -> bool:
        return self.used + self.asked > self.allowed

    def message(self) -> str:
        """`team vision's quota: 6 of 8 GPUs in use, this job asks for 4`."""
        unit = _UNITS[self.limit]
        who = f"team {self.holder}'s" if self.scope == "team" else f"{self.holder}'s"
        return (
            f"{who} quota: {self.used:g} of {self.allowed:g} {unit} in use, "
            f"this job asks for {self.asked:g}"
        )


class Admission(Protocol):
    def blocked(self, job: Job) -> QuotaVerdict | None:
        """The first limit that `job` would break if it started now, or None."""

    def limits(self, job: Job) -> list[QuotaVerdict]:
        """Every limit that applies to `job`, binding or not (the why-pending headroom)."""

    def charge(self, job: Job) -> None:
        """Count `job` as running from now on (the pass just placed it)."""


class Unlimited:
    """No quotas: every job is admitted."""

    def blocked(self, job: Job) -> QuotaVerdict | None:
        return None

    def limits(self, job: Job) -> list[QuotaVerdict]:
        return []

    def charge(self, job: Job) -> None:
        return None
