"""Is a file what its format says? Decided from its first bytes, never from its name."""

from __future__ import annotations

import codecs
from pathlib import Path

from workers.datasets.errors import DatasetInvalid, Limits

PARQUET_MAGIC = b"PAR1"
ZIP_MAGIC = b"PK\x03\x04"
# A zip with no members at all starts with its end-of-directory record.
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
NPY_MAGIC = b"\x93NUMPY"
_TEXT_SAMPLE = 1 << 16

_KNOWN: tuple[tuple[bytes, str], ...] = (
    (PARQUET_MAGIC, "a Parquet file"),
    (ZIP_MAGIC, "a zip archive"),
    (EMPTY_ZIP_MAGIC, "an empty zip archive"),
    (NPY_MAGIC, "a single NumPy .npy array"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x1f\x8b", "a gzip file"),
    (b"%PDF", "a PDF document"),
    (b"\xd0\xcf\x11\xe0", "an old Excel/Office document"),
)


def _looks_like(head: bytes) -> str:
    for magic, what in _KNOWN:
        if head.startswith(magic):
            return what
    return "text" if _is_utf8(head) else "binary data"


def _is_utf8(sample: bytes) -> bool:
    # Incremental, so a multi-byte character cut at the end of the sample is not an error.
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    return b"\x00" not in sample


_EXPECTED = {
    "csv": "CSV text",
    "parquet": "a Parquet file",
    "npz": "a NumPy .npz archive (a zip of .npy arrays)",
    "images": "a zip of image folders",
}


def check_file(path: Path, *, format: str, name: str, limits: Limits | None) -> None:
    """Refuse an empty, oversized or mislabelled file before any parser sees it."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(_TEXT_SAMPLE)
    except OSError as exc:
        raise DatasetInvalid(f"cannot be read: {exc.strerror or exc}", file=name) from exc
    if size == 0:
        raise DatasetInvalid("the file is empty", file=name)
    if limits is not None and size > limits.max_bytes:
        raise DatasetInvalid(
            f"the file is {size} bytes; the limit is {limits.max_bytes} bytes", file=name
        )
    if format == "csv":
        ok = _is_utf8(head) and not head.startswith(PARQUET_MAGIC)
    elif format == "parquet":
        ok = head.startswith(PARQUET_MAGIC)
    else:
        ok = head.startswith(ZIP_MAGIC)
    if not ok:
        raise DatasetInvalid(
            f"the format is {format} but the bytes are {_looks_like(head)}, "
            f"not {_EXPECTED[format]}",
            file=name,
        )
