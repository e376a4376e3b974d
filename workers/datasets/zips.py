"""Reading a zip (an image set or an npz) without trusting what its headers declare.

Every member's path is checked before anything is read (no absolute paths, no `..`), the
declared sizes are checked, and then the bytes are counted as they inflate: a member whose
header lies about its size is stopped at the first chunk past the limit, not after it filled
the disk or the memory.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from workers.datasets.errors import DatasetInvalid, Limits

_CHUNK = 1 << 16


def open_zip(path: Path, *, name: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetInvalid(f"is not a readable zip archive: {exc}", file=name) from exc


def member_parts(info: zipfile.ZipInfo, *, name: str) -> tuple[str, ...]:
    """The member's path components, refusing any that would land outside the archive."""
    raw = info.filename
    posix = raw.replace("\\", "/")
    parts = PurePosixPath(posix).parts
    if (
        posix.startswith("/")
        or (len(posix) > 1 and posix[1] == ":")
        or any(part == ".." for part in parts)
    ):
        raise DatasetInvalid("the path escapes the archive's folder", file=name, member=raw)
    return tuple(part for part in parts if part not in ("", "."))


def check_members(
    archive: zipfile.ZipFile, *, name: str, archive_bytes: int, limits: Limits | None
) -> list[zipfile.ZipInfo]:
    """Every member, after checking the paths and the declared sizes."""
    infos = archive.infolist()
    for info in infos:
        member_parts(info, name=name)
        if info.flag_bits & 0x1:
            raise DatasetInvalid("the member is encrypted", file=name, member=info.filename)
    if limits is None:
        return infos
    if len(infos) > limits.max_zip_members:
        raise DatasetInvalid(
            f"the archive has {len(infos)} members; the limit is {limits.max_zip_members}",
            file=name,
        )
    declared = sum(info.file_size for info in infos)
    _check_total(declared, name=name, archive_bytes=archive_bytes, limits=limits, what="declares")
    return infos


def _check_total(total: int, *, name: str, archive_bytes: int, limits: Limits, what: str) -> None:
    if total > limits.max_uncompressed_bytes:
        raise DatasetInvalid(
            f"the archive {what} more than {limits.max_uncompressed_bytes} uncompressed bytes "
            "(a zip bomb?)",
            file=name,
        )
    if total > limits.max_zip_ratio * max(archive_bytes, 1) and total > _CHUNK:
        raise DatasetInvalid(
            f"the archive {what} {total} uncompressed bytes from {archive_bytes}: more than "
            f"{limits.max_zip_ratio:g} times its size (a zip bomb?)",
            file=name,
        )


class Inflater:
    """Reads members whole while counting every inflated byte against the limits."""

    def __init__(
        self, archive: zipfile.ZipFile, *, name: str, archive_bytes: int, limits: Limits | None
    ) -> None:
        self._archive = archive
        self._name = name
        self._archive_bytes = archive_bytes
        self._limits = limits
        self.total = 0

    def read(self, info: zipfile.ZipInfo, *, max_bytes: int | None = None) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            with self._archive.open(info) as member:
                while chunk := member.read(_CHUNK):
                    size += len(chunk)
                    self.total += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise DatasetInvalid(
                            f"the member inflates past {max_bytes} bytes",
                            file=self._name,
                            member=info.filename,
                        )
                    if self._limits is not None:
                        _check_total(
                            self.total,
                            name=self._name,
                            archive_bytes=self._archive_bytes,
                            limits=self._limits,
                            what="inflates to",
                        )
                    chunks.append(chunk)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise DatasetInvalid(
                f"the member cannot be read: {exc}", file=self._name, member=info.filename
            ) from exc
        return b"".join(chunks)

    def drain(self, infos: list[zipfile.ZipInfo]) -> Iterator[tuple[zipfile.ZipInfo, bytes]]:
        for info in infos:
            if not info.is_dir():
                yield info, self.read(info)
