"""Dataset files behind storage URIs: a local directory by default, any fsspec URL as an option.

With `TRAINYARD_STORAGE_URL` unset, files live under `TRAINYARD_STORAGE_ROOT/datasets/` (on a
cluster, the shared filesystem every node mounts) and their URIs are `file:///...`, which is
what `workers.storage.dataset_fetch` reads. With it set (`s3://bucket/trainyard`,
`memory://trainyard` in tests), files go to `<url>/datasets/` through fsspec.

Every write goes to a temporary name first and is renamed into place only when it is whole
and accepted (`PendingFile.commit`), so a reader never sees a half-written dataset, and an
aborted upload (too large, refused, a crash) leaves at most a `.part` file that no row names.
The bytes are hashed (SHA-256) and counted while they are written, never read back.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import fsspec
from django.conf import settings

from workers.files import CHUNK_BYTES, sha256_of
from workers.storage import local_path_for

DATASETS_DIR = "datasets"
_CHUNK = CHUNK_BYTES


class FileTooLarge(Exception):
    """More bytes than the limit were written; the partial file is already removed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"The file is larger than the limit of {limit} bytes.")
        self.limit = limit


@dataclass(frozen=True)
class StoredFile:
    uri: str
    sha256: str
    size_bytes: int


def _base_url() -> str | None:
    url: str | None = getattr(settings, "TRAINYARD_STORAGE_URL", None)
    return url.rstrip("/") if url else None


def _local_dir() -> Path:
    return Path(settings.TRAINYARD_STORAGE_ROOT).resolve() / DATASETS_DIR


class PendingFile:
    """A file being written under a temporary name; `commit()` renames it into place.

    `write()` hashes and counts as it goes and raises `FileTooLarge` (after removing what it
    wrote) past `max_bytes`. Until `commit()`, `discard()` removes every trace.
    """

    def __init__(self, *, name: str, max_bytes: int | None) -> None:
        self.name = name
        self.max_bytes = max_bytes
        self.size = 0
        self.committed: StoredFile | None = None
        self._digest = hashlib.sha256()
        base = _base_url()
        self._fs: Any = None
        if base is None:
            directory = _local_dir()
            directory.mkdir(parents=True, exist_ok=True)
            self._final = str(directory / name)
            self._temp = str(directory / f".{name}.part")
            self._handle: IO[bytes] | None = Path(self._temp).open("wb")  # noqa: SIM115
        else:
            self._fs, root = fsspec.core.url_to_fs(f"{base}/{DATASETS_DIR}")
            self._fs.makedirs(root, exist_ok=True)
            self._final = f"{root}/{name}"
            self._temp = f"{root}/.{name}.part"
            self._handle = self._fs.open(self._temp, "wb")

    def write(self, chunk: bytes) -> None:
        assert self._handle is not None, "write after commit or discard"
        self.size += len(chunk)
        if self.max_bytes is not None and self.size > self.max_bytes:
            self.discard()
            raise FileTooLarge(self.max_bytes)
        self._digest.update(chunk)
        self._handle.write(chunk)

    def close(self) -> None:
        """Finish writing (the bytes are all there), still under the temporary name."""
        if self._handle is not None:
            self._handle.flush()
            self._handle.close()
            self._handle = None

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def commit(self) -> StoredFile:
        """Rename the finished file into place and return where it is."""
        self.close()
        if self._fs is None:
            Path(self._temp).replace(self._final)
            uri = Path(self._final).as_uri()
        else:
            self._fs.mv(self._temp, self._final)
            uri = self._fs.unstrip_protocol(self._final)
        self.committed = StoredFile(uri=uri, sha256=self.sha256, size_bytes=self.size)
        return self.committed

    def discard(self) -> None:
        """Remove the temporary file (a committed file is the catalog's to delete)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self.committed is not None:
            return
        if self._fs is None:
            Path(self._temp).unlink(missing_ok=True)
        elif self._fs.exists(self._temp):
            self._fs.rm(self._temp)


def new_upload_name(filename: str) -> str:
    """The stored name of an upload: its id, plus the uploader's extension for people."""
    suffix = "".join(Path(filename).suffixes[-2:]).lower()
    if not suffix.replace(".", "").isalnum() or len(suffix) > 16:
        suffix = ""
    return f"{uuid.uuid4().hex}{suffix}"


def storage_write(*, name: str, source: Path) -> StoredFile:
    """Store a local file (a built-in dataset) under `name`, atomically."""
    pending = PendingFile(name=name, max_bytes=None)
    try:
        with source.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                pending.write(chunk)
        return pending.commit()
    except BaseException:
        pending.discard()
        raise


def storage_stat(uri: str) -> tuple[str, int] | None:
    """SHA-256 and size of the stored file, or None when nothing is there."""
    try:
        with storage_open(uri) as handle:
            return sha256_of(handle)
    except FileNotFoundError:
        return None


def storage_uri_for(name: str) -> str:
    """The URI a file stored under `name` has (whether or not it exists yet)."""
    base = _base_url()
    if base is None:
        return (_local_dir() / name).as_uri()
    fs, root = fsspec.core.url_to_fs(f"{base}/{DATASETS_DIR}")
    uri: str = fs.unstrip_protocol(f"{root}/{name}")
    return uri


def storage_open(uri: str) -> IO[bytes]:
    """The stored file, open for reading (a download, a checksum); the caller closes it."""
    if uri.startswith("file:"):
        return local_path_for(uri).open("rb")
    handle: IO[bytes] = fsspec.open(uri, "rb").open()
    return handle


@contextmanager
def storage_local_copy(uri: str) -> Iterator[Path]:
    """A local path with the file's bytes: the file itself when local, else a temporary copy
    (validation parses a path; pyarrow and zipfile want to seek)."""
    if uri.startswith("file:"):
        yield local_path_for(uri)
        return
    with tempfile.TemporaryDirectory(prefix="trainyard-dataset-") as directory:
        path = Path(directory) / Path(uri).name
        with storage_open(uri) as source, path.open("wb") as target:
            shutil.copyfileobj(source, target, _CHUNK)
        yield path


def storage_delete(uri: str) -> None:
    """Remove a stored file; a file already gone is not an error."""
    if not uri:
        return
    if uri.startswith("file:"):
        local_path_for(uri).unlink(missing_ok=True)
        return
    fs, path = fsspec.core.url_to_fs(uri)
    if fs.exists(path):
        fs.rm(path)


def storage_exists(uri: str) -> bool:
    if not uri:
        return False
    if uri.startswith("file:"):
        return local_path_for(uri).is_file()
    fs, path = fsspec.core.url_to_fs(uri)
    return bool(fs.exists(path))
