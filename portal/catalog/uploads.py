"""A Django upload handler that streams a dataset upload's `file` field into storage.

Django hands the handler each chunk of the multipart body as it is parsed; the chunk goes
straight to a temporary file in storage (`storage.PendingFile`), hashed and counted on the
way, so the web process never holds more than one chunk. Past `TRAINYARD_DATASET_MAX_BYTES`
the partial file is removed and parsing stops; a body whose declared length is already far
over the limit is refused before a byte is stored.

The file stays under its temporary name until the catalog accepts the upload
(`services.dataset_upload` commits it). The view that installed the handler calls
`discard()` when it answers, so a refused request (CSRF, bad fields, a crash) leaves nothing
stored. CSRF checks read the form too, which is why the handler must be in place before DRF
authenticates the request (`DatasetListCreateApi.initialize_request`).
"""

from __future__ import annotations

from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile, StopUpload
from django.http import HttpRequest, QueryDict
from django.utils.datastructures import MultiValueDict

from portal.catalog.storage import FileTooLarge, PendingFile, new_upload_name

FILE_FIELD = "file"
# Room for the form's other fields and the multipart framing around the file.
FORM_OVERHEAD_BYTES = 1 << 20


class StoredUpload(UploadedFile[bytes]):
    """The uploaded file as the form sees it: already in storage, under a temporary name."""

    def __init__(self, pending: PendingFile, *, name: str, content_type: str | None) -> None:
        super().__init__(file=None, name=name, content_type=content_type, size=pending.size)
        self.pending = pending


class DatasetUploadHandler(FileUploadHandler):
    def __init__(self, request: HttpRequest, *, max_bytes: int) -> None:
        super().__init__(request)
        self.max_bytes = max_bytes
        self.pending: PendingFile | None = None
        self.too_large = False

    def handle_raw_input(
        self,
        input_data: Any,
        META: dict[str, Any],
        content_length: int,
        boundary: str,
        encoding: str | None = None,
    ) -> tuple[QueryDict, MultiValueDict[str, UploadedFile[bytes]]] | None:
        if content_length > self.max_bytes + FORM_OVERHEAD_BYTES:
            self.too_large = True
            return QueryDict(), MultiValueDict()
        return None

    def new_file(self, field_name: str, file_name: str, *args: Any, **kwargs: Any) -> None:
        super().new_file(field_name, file_name, *args, **kwargs)
        # One dataset file per upload; anything else in the form is not stored.
        if field_name != FILE_FIELD or self.pending is not None:
            raise SkipFile()
        self.pending = PendingFile(name=new_upload_name(file_name), max_bytes=self.max_bytes)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        assert self.pending is not None
        try:
            self.pending.write(raw_data)
        except FileTooLarge:
            self.too_large = True
            # Read (and drop) the rest of the body, so the client gets the answer, not a reset.
            raise StopUpload(connection_reset=False) from None
        return None

    def file_complete(self, file_size: int) -> StoredUpload | None:
        if self.pending is None or self.too_large:
            return None
        self.pending.close()
        return StoredUpload(self.pending, name=self.file_name or "", content_type=self.content_type)

    def upload_interrupted(self) -> None:
        self.discard()

    def discard(self) -> None:
        """Remove the file unless the catalog committed it."""
        if self.pending is not None:
            self.pending.discard()
