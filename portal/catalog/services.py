"""Writes for the catalog: uploads and their validation, deletion, and the built-ins.

An upload is stored first (streamed, hashed, under a temporary name: `portal.catalog.uploads`),
then becomes a `Dataset` row in state `uploaded` with the next version of its name, and a
control-queue task (`portal.catalog.tasks.validate_dataset`, sent on commit) claims it
(`uploaded -> validating`, a conditional update), parses it with `workers.datasets.inspect`
and writes `ready` with everything inferred, or `invalid` with the precise message (the file
is removed then; the row stays, so its owner sees why).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import msgspec
import numpy as np
import pyarrow.csv as pa_csv
import pyarrow.parquet as pa_parquet
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Max, ProtectedError, Q
from django.utils import timezone

from portal.accounts.models import Team
from portal.accounts.selectors import user_is_admin
from portal.catalog import storage
from portal.catalog.models import Dataset, ModelArchitecture
from portal.celery import app as celery_app
from portal.lib.realtime import json_finite
from workers import datasets
from workers.datasets import builtins as generators
from workers.messages import (
    CnnModel,
    DatasetFormat,
    LinearModel,
    MlpModel,
    PreprocessSpec,
    ResNetModel,
    Task,
    TransformerModel,
)

logger = logging.getLogger(__name__)

VALIDATE_TASK = "portal.catalog.tasks.validate_dataset"
IRIS_SLUG = "iris"
MLP_SLUG = "mlp"
SEED_MLP_SLUG = "mlp-10-5-1"
_DATA = Path(__file__).resolve().parent / "data"
# The version number two concurrent uploads of one name race for: the loser of the unique
# constraint reads the new maximum and tries again, so a handful of tries is plenty.
_VERSION_TRIES = 8

DEFAULT_PREPROCESSING = PreprocessSpec(
    missing="drop", normalization="standard", split_seed=0, val_fraction=0.2, test_fraction=0.0
)
# The target of the formats where the file names it, not the user.
IMPLIED_TARGETS: dict[str, str] = {Dataset.Format.NPZ: "y", Dataset.Format.IMAGES: "label"}
EXTENSION_FORMATS: dict[str, str] = {
    ".csv": Dataset.Format.CSV,
    ".parquet": Dataset.Format.PARQUET,
    ".pq": Dataset.Format.PARQUET,
    ".npz": Dataset.Format.NPZ,
    ".zip": Dataset.Format.IMAGES,
}


class DatasetInUse(Exception):
    """A dataset version some job uses cannot be deleted; the message names the jobs."""


def format_from_filename(filename: str) -> str | None:
    return EXTENSION_FORMATS.get(Path(filename).suffix.lower())


def dataset_limits() -> datasets.Limits:
    """The parsing limits validation runs under (the `TRAINYARD_DATASET_*` settings)."""
    return datasets.Limits(
        max_bytes=settings.TRAINYARD_DATASET_MAX_BYTES,
        max_rows=settings.TRAINYARD_DATASET_MAX_ROWS,
        max_columns=settings.TRAINYARD_DATASET_MAX_COLUMNS,
        max_uncompressed_bytes=settings.TRAINYARD_DATASET_MAX_UNZIPPED_BYTES,
        max_zip_ratio=settings.TRAINYARD_DATASET_MAX_ZIP_RATIO,
        image_size=settings.TRAINYARD_DATASET_IMAGE_SIZE,
    )


# ---- upload ----------------------------------------------------------------------------------


def _send_validation_on_commit(dataset_id: int) -> None:
    transaction.on_commit(lambda: celery_app.send_task(VALIDATE_TASK, args=[dataset_id]))


def _next_version_insert(fields: dict[str, Any]) -> Dataset:
    """Insert the owner's next version of the name; the unique (owner, name, version) key
    decides between concurrent uploads, and the one that lost reads again."""
    versions = Dataset.objects.filter(owner=fields["owner"], name=fields["name"])
    for _ in range(_VERSION_TRIES):
        latest = versions.aggregate(latest=Max("version"))["latest"] or 0
        try:
            with transaction.atomic():
                return Dataset.objects.create(**fields, version=latest + 1)
        except IntegrityError:
            continue
    raise IntegrityError(f"no free version of dataset {fields['name']!r} after retries")


def dataset_upload(
    *,
    user: AbstractBaseUser,
    pending: storage.PendingFile,
    filename: str,
    name: str,
    format: str,
    task: str,
    target: str,
    preprocessing: PreprocessSpec,
    description: str = "",
) -> Dataset:
    """Accept a stored upload as the owner's next version of `name`, and queue validation.

    The dataset belongs to the user's first team by name (if any), as jobs do.
    """
    stored = pending.commit()
    try:
        with transaction.atomic():
            dataset = _next_version_insert(
                {
                    "name": name,
                    "owner": user,
                    "team": Team.objects.filter(members=user.pk).order_by("name").first(),
                    "description": description,
                    "state": Dataset.State.UPLOADED,
                    "uri": stored.uri,
                    "filename": Path(filename).name[:255],
                    "sha256": stored.sha256,
                    "size_bytes": stored.size_bytes,
                    "format": format,
                    "task": task,
                    "target": target or IMPLIED_TARGETS.get(format, ""),
                    "preprocessing": msgspec.to_builtins(preprocessing),
                }
            )
            _send_validation_on_commit(dataset.pk)
    except BaseException:
        storage.storage_delete(stored.uri)
        raise
    return dataset


# ---- validation ------------------------------------------------------------------------------


@contextmanager
def _named_copy(dataset: Dataset) -> Iterator[Path]:
    """The stored file under the name its uploader gave it, so validation's messages name
    `data.csv`, not the storage id (a symlink for local storage, else a temporary copy)."""
    shown = Path(dataset.filename).name
    with storage.storage_local_copy(dataset.uri) as path:
        if shown in {"", ".", ".."} or path.name == shown:
            yield path
            return
        with tempfile.TemporaryDirectory(prefix="trainyard-inspect-") as directory:
            link = Path(directory) / shown
            link.symlink_to(path)
            yield link


def _inspection_fields(inspection: Any) -> dict[str, Any]:
    return {
        "format": inspection.format,
        "task": inspection.task,
        "target": inspection.target,
        "classes": list(inspection.classes),
        "features": msgspec.to_builtins(list(inspection.features)),
        "input_shape": list(inspection.input_shape),
        "num_rows": inspection.num_rows,
        "target_shift": inspection.target_shift,
        "target_scale": inspection.target_scale,
        "preprocessing": msgspec.to_builtins(inspection.preprocessing),
        "schema": json_finite(msgspec.to_builtins(inspection.schema)),
        "preview": json_finite(msgspec.to_builtins(inspection.preview)),
        "chart": json_finite(msgspec.to_builtins(inspection.chart)),
    }


def _inspect(dataset: Dataset) -> Any:
    with _named_copy(dataset) as path:
        return datasets.inspect(
            path,
            format=cast(DatasetFormat, dataset.format),
            target=dataset.target,
            task=cast(Task, dataset.task),
            preprocessing=msgspec.convert(dataset.preprocessing, PreprocessSpec),
            limits=dataset_limits(),
        )


def dataset_validate(*, dataset_id: int) -> Dataset | None:
    """Validate an uploaded version: `ready` with its inferred spec, or `invalid` with why.

    Claims the row first (`uploaded -> validating`); a row someone else claimed, or one
    already settled, is left alone (None). The result is written only while the claim is
    still this run's, so a run the sweep gave up on cannot overwrite a newer one.
    """
    claimed_at = timezone.now()
    claim = Dataset.objects.filter(pk=dataset_id, state=Dataset.State.UPLOADED)
    if not claim.update(state=Dataset.State.VALIDATING, validating_since=claimed_at):
        return None
    dataset = Dataset.objects.get(pk=dataset_id)
    mine = Dataset.objects.filter(
        pk=dataset_id, state=Dataset.State.VALIDATING, validating_since=claimed_at
    )
    try:
        inspection = _inspect(dataset)
    except datasets.DatasetInvalid as exc:
        if mine.update(
            state=Dataset.State.INVALID, state_reason=str(exc), validated_at=timezone.now()
        ):
            # Nothing half-stored: an invalid file is gone, its row says why.
            storage.storage_delete(dataset.uri)
            Dataset.objects.filter(pk=dataset_id).update(uri="")
    except Exception as exc:  # a bug or a storage outage, not the file's fault: keep the file
        logger.exception("validating dataset %s failed", dataset_id)
        mine.update(
            state=Dataset.State.INVALID,
            state_reason=f"Validation failed unexpectedly ({type(exc).__name__}: {exc}); "
            "an admin can validate it again.",
            validated_at=timezone.now(),
        )
    else:
        mine.update(
            state=Dataset.State.READY,
            state_reason="",
            validated_at=timezone.now(),
            **_inspection_fields(inspection),
        )
    return Dataset.objects.filter(pk=dataset_id).first()


def datasets_requeue(*, dataset_ids: list[int] | None = None, stale_after: timedelta) -> list[int]:
    """Send validation again for versions whose validation was lost: claimed (`validating`)
    longer ago than `stale_after` (the worker died), or `uploaded` that long and never
    claimed (the message was lost). An admin may name ids to force, including a version that
    failed unexpectedly and still has its file. Returns the ids queued."""
    cutoff = timezone.now() - stale_after
    stale = Q(state=Dataset.State.VALIDATING, validating_since__lt=cutoff) | Q(
        state=Dataset.State.UPLOADED, created_at__lt=cutoff
    )
    if dataset_ids is not None:
        stale = Q(pk__in=dataset_ids) & (
            Q(state__in=[Dataset.State.VALIDATING, Dataset.State.UPLOADED])
            | (Q(state=Dataset.State.INVALID) & ~Q(uri=""))
        )
    queued = []
    with transaction.atomic():
        for dataset in Dataset.objects.filter(stale).only("pk", "state", "validating_since"):
            reset = Dataset.objects.filter(
                pk=dataset.pk, state=dataset.state, validating_since=dataset.validating_since
            ).update(state=Dataset.State.UPLOADED, state_reason="")
            if reset:
                _send_validation_on_commit(dataset.pk)
                queued.append(dataset.pk)
    return queued


# ---- delete ----------------------------------------------------------------------------------


def dataset_delete(*, user: AbstractBaseUser, dataset: Dataset) -> None:
    """Delete a version and its file: its owner or an admin, and only while no job uses it."""
    if not (user_is_admin(user) or (dataset.owner_id is not None and dataset.owner_id == user.pk)):
        raise PermissionDenied("Only the dataset's owner or an admin may delete it.")
    uri = dataset.uri
    try:
        with transaction.atomic():
            dataset.delete()
    except ProtectedError as exc:
        users = sorted(exc.protected_objects, key=lambda job: job.pk)
        names = ", ".join(str(job) for job in users[:10])
        more = f" and {len(users) - 10} more" if len(users) > 10 else ""
        raise DatasetInUse(
            f"{dataset} is used by job{'s' if len(users) != 1 else ''} {names}{more}; "
            "a dataset a job trained on cannot be deleted."
        ) from None
    transaction.on_commit(lambda: storage.storage_delete(uri))


# ---- built-ins -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Builtin:
    slug: str
    name: str
    description: str
    format: str
    extension: str
    write: Callable[[Path], None]
    task: str | None = None  # None: read from the file (an npz's y)
    target: str | None = None  # None: the last column (tables) or the format's own
    preprocessing: PreprocessSpec = DEFAULT_PREPROCESSING


def _copy_iris(path: Path) -> None:
    path.write_bytes((_DATA / "iris.csv").read_bytes())


BUILTIN_DATASETS = (
    Builtin(
        IRIS_SLUG,
        "Iris",
        "Fisher's iris flowers: 150 samples of 4 measurements (cm) in 3 species.",
        Dataset.Format.CSV,
        ".csv",
        _copy_iris,
        task=Dataset.Task.CLASSIFICATION,
        target="species",
    ),
    Builtin(
        "seed-example",
        "Seed example",
        "Binary classification: 100 rows of 10 features in [0, 1], for the 10-5-1 MLP.",
        Dataset.Format.CSV,
        ".csv",
        generators.write_seed_example,
        task=Dataset.Task.CLASSIFICATION,
        preprocessing=msgspec.structs.replace(DEFAULT_PREPROCESSING, normalization="minmax"),
    ),
    Builtin(
        "synthetic-classification",
        "Synthetic classification",
        "Seeded clusters of numeric features, one class per cluster (CSV).",
        Dataset.Format.CSV,
        ".csv",
        generators.write_synthetic_classification,
        task=Dataset.Task.CLASSIFICATION,
    ),
    Builtin(
        "synthetic-regression",
        "Synthetic regression",
        "A seeded noisy function of numeric features (Parquet).",
        Dataset.Format.PARQUET,
        ".parquet",
        generators.write_synthetic_regression,
        task=Dataset.Task.REGRESSION,
    ),
    Builtin(
        "synthetic-sequences",
        "Synthetic sequences",
        "Seeded sequences as a NumPy .npz (X: rows x length x width), for the Transformer.",
        Dataset.Format.NPZ,
        ".npz",
        generators.write_synthetic_sequences,
    ),
    Builtin(
        "synthetic-images",
        "Synthetic images",
        "Small procedurally drawn shapes, one folder per class (zip), for the CNN and ResNet.",
        Dataset.Format.IMAGES,
        ".zip",
        generators.write_synthetic_images,
        task=Dataset.Task.CLASSIFICATION,
    ),
)


def _builtin_target(builtin: Builtin, path: Path) -> str:
    if builtin.target is not None:
        return builtin.target
    if builtin.format == Dataset.Format.CSV:
        with path.open("rb") as handle:
            columns = pa_csv.read_csv(handle).column_names
        return str(columns[-1])
    if builtin.format == Dataset.Format.PARQUET:
        return str(pa_parquet.read_schema(path).names[-1])
    return IMPLIED_TARGETS[builtin.format]


def _builtin_task(builtin: Builtin, path: Path) -> str:
    if builtin.task is not None:
        return builtin.task
    with np.load(path, allow_pickle=False) as arrays:
        kind = arrays["y"].dtype.kind
    return Dataset.Task.REGRESSION if kind == "f" else Dataset.Task.CLASSIFICATION


@dataclass(frozen=True)
class _Generated:
    """A built-in's file and what validation made of it: the same for every call in a process,
    because the generators are seeded and byte-for-byte deterministic."""

    filename: str
    data: bytes
    sha256: str
    target: str
    task: str
    inspection: datasets.Inspection


@functools.cache
def _generated(slug: str) -> _Generated:
    """Write and inspect the built-in `slug` once per process (the image set alone is hundreds
    of PNGs to draw and decode); later calls only compare it with what storage holds."""
    builtin = next(b for b in BUILTIN_DATASETS if b.slug == slug)
    with tempfile.TemporaryDirectory(prefix="trainyard-builtins-") as workdir:
        local = Path(workdir) / f"{builtin.slug}{builtin.extension}"
        builtin.write(local)
        target = _builtin_target(builtin, local)
        task = _builtin_task(builtin, local)
        inspection = datasets.inspect(
            local,
            format=cast(DatasetFormat, builtin.format),
            target=target,
            task=cast(Task, task),
            preprocessing=builtin.preprocessing,
            limits=dataset_limits(),
        )
        data = local.read_bytes()
    return _Generated(
        filename=local.name,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        target=target,
        task=task,
        inspection=inspection,
    )


def _ensure_builtin_dataset(builtin: Builtin) -> None:
    generated = _generated(builtin.slug)
    name = f"builtin-{builtin.slug}{builtin.extension}"
    uri = storage.storage_uri_for(name)
    if storage.storage_stat(uri) != (generated.sha256, len(generated.data)):
        # Missing or damaged: store the generated bytes again (atomically).
        with tempfile.TemporaryDirectory(prefix="trainyard-builtins-") as workdir:
            local = Path(workdir) / generated.filename
            local.write_bytes(generated.data)
            storage.storage_write(name=name, source=local)
    existing = Dataset.objects.filter(slug=builtin.slug, owner=None).first()
    if (
        existing is not None
        and existing.state == Dataset.State.READY
        and existing.sha256 == generated.sha256
        and existing.uri == uri
    ):
        return
    Dataset.objects.update_or_create(
        slug=builtin.slug,
        owner=None,
        defaults={
            "name": builtin.name,
            "version": 1,
            "description": builtin.description,
            "team": None,
            "is_public": True,
            "state": Dataset.State.READY,
            "state_reason": "",
            "uri": uri,
            "filename": generated.filename,
            "sha256": generated.sha256,
            "size_bytes": len(generated.data),
            "validated_at": timezone.now(),
            **_inspection_fields(generated.inspection),
        },
    )


def _params(spec: msgspec.Struct) -> dict[str, Any]:
    """A model Struct's parameters as JSON (tuples as lists), with its `architecture` tag."""
    params: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(spec))
    return params


