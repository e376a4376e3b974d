"""Image sets: a zip with one folder per class holding PNG or JPEG files.

A single folder holding the class folders (what zipping a folder gives) is looked through.
Hidden files and macOS's `__MACOSX/` are skipped. The images are taken in sorted path order,
so every node numbers them the same way. All of them grayscale makes the set `L` (one
channel), anything else `RGB`; each is converted to that mode, resized to
`image_size x image_size` (bilinear), scaled to [0, 1] and normalised per channel.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow as pa
from PIL import Image, UnidentifiedImageError

from workers.datasets import encode, targets
from workers.datasets.errors import DatasetInvalid, Limits
from workers.datasets.inspection import PREVIEW_ROWS, Inspection, SchemaField
from workers.datasets.split import split_indices
from workers.datasets.zips import Inflater, check_members, member_parts, open_zip
from workers.messages import DatasetSpec, FeatureSpec, PreprocessSpec, Task

_SUFFIXES = {".png", ".jpg", ".jpeg"}
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
CHANNELS = {"RGB": ("R", "G", "B"), "L": ("L",)}


@dataclass(frozen=True)
class Member:
    info: zipfile.ZipInfo
    path: str
    label: str


def image_members(
    archive: zipfile.ZipFile, *, file: str, archive_bytes: int, limits: Limits | None
) -> list[Member]:
    """The archive's images in sorted path order, each with its class (its folder)."""
    entries: list[tuple[tuple[str, ...], zipfile.ZipInfo]] = []
    for info in check_members(archive, name=file, archive_bytes=archive_bytes, limits=limits):
        if info.is_dir():
            continue
        parts = member_parts(info, name=file)
        if not parts or parts[0] == "__MACOSX" or any(part.startswith(".") for part in parts):
            continue
        entries.append((parts, info))
    roots = {parts[0] for parts, _ in entries}
    if entries and len(roots) == 1 and all(len(parts) == 3 for parts, _ in entries):
        entries = [(parts[1:], info) for parts, info in entries]
    members: list[Member] = []
    for parts, info in entries:
        if len(parts) != 2:
            raise DatasetInvalid(
                "an image set is one folder per class holding image files; this member is "
                "not <class>/<file>",
                file=file,
                member=info.filename,
            )
        if PurePosixPath(parts[1]).suffix.lower() not in _SUFFIXES:
            raise DatasetInvalid(
                "the member is not a PNG or JPEG file (.png, .jpg, .jpeg)",
                file=file,
                member=info.filename,
            )
        members.append(Member(info=info, path="/".join(parts), label=parts[0]))
    if not members:
        raise DatasetInvalid("the archive holds no images", file=file)
    members.sort(key=lambda member: member.path)
    if limits is not None and len(members) > limits.max_rows:
        raise DatasetInvalid(
            f"the archive holds {len(members)} images; the limit is {limits.max_rows}", file=file
        )
    return members


def open_image(
    data: bytes, *, file: str, member: str | None, row: int | None, limits: Limits | None
) -> Image.Image:
    """The decoded image; not a PNG/JPEG, truncated or too many pixels is an error."""
    with warnings.catch_warnings():
        # Pillow's own bomb guard only warns below twice its limit; here it refuses.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=["PNG", "JPEG"])
            width, height = image.size
            if limits is not None and width * height > limits.max_image_pixels:
                raise DatasetInvalid(
                    f"the image is {width} x {height} pixels; the limit is "
                    f"{limits.max_image_pixels} pixels",
                    file=file,
                    member=member,
                    row=row,
                )
            image.load()
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise DatasetInvalid(
                f"the image has too many pixels: {exc}", file=file, member=member, row=row
            ) from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise DatasetInvalid(
                f"the bytes are not a readable PNG or JPEG image: {exc}",
                file=file,
                member=member,
                row=row,
            ) from exc
    return image


def pixels(image: Image.Image, *, mode: str, size: tuple[int, int]) -> np.ndarray:
    """`[channels, height, width]` float64 values in [0, 1]."""
    converted = image.convert(mode).resize((size[1], size[0]), Image.Resampling.BILINEAR)
    array = np.asarray(converted, dtype=np.uint8)
    planes = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return planes.astype(np.float64) / 255.0


def _decoded(
    archive: zipfile.ZipFile,
    members: list[Member],
    *,
    file: str,
    archive_bytes: int,
    limits: Limits | None,
) -> Iterator[tuple[Member, Image.Image]]:
    inflater = Inflater(archive, name=file, archive_bytes=archive_bytes, limits=limits)
    for member in members:
        data = inflater.read(member.info)
        yield (
            member,
            open_image(data, file=file, member=member.info.filename, row=None, limits=limits),
        )


