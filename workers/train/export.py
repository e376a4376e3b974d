"""The trained model as files a registry can serve: `attempt-<id>/export/` of the best checkpoint.

- `model.safetensors`: the weights (no pickle: the portal and the predictor load them safely);
- `model.torchscript.pt`: the traced module (built-in architectures; custom code may not trace,
  which is reported, not fatal);
- `model.json`: what it takes to rebuild and feed it (`ExportManifest`).

Each file lands by an atomic rename, and `model.json` last: a directory with a manifest has
the weights it describes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from workers.files import write_atomic
from workers.messages import AttemptSpec, ExportManifest
from workers.models.export import export_torchscript, save_safetensors
from workers.train.checkpoint import EXPORT_DIR, Best, attempt_checkpoint_dir

SAFETENSORS = "model.safetensors"
TORCHSCRIPT = "model.torchscript.pt"
MANIFEST = "model.json"


def _replace_into(path: Path, write: Any) -> None:
    """Have `write(tmp_path)` write a file, then rename it to `path` (same directory)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def export_best(
    spec: AttemptSpec, model: nn.Module, *, best: Best, outputs: int
) -> tuple[Path, str | None]:
    """Write the export of `model` (already holding the best checkpoint's weights, on the
    CPU). Returns the directory and why TorchScript failed (None when it did not)."""
    directory = attempt_checkpoint_dir(Path(spec.checkpoint_dir), spec.attempt_id) / EXPORT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    model.eval()
    _replace_into(directory / SAFETENSORS, lambda tmp: save_safetensors(model, tmp))
    problem: str | None = None
    try:
        _replace_into(
            directory / TORCHSCRIPT,
            lambda tmp: export_torchscript(
                model, input_shape=tuple(spec.dataset.input_shape), path=tmp
            ),
        )
    except Exception as exc:  # user code may do anything a tracer refuses
        problem = f"{type(exc).__name__}: {exc}"
        (directory / TORCHSCRIPT).unlink(missing_ok=True)
    dataset = spec.dataset
    manifest = ExportManifest(
        model=spec.model,
        input_shape=dataset.input_shape,
        outputs=outputs,
        task=dataset.task,
        classes=dataset.classes,
        target_shift=dataset.target_shift,
        target_scale=dataset.target_scale,
        dataset_sha256=dataset.sha256,
        checkpoint=best.name,
        epoch=best.epoch,
        best_metric=spec.training.best_metric,
        best_value=best.value,
        torchscript=problem is None,
    )
    write_atomic(directory / MANIFEST, manifest.to_json())
    return directory, problem
