"""Small dataset files in tmp_path, and the preprocessing most tests use."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workers.datasets import Inspection
from workers.messages import DatasetSpec, PreprocessSpec


def preprocessing(
    *,
    missing: str = "drop",
    normalization: str = "standard",
    split_seed: int = 7,
    val_fraction: float = 0.2,
    test_fraction: float = 0.1,
) -> PreprocessSpec:
    return PreprocessSpec(
        missing=missing,  # type: ignore[arg-type]
        normalization=normalization,  # type: ignore[arg-type]
        split_seed=split_seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
    )


@pytest.fixture
def pp() -> PreprocessSpec:
    return preprocessing()


def spec_of(inspection: Inspection, path: Path) -> DatasetSpec:
    return inspection.dataset_spec(
        uri=path.as_uri(), sha256=hashlib.sha256(path.read_bytes()).hexdigest()
    )


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def image_set(
    path: Path,
    *,
    per_class: int = 4,
    classes: tuple[str, ...] = ("a", "b"),
    seed: int = 0,
    size: int = 12,
    gray: bool = False,
) -> Path:
    rng = np.random.default_rng(seed)
    shape = (size, size) if gray else (size, size, 3)
    members = {
        f"{label}/{index}.png": png_bytes(rng.integers(0, 256, size=shape))
        for label in classes
        for index in range(per_class)
    }
    return write_zip(path, members)
