"""Writes for the model registry: register a succeeded job's best checkpoint as a model version.

The trainer exports the best checkpoint when a job succeeds (`attempt-<id>/export/` under the
job's checkpoint directory: `model.safetensors`, `model.torchscript.pt`, `model.json`).
Registering records where those files are and their SHA-256 (the predict worker refuses a file
that no longer matches), what `model.json` says the weights are, and the lineage: the job, the
attempt and checkpoint, the dataset version and its preprocessing, the hyperparameters and
the best checkpoint's metrics. The files stay where the trainer wrote them, on the storage
every process reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import msgspec
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max

from portal.audit.models import AuditEvent
from portal.audit.services import audit_record
from portal.jobs.models import Attempt, Checkpoint, Job
from portal.jobs.scheduling import checkpoint_dir
from portal.lib.text import text_problem
from portal.registry.models import ModelVersion
from workers.files import sha256_of
from workers.messages import ExportManifest, MessageInvalid

SAFETENSORS_FILE = "model.safetensors"
TORCHSCRIPT_FILE = "model.torchscript.pt"
MANIFEST_FILE = "model.json"
# model.json is a few hundred bytes; a larger one is not the trainer's.
MANIFEST_MAX_BYTES = 1 << 20
NAME_MAX_CHARS = 200


@dataclass(frozen=True)
class _Stored:
    uri: str
    sha256: str
    size: int


def _stored(path: Path) -> _Stored:
    with path.open("rb") as handle:
        sha256, size = sha256_of(handle)
    return _Stored(uri=path.as_uri(), sha256=sha256, size=size)


def export_dir(job: Job, attempt: Attempt) -> Path:
    """Where the trainer writes the export of `attempt`'s best checkpoint."""
    return checkpoint_dir(job) / f"attempt-{attempt.pk}" / "export"


def _refuse(message: str, field: str = "job") -> ValidationError:
    return ValidationError({field: [message]})


def _checked_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise _refuse("Give the model a name.", "name")
    if len(name) > NAME_MAX_CHARS:
        raise _refuse(f"Ensure this value has at most {NAME_MAX_CHARS} characters.", "name")
    if (problem := text_problem(name)) is not None:
        raise _refuse(problem, "name")
    return name


def _read_manifest(path: Path, job: Job) -> ExportManifest:
    with path.open("rb") as handle:
        raw = handle.read(MANIFEST_MAX_BYTES + 1)
    if len(raw) > MANIFEST_MAX_BYTES:
        raise _refuse(f"Job #{job.pk}'s model.json is larger than {MANIFEST_MAX_BYTES} bytes.")
    try:
        return ExportManifest.from_json(raw)
    except MessageInvalid as exc:
        raise _refuse(f"Job #{job.pk}'s export cannot be read: {exc}") from exc


def _best_checkpoint(job: Job) -> Checkpoint:
    """The checkpoint the export was made from: the last one reported as best so far (a
    resumed attempt carries the best on, so the newest attempt's report wins)."""
    best = (
        Checkpoint.objects.filter(job=job, is_best=True)
        .order_by("-attempt_id", "-epoch", "-step", "-id")
        .first()
    )
    if best is None:
        raise _refuse(
            f"Job #{job.pk} reported no best checkpoint, so there is nothing to register."
        )
    return best


def _succeeded_attempt(job: Job) -> Attempt:
    attempt = job.attempts.filter(state=Attempt.State.SUCCEEDED).order_by("-number").first()
    if attempt is None:
        raise _refuse(f"Job #{job.pk} has no succeeded attempt.")
    return attempt


def _next_version(owner_id: int, name: str) -> int:
    latest = ModelVersion.objects.filter(owner_id=owner_id, name=name).aggregate(Max("version"))
    return int(latest["version__max"] or 0) + 1


def model_version_register(*, user: AbstractBaseUser, job: Job, name: str) -> ModelVersion:
    """Register `job`'s best checkpoint as the next version of `name`, owned by `user`.

    The caller has checked that `user` may see the job (`job_get_visible`). Raises
    `ValidationError` keyed `job` or `name` when the job has not succeeded, has no export yet,
    or the export does not belong to it, and when the job is already registered under `name`.
    """
    name = _checked_name(name)
    if job.state != Job.State.SUCCEEDED:
        raise _refuse(
            f"Job #{job.pk} is {job.state}: only a succeeded job's best checkpoint can be "
            "registered."
        )
    attempt = _succeeded_attempt(job)
    directory = export_dir(job, attempt)
    missing = [
        file
        for file in (SAFETENSORS_FILE, TORCHSCRIPT_FILE, MANIFEST_FILE)
        if not (directory / file).is_file()
    ]
    if missing:
        raise _refuse(
            f"Job #{job.pk} has no export yet ({', '.join(missing)} missing under "
            f"attempt-{attempt.pk}/export/): the trainer writes it from the best checkpoint "
            "when the job succeeds."
        )
    manifest = _read_manifest(directory / MANIFEST_FILE, job)
    dataset = job.dataset
    if manifest.dataset_sha256 != dataset.sha256:
        raise _refuse(
            f"Job #{job.pk}'s export was trained on dataset bytes {manifest.dataset_sha256}, "
            f"not on {dataset} ({dataset.sha256})."
        )
    best = _best_checkpoint(job)
    if ModelVersion.objects.filter(owner_id=user.pk, name=name, job=job).exists():
        raise _refuse(f"Job #{job.pk} is already registered as {name}.", "name")
    weights = _stored(directory / SAFETENSORS_FILE)
    program = _stored(directory / TORCHSCRIPT_FILE)
    manifest_file = _stored(directory / MANIFEST_FILE)
    fields = {
        "owner_id": user.pk,
        "team": job.team,
        "name": name,
        "job": job,
        "attempt": attempt,
        "checkpoint_name": best.name,
        "checkpoint_sha256": best.sha256,
        "dataset": dataset,
        "architecture": msgspec.to_builtins(manifest.model),
        "input_shape": list(manifest.input_shape),
        "outputs": manifest.outputs,
        "task": manifest.task,
        "classes": list(manifest.classes),
        "target_shift": manifest.target_shift,
        "target_scale": manifest.target_scale,
        "hyperparameters": job.spec if isinstance(job.spec, dict) else {},
        "epoch": best.epoch,
        "val_loss": best.val_loss,
        "val_accuracy": best.val_accuracy,
        "safetensors_uri": weights.uri,
        "safetensors_sha256": weights.sha256,
        "safetensors_size": weights.size,
        "torchscript_uri": program.uri,
        "torchscript_sha256": program.sha256,
        "torchscript_size": program.size,
        "manifest_uri": manifest_file.uri,
        "manifest_sha256": manifest_file.sha256,
    }
    # Two registrations under one name at once both read the same latest version; the unique
    # key lets one win, and the other takes the next number.
    for _ in range(5):
        try:
            with transaction.atomic():
                version = ModelVersion.objects.create(
                    version=_next_version(int(user.pk), name), **fields
                )
                audit_record(
                    action=AuditEvent.Action.MODEL_VERSION_REGISTERED,
                    actor=user,
                    target=f"{name} v{version.version}",
                    details={
                        "model_version": version.pk,
                        "job": job.pk,
                        "dataset": dataset.pk,
                        "checkpoint": best.name,
                        "safetensors_sha256": weights.sha256,
                    },
                )
            return version
        except IntegrityError:
            continue
    raise _refuse(f"Too many registrations of {name} at once; try again.", "name")
