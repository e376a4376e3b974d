"""What a dataset may be, and the one error every refusal raises."""

from __future__ import annotations

from dataclasses import dataclass


class DatasetInvalid(Exception):
    """A file that cannot be a dataset version; the message names the file, row, column and why.

    Rows are 1-based and count a CSV's header as row 1 (so the number is the line a text
    editor shows for a file without quoted newlines); for Parquet and npz the first record is
    row 1. The parts are kept as attributes for a caller that shows them separately.
    """

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
        member: str | None = None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.row = row
        self.column = column
        self.member = member
        super().__init__(_message(reason, file=file, row=row, column=column, member=member))


def _message(
    reason: str, *, file: str | None, row: int | None, column: str | None, member: str | None
) -> str:
    # "data.csv row 7, column 'age': ...": the file and the row read as one place.
    where = file or ""
    if member is not None:
        where += f", member {member!r}"
    if row is not None:
        where += f" row {row}"
    if column is not None:
        where += f", column {column!r}"
    where = where.lstrip(", ")
    return f"{where}: {reason}" if where else reason


@dataclass(frozen=True)
class Limits:
    """The most a dataset may hold; over any of them it is refused before it costs more.

    `max_zip_ratio` bounds the bytes a zip (image set or npz) inflates to against the archive's
    own size, counted while decompressing: a zip bomb is stopped at the first chunk past it.
    """

    max_bytes: int = 1 << 30
    max_rows: int = 5_000_000
    max_columns: int = 10_000
    max_zip_members: int = 200_000
    max_uncompressed_bytes: int = 4 << 30
    max_zip_ratio: float = 200.0
    max_image_pixels: int = 4096 * 4096
    # Every image is resized to image_size x image_size at preparation.
    image_size: int = 32

    def __post_init__(self) -> None:
        for field in ("max_bytes", "max_rows", "max_columns", "max_zip_members"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be at least 1")
        if self.max_uncompressed_bytes < 1 or self.max_zip_ratio <= 0 or self.max_image_pixels < 1:
            raise ValueError("the zip and image limits must be positive")
        if self.image_size < 1 or self.image_size > 1024:
            raise ValueError(f"image_size {self.image_size} is not in [1, 1024]")