def _described(summary: str, spec: msgspec.Struct) -> str:
    names = [f.name for f in msgspec.structs.fields(spec)]
    listed = ", ".join(names) if names else "none"
    return f"{summary}\n\nHyperparameters (a job may override any of them): {listed}."


BUILTIN_MODELS: tuple[tuple[str, str, str, str, msgspec.Struct], ...] = (
    (
        "linear",
        "Linear",
        ModelArchitecture.Family.LINEAR,
        "Logistic regression for classification, linear regression for regression.",
        LinearModel(),
    ),
    (
        MLP_SLUG,
        "MLP",
        ModelArchitecture.Family.MLP,
        "A fully connected network for tables: hidden_sizes (width of each hidden layer), "
        "activation after each, dropout while training, and the output (logits or sigmoid).",
        MlpModel(),
    ),
    (
        SEED_MLP_SLUG,
        "10-5-1 MLP",
        ModelArchitecture.Family.MLP,
        "The classic network for the seed example: 5 sigmoid hidden units and one sigmoid "
        "output, trained with MSE.",
        MlpModel(hidden_sizes=(5,), activation="sigmoid", output="sigmoid"),
    ),
    (
        "cnn",
        "CNN",
        ModelArchitecture.Family.CNN,
        "Conv-ReLU-MaxPool blocks (one per entry of channels) and a linear head, for images.",
        CnnModel(),
    ),
    (
        "resnet",
        "ResNet",
        ModelArchitecture.Family.RESNET,
        "A small ResNet of basic residual blocks, for images.",
        ResNetModel(),
    ),
    (
        "transformer",
        "Transformer",
        ModelArchitecture.Family.TRANSFORMER,
        "A Transformer encoder over sequences (or one token per feature of a table).",
        TransformerModel(),
    ),
)


@transaction.atomic
def catalog_ensure_builtins() -> None:
    """Create or repair the public built-in datasets (written by seeded generators, validated
    like an upload) and one architecture per built-in family. Safe to run again: a built-in
    whose stored file is intact and whose row is ready is left as it is."""
    for builtin in BUILTIN_DATASETS:
        _ensure_builtin_dataset(builtin)
    for slug, name, family, summary, spec in BUILTIN_MODELS:
        ModelArchitecture.objects.update_or_create(
            slug=slug,
            defaults={
                "name": name,
                "description": _described(summary, spec),
                "family": family,
                "default_params": _params(spec),
                "owner": None,
                "team": None,
                "is_public": True,
            },
        )
