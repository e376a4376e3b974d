"""The door of the node's tasks: a message is acted on only if the portal signed it and its
spec stays within this node's bounds (`workers.signing`, `workers.bounds`)."""

from __future__ import annotations

from typing import Any

from workers import bounds, config, signing
from workers.messages import CANCEL_ATTEMPT_TASK, RUN_ATTEMPT_TASK, MessageInvalid, StopRequest


def _gpu_count() -> int:
    from workers.health import NvmlProbe

    return len(NvmlProbe().gpus())


def run_message_problem(spec_json: Any, signature: object) -> str | None:
    """Why a run message must be refused (nothing is started), or None."""
    try:
        problem = signing.signature_problem(RUN_ATTEMPT_TASK, [spec_json], signature)
        if problem is not None:
            return problem
        cuda = isinstance(spec_json, dict) and (
            (spec_json.get("placement") or {}).get("device") == "cuda"
        )
        limits = bounds.node_limits(gpu_count=_gpu_count() if cuda else 0)
    except config.ConfigError as exc:
        return str(exc)
    return bounds.spec_problem(spec_json, limits)


def cancel_message_problem(attempt_id: Any, stop: Any, signature: object) -> str | None:
    """Why a cancel (stop) message must be refused, or None."""
    try:
        problem = signing.signature_problem(CANCEL_ATTEMPT_TASK, [attempt_id, stop], signature)
    except config.ConfigError as exc:
        return str(exc)
    if problem is not None:
        return problem
    try:
        StopRequest.from_json(stop)
    except MessageInvalid as exc:
        return f"the stop request is invalid: {exc}"
    return None
