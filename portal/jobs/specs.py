"""Specs built from other specs: "run again with changes" (`copy_from`) and job templates.

A stored spec (`Job.spec`, `JobTemplate.spec`) is a whole `JobRequest` as JSON. A copy is that
spec with the caller's overrides deep-merged over it: objects merge key by key, anything else
(numbers, strings, lists, null) replaces. So a copy whose overrides name one field differs from
its source in that field only, and `job_submit` judges the result like any other request.
"""

from __future__ import annotations

from typing import Any

import pydantic
from django.core.exceptions import ValidationError

from portal.jobs.schemas import JobRequest, dotted_errors


def spec_merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`overrides` deep-merged over `base` (neither is changed)."""
    merged = dict(base)
    for key, value in overrides.items():
        current = merged.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            merged[key] = spec_merged(current, value)
        else:
            merged[key] = value
    return merged


def request_from_spec(
    base: dict[str, Any], overrides: dict[str, Any] | None = None, *, strict: bool = True
) -> JobRequest:
    """The job request `overrides` over the stored spec `base` make; ValidationError keyed by
    dotted `JobRequest` paths when the result is not a valid request. Strict by default, like
    the API: a stored spec is JSON the schema wrote, and overrides come from scripts."""
    data = spec_merged(base if isinstance(base, dict) else {}, overrides or {})
    try:
        return JobRequest.model_validate(data, strict=strict)
    except pydantic.ValidationError as exc:
        raise ValidationError(dotted_errors(exc)) from exc