def inspect_images(
    path: Path, *, file: str, task: Task, preprocessing: PreprocessSpec, limits: Limits
) -> Inspection:
    if task != "classification":
        raise DatasetInvalid(
            "an image set is classified by its folders; regression needs a numeric target",
            file=file,
        )
    archive_bytes = path.stat().st_size
    with open_zip(path, name=file) as archive:
        members = image_members(archive, file=file, archive_bytes=archive_bytes, limits=limits)
        labels = pa.array([member.label for member in members], pa.string())
        classes = targets.classes_of(labels, file=file, column="label")
        # First pass: every image decodes, within the limits; the set's mode.
        gray = True
        for _, image in _decoded(
            archive, members, file=file, archive_bytes=archive_bytes, limits=limits
        ):
            gray = gray and image.mode in _GRAY_MODES
        mode = "L" if gray else "RGB"
        split = split_indices(len(members), preprocessing)
        train = sorted(int(i) for i in split[0])
        size = (limits.image_size, limits.image_size)
        channels = len(CHANNELS[mode])
        total = np.zeros(channels)
        squares = np.zeros(channels)
        low = np.full(channels, np.inf)
        high = np.full(channels, -np.inf)
        # Second pass, over the training images only: per-channel statistics.
        for _, image in _decoded(
            archive,
            [members[i] for i in train],
            file=file,
            archive_bytes=archive_bytes,
            limits=None,
        ):
            values = pixels(image, mode=mode, size=size).reshape(channels, -1)
            total += values.sum(axis=1)
            squares += (values**2).sum(axis=1)
            low = np.minimum(low, values.min(axis=1))
            high = np.maximum(high, values.max(axis=1))
    count = len(train) * size[0] * size[1]
    features = tuple(
        _channel_feature(
            name,
            mean=float(total[c] / count),
            std=float(np.sqrt(max(squares[c] / count - (total[c] / count) ** 2, 0.0))),
            low=float(low[c]),
            high=float(high[c]),
            normalization=preprocessing.normalization,
        )
        for c, name in enumerate(CHANNELS[mode])
    )
    index = targets.class_indices(labels, classes, file=file, column="label")
    schema: list[SchemaField] = [
        {"name": name, "type": "numeric", "role": "feature"} for name in CHANNELS[mode]
    ]
    schema.append({"name": "label", "type": "categorical", "role": "target"})
    return Inspection(
        format="images",
        task=task,
        target="label",
        classes=classes,
        features=features,
        input_shape=(channels, size[0], size[1]),
        num_rows=len(members),
        preprocessing=preprocessing,
        target_shift=0.0,
        target_scale=1.0,
        schema=schema,
        preview=[{"file": m.path, "label": m.label} for m in members[:PREVIEW_ROWS]],
        chart=targets.class_chart(index, classes),
        summary=targets.summary_of(
            task=task,
            rows=len(members),
            dropped=0,
            split=split,
            class_index=index,
            num_classes=len(classes),
        ),
    )


def _channel_feature(
    name: str, *, mean: float, std: float, low: float, high: float, normalization: str
) -> FeatureSpec:
    shift, scale = 0.0, 1.0
    if normalization == "standard":
        shift, scale = mean, (std if std > 1e-12 else 1.0)
    elif normalization == "minmax":
        shift, scale = low, (high - low if high - low > 1e-12 else 1.0)
    return FeatureSpec(name=name, kind="numeric", fill=mean, shift=shift, scale=scale)


def spec_mode(spec: DatasetSpec) -> str:
    return "L" if tuple(feature.name for feature in spec.features) == ("L",) else "RGB"


def encode_image(image: Image.Image, spec: DatasetSpec) -> np.ndarray:
    """One prepared example, `[channels, height, width]` float32."""
    size = (spec.input_shape[1], spec.input_shape[2])
    return encode.encode_channels(pixels(image, mode=spec_mode(spec), size=size), spec.features)


def count_images(path: Path, *, file: str) -> list[Member]:
    with open_zip(path, name=file) as archive:
        return image_members(archive, file=file, archive_bytes=path.stat().st_size, limits=None)


def prepared_images(path: Path, spec: DatasetSpec, *, file: str) -> Iterator[np.ndarray]:
    """Each image of the set prepared, in the version's order (one at a time)."""
    with open_zip(path, name=file) as archive:
        members = image_members(archive, file=file, archive_bytes=path.stat().st_size, limits=None)
        for _, image in _decoded(
            archive, members, file=file, archive_bytes=path.stat().st_size, limits=None
        ):
            yield encode_image(image, spec)[None]


def image_targets(members: list[Member], spec: DatasetSpec, *, file: str) -> np.ndarray:
    labels = pa.array([member.label for member in members], pa.string())
    return targets.class_indices(labels, spec.classes, file=file, column="label")
