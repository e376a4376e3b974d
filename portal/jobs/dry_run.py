"""The dry run of a job's model: built for its dataset's shape before the job is queued.

It runs on a control worker (the `portal.jobs.tasks.model_dry_run` task), never in the web
process, which only waits for the answer (`portal.jobs.services.model_check`). A model that cannot
take the dataset's shape is an answer (`{"error": ...}`), not a failure of the worker.
"""

from __future__ import annotations

from typing import Any, TypedDict

import msgspec

from workers.messages import CustomModel, ModelSpec, Task

MODEL_DRY_RUN_TASK = "portal.jobs.tasks.model_dry_run"


class DryRunAnswer(TypedDict, total=False):
    """The parameter count, or why the model cannot be built for the dataset."""

    parameters: int
    error: str


def dry_run_answer(
    *, model: dict[str, Any], input_shape: list[int], task: str, num_classes: int
) -> DryRunAnswer:
    """Build a built-in architecture for `input_shape` and count its parameters. Custom code
    is refused here: it runs only on nodes."""
    # torch comes in only with the worker that runs this, not with every process that sends it.
    from workers.models import ModelShapeError, dry_run, output_width

    spec: ModelSpec = msgspec.convert(model, ModelSpec, strict=True)
    if isinstance(spec, CustomModel):
        return {"error": "custom code is never run on the control worker"}
    try:
        kind: Task = msgspec.convert(task, Task)
        outputs = output_width(spec, task=kind, num_classes=num_classes)
        return {"parameters": dry_run(spec, input_shape=tuple(input_shape), outputs=outputs)}
    except ModelShapeError as exc:
        return {"error": str(exc)}
