"""Fetch a dataset by storage URI into the node's cache, verified against its SHA-256.

A `file://` URI (or a plain absolute path) is read from the local or shared filesystem; any
other scheme (`s3://`, `gs://`, `memory://`, ...) through fsspec, with whichever backend the
node has installed for it.

The cache is keyed by checksum, so two jobs on the same data share one copy and a changed file
at the same URI is a cache miss. A copy lands under a temporary name and is renamed only after
its checksum matched: a crash never leaves a file in the cache that looks verified but is not.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from pathlib import Path, PurePosixPath
from typing import BinaryIO, cast
from urllib.parse import unquote, urlsplit

import fsspec

from workers.files import atomic_writer, sha256_of

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class StorageError(Exception):
    """A dataset cannot be fetched: unsupported URI, missing file or unreadable source."""


class ChecksumMismatch(StorageError):
    """The fetched bytes are not the bytes the portal validated."""


def local_path_for(uri: str) -> Path:
    """The local file a `file://` URI (or a plain absolute path) names."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise StorageError(f"file URI {uri!r} names host {parts.netloc!r}; only local paths")
        path = Path(unquote(parts.path))
    elif parts.scheme == "" and uri.startswith("/"):
        path = Path(uri)
    else:
        raise StorageError(f"unsupported storage URI {uri!r} (use file:///absolute/path)")
    if not path.is_absolute():
        raise StorageError(f"storage URI {uri!r} must name an absolute path")
    return path


def is_local(uri: str) -> bool:
    """Whether `uri` names the local (or shared) filesystem rather than an fsspec backend."""
    return urlsplit(uri).scheme in ("", "file")


def _suffix(uri: str) -> str:
    """The source's file suffix, which the cached copy keeps (`.csv`, `.zip`, ...)."""
    return local_path_for(uri).suffix if is_local(uri) else PurePosixPath(urlsplit(uri).path).suffix


def _open_source(uri: str) -> AbstractContextManager[BinaryIO]:
    if is_local(uri):
        return local_path_for(uri).open("rb")
    try:
        opened = fsspec.open(uri, "rb")
    except (ImportError, ValueError) as exc:
        # No backend for the scheme on this node (ImportError), or a scheme fsspec does not
        # know (ValueError).
        raise StorageError(f"cannot fetch {uri!r}: {exc}") from exc
    return cast(AbstractContextManager[BinaryIO], opened)


def dataset_fetch(*, uri: str, sha256: str, cache_dir: Path) -> Path:
    """Return a local, verified copy of the dataset at `uri`; raise `StorageError` if impossible."""
    expected = sha256.strip().lower()
    if not _SHA256.match(expected):
        raise StorageError(f"dataset checksum {sha256!r} is not a SHA-256 hex digest")
    cached = cache_dir / f"{expected}{_suffix(uri)}"
    if cached.is_file():
        return cached
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_writer(cached) as out:
        try:
            with _open_source(uri) as src:
                actual, _ = sha256_of(src, copy_to=out)
        except OSError as exc:
            raise StorageError(f"cannot read dataset {uri!r}: {exc.strerror or exc}") from exc
        if actual != expected:
            # Raised inside the block: the copy is discarded, never renamed into the cache.
            raise ChecksumMismatch(
                f"dataset {uri!r} has SHA-256 {actual}, expected {expected}: "
                "the file changed after it was validated"
            )
    return cached
