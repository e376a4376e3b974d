"""What a quota allows once the cluster-wide defaults fill its blanks.

A `Quota` row stores only what an admin set; `Limits.of(row)` is what applies: each blank
field takes `TRAINYARD_QUOTA_DEFAULTS[field]`, where None is unlimited (and, for the priority
bounds, the request schema's own range). A user or team without a row has the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from django.conf import settings

from portal.accounts.models import Quota

# The widest priority range any request may ask for (portal.jobs.schemas.JobRequest.priority).
PRIORITY_FLOOR, PRIORITY_CEILING = -100, 100
# The fields of a Quota an admin sets, in the order pages and the API show them.
QUOTA_FIELDS = (
    "max_gpus",
    "max_cpu_slots",
    "max_running_jobs",
    "max_queued_jobs",
    "max_gpu_hours",
    "max_cpu_slot_hours",
    "min_priority",
    "max_priority",
)


@dataclass(frozen=True)
class Limits:
    """The limits that apply to one user or team (None: unlimited)."""

    max_gpus: int | None = None
    max_cpu_slots: int | None = None
    max_running_jobs: int | None = None
    max_queued_jobs: int | None = None
    max_gpu_hours: float | None = None
    max_cpu_slot_hours: float | None = None
    min_priority: int | None = None
    max_priority: int | None = None

    @classmethod
    def of(cls, quota: Quota | None) -> Limits:
        defaults: dict[str, Any] = settings.TRAINYARD_QUOTA_DEFAULTS
        values = {}
        for field in fields(cls):
            own = getattr(quota, field.name) if quota is not None else None
            values[field.name] = own if own is not None else defaults.get(field.name)
        return cls(**values)

    @property
    def is_unlimited(self) -> bool:
        """No limit at admission or submit (the scheduler's cheap path)."""
        return all(getattr(self, name) is None for name in QUOTA_FIELDS)

    @property
    def priorities(self) -> tuple[int, int]:
        """The inclusive range of priorities a job charged here may ask for."""
        low = PRIORITY_FLOOR if self.min_priority is None else self.min_priority
        high = PRIORITY_CEILING if self.max_priority is None else self.max_priority
        return low, high

    def as_dict(self) -> dict[str, int | float | None]:
        return {name: getattr(self, name) for name in QUOTA_FIELDS}


def limits_defaults_are_unlimited() -> bool:
    """Whether the cluster-wide defaults limit nothing (then only Quota rows do)."""
    return Limits.of(None).is_unlimited
