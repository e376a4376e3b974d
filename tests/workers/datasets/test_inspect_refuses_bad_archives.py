"""The archive half of the bad-file corpus: zips that escape, bombs, and images that are not."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.workers.datasets.conftest import image_set, png_bytes, write_zip
from workers.datasets import DatasetInvalid, Limits, inspect
from workers.messages import PreprocessSpec


def _refused(path: Path, pp: PreprocessSpec, limits: Limits | None = None) -> DatasetInvalid:
    with pytest.raises(DatasetInvalid) as caught:
        inspect(
            path,
            format="images",
            target="label",
            task="classification",
            preprocessing=pp,
            limits=limits,
        )
    return caught.value


def _good_members() -> dict[str, bytes]:
    pixels = np.zeros((4, 4, 3))
    return {f"{label}/{i}.png": png_bytes(pixels + i) for label in "ab" for i in range(3)}


@pytest.mark.parametrize("escape", ["../evil.png", "a/../../evil.png", "/etc/evil.png"])
def test_it_refuses_a_member_whose_path_escapes_the_folder(tmp_path, pp, escape):
    path = write_zip(tmp_path / "shapes.zip", {**_good_members(), escape: b"x"})
    error = _refused(path, pp)
    assert str(error) == f"shapes.zip, member {escape!r}: the path escapes the archive's folder"
    assert error.member == escape


def test_it_refuses_a_zip_bomb_by_its_declared_size(tmp_path, pp):
    # 4 MiB of zeros deflate to about 4 KiB: a ratio of about 1000.
    path = write_zip(tmp_path / "shapes.zip", {**_good_members(), "a/bomb.png": bytes(4 << 20)})
    error = _refused(path, pp)
    assert "times its size (a zip bomb?)" in str(error)
    assert str(error).startswith("shapes.zip: the archive declares ")


def test_it_refuses_a_zip_over_the_uncompressed_limit(tmp_path, pp):
    path = write_zip(tmp_path / "shapes.zip", _good_members())
    error = _refused(path, pp, Limits(max_uncompressed_bytes=10))
    assert str(error) == (
        "shapes.zip: the archive declares more than 10 uncompressed bytes (a zip bomb?)"
    )


def _understate_size(path: Path, member: str, size: int) -> None:
    """Rewrite the member's declared uncompressed size in both of its headers."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    local = data.find(b"PK\x03\x04")
    while local != -1:
        name_len = struct.unpack_from("<H", data, local + 26)[0]
        if bytes(data[local + 30 : local + 30 + name_len]) == name:
            struct.pack_into("<I", data, local + 22, size)
        local = data.find(b"PK\x03\x04", local + 4)
    central = data.find(b"PK\x01\x02")
    while central != -1:
        name_len = struct.unpack_from("<H", data, central + 28)[0]
        if bytes(data[central + 46 : central + 46 + name_len]) == name:
            struct.pack_into("<I", data, central + 24, size)
        central = data.find(b"PK\x01\x02", central + 4)
    path.write_bytes(bytes(data))


def test_a_member_that_inflates_past_its_declared_size_is_refused(tmp_path, pp):
    path = write_zip(tmp_path / "shapes.zip", {**_good_members(), "a/bomb.png": bytes(4 << 20)})
    _understate_size(path, "a/bomb.png", 100)
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("a/bomb.png").file_size == 100
    error = _refused(path, pp)
    # The header's 100 bytes pass the declared check; reading stops there and the data does
    # not match its checksum, so the member is refused, never inflated to its 4 MiB.
    assert str(error).startswith("shapes.zip, member 'a/bomb.png': the member cannot be read")


def test_it_refuses_a_png_that_is_not_an_image(tmp_path, pp):
    path = write_zip(tmp_path / "shapes.zip", {**_good_members(), "b/fake.png": b"not an image"})
    error = _refused(path, pp)
    assert str(error).startswith(
        "shapes.zip, member 'b/fake.png': the bytes are not a readable PNG or JPEG image"
    )


def test_it_refuses_a_file_that_is_not_an_image_by_its_name(tmp_path, pp):
    path = write_zip(tmp_path / "shapes.zip", {**_good_members(), "a/notes.txt": b"hello"})
    assert str(_refused(path, pp)) == (
        "shapes.zip, member 'a/notes.txt': the member is not a PNG or JPEG file (.png, .jpg, .jpeg)"
    )


def test_it_refuses_an_image_outside_a_class_folder(tmp_path, pp):
    path = write_zip(tmp_path / "shapes.zip", {**_good_members(), "loose.png": b"x"})
    assert str(_refused(path, pp)) == (
        "shapes.zip, member 'loose.png': an image set is one folder per class holding image "
        "files; this member is not <class>/<file>"
    )


def test_it_refuses_an_image_with_too_many_pixels(tmp_path, pp):
    members = {**_good_members(), "b/big.png": png_bytes(np.zeros((20, 20, 3)))}
    path = write_zip(tmp_path / "shapes.zip", members)
    assert str(_refused(path, pp, Limits(max_image_pixels=100))) == (
        "shapes.zip, member 'b/big.png': the image is 20 x 20 pixels; the limit is 100 pixels"
    )


def test_it_refuses_a_single_class(tmp_path, pp):
    path = image_set(tmp_path / "shapes.zip", classes=("circle",))
    assert str(_refused(path, pp)) == (
        "shapes.zip, column 'label': the target has only one class 'circle'; classification "
        "needs at least two"
    )


def test_it_refuses_regression_on_images(tmp_path, pp):
    path = image_set(tmp_path / "shapes.zip")
    with pytest.raises(DatasetInvalid, match="classified by its folders"):
        inspect(path, format="images", target="label", task="regression", preprocessing=pp)


def test_it_refuses_a_png_uploaded_as_an_image_set(tmp_path, pp):
    path = tmp_path / "shapes.zip"
    path.write_bytes(png_bytes(np.zeros((4, 4, 3))))
    assert str(_refused(path, pp)) == (
        "shapes.zip: the format is images but the bytes are a PNG image, not a zip of image folders"
    )


def test_too_many_members_are_refused_before_any_is_read(tmp_path, pp):
    path = write_zip(tmp_path / "shapes.zip", _good_members())
    assert str(_refused(path, pp, Limits(max_zip_members=3))) == (
        "shapes.zip: the archive has 6 members; the limit is 3"
    )
