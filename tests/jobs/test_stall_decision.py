"""The stall rule as a table: silent for longer than max(factor x median step, minimum)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from portal.jobs.watch import is_stalled, median_step_s

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def steps(*pairs: tuple[int, float]) -> list[tuple[int, datetime]]:
    return [(step, T0 + timedelta(seconds=at)) for step, at in pairs]


@pytest.mark.parametrize(
    ("points", "median"),
    [
        (steps(), None),
        (steps((1, 0.0)), None),
        (steps((1, 0.0), (2, 1.0), (3, 2.0), (4, 10.0)), 1.0),
        # Points need not be every step: 4 steps in 2 s is 0.5 s a step.
        (steps((4, 2.0), (0, 0.0)), 0.5),
    ],
)
def test_the_median_step_time(points: list[tuple[int, datetime]], median: float | None) -> None:
    assert median_step_s(points) == median


@pytest.mark.parametrize(
    ("silent_s", "median_s", "stalled"),
    [
        (119.0, 0.5, False),  # under the 120 s minimum
        (121.0, 0.5, True),
        (121.0, None, True),  # one step so far: the minimum alone
        (500.0, 60.0, False),  # slow steps: 10 x 60 s is the limit
        (601.0, 60.0, True),
    ],
)
def test_the_stall_limit(silent_s: float, median_s: float | None, stalled: bool) -> None:
    now = T0 + timedelta(seconds=silent_s)
    verdict = is_stalled(now=now, last_step_at=T0, median_s=median_s, factor=10.0, minimum_s=120.0)
    assert verdict is stalled


def test_a_job_without_a_step_is_not_stalled() -> None:
    assert not is_stalled(now=T0, last_step_at=None, median_s=None, factor=10, minimum_s=1)
