"""POST /api/v1/models/: custom model code, for users an admin granted catalog.run_custom_code.

The portal parses the file (ast) and never runs it; the bytes are stored under their SHA-256
and the upload is in the audit log.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from portal.audit.models import AuditEvent
from portal.catalog.model_code import PERMISSION_MESSAGE
from portal.catalog.models import ModelArchitecture
from tests.api.conftest import TokenClient
from tests.factories import make_user

GOOD = b"""import torch


def build_model(input_shape, num_classes, hidden=8):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(num_classes))
"""


@pytest.fixture
def coder(db: None) -> User:
    user = make_user("coder")
    user.user_permissions.add(Permission.objects.get(codename="run_custom_code"))
    return User.objects.get(pk=user.pk)  # a fresh instance: permissions are cached per object


def upload(client: Any, content: bytes, filename: str = "net.py", **fields: str) -> Any:
    data: dict[str, Any] = {"name": "My net", "description": "tiny", **fields}
    data["file"] = SimpleUploadedFile(filename, content, content_type="text/x-python")
    return client.post("/api/v1/models/", data, format="multipart")


def test_a_user_without_the_permission_gets_403_naming_it(
    client_for: TokenClient, owner: User, storage_root: Path
) -> None:
    response = upload(client_for(owner), GOOD)

    assert response.status_code == 403
    assert response.json()["detail"] == PERMISSION_MESSAGE
    assert "catalog.run_custom_code" in PERMISSION_MESSAGE
    assert not ModelArchitecture.objects.filter(family="custom").exists()
    assert not (storage_root / "models").exists()


def test_the_upload_page_is_403_without_the_permission(owner: User) -> None:
    client = Client()
    client.force_login(owner)

    response = client.get("/catalog/models/upload/")

    assert response.status_code == 403


def test_it_stores_the_code_by_checksum_with_an_audit_entry(
    client_for: TokenClient, coder: User, storage_root: Path
) -> None:
    response = upload(client_for(coder), GOOD, default_params='{"hidden": 16}')

    assert response.status_code == 201, response.json()
    model = ModelArchitecture.objects.get(pk=response.json()["id"])
    sha256 = hashlib.sha256(GOOD).hexdigest()
    assert model.family == ModelArchitecture.Family.CUSTOM
    assert (model.name, model.owner, model.is_public) == ("My net", coder, False)
    assert model.default_params == {"hidden": 16}
    assert model.code_sha256 == sha256
    stored = storage_root.resolve() / "models" / "code" / f"{sha256}.py"
    assert model.code_uri == stored.as_uri()
    assert stored.read_bytes() == GOOD
    event = AuditEvent.objects.get(action=AuditEvent.Action.MODEL_CODE_UPLOADED)
    assert event.actor == coder
    assert event.details == {
        "model": model.pk,
        "filename": "net.py",
        "sha256": sha256,
        "size_bytes": len(GOOD),
    }


def test_the_portal_never_runs_the_file(
    client_for: TokenClient, coder: User, storage_root: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').write('x')\n\ndef build_model(a, b):\n    pass\n"

    response = upload(client_for(coder), code.encode())

    assert response.status_code == 201
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "net.py is empty."),
        (
            b"def build_model(a, b):\n    return \xff\n",
            "net.py is not UTF-8 text: byte 34 is 0xff.",
        ),
        (b"def build_model(a, b)\n    pass\n", "net.py line 1: expected ':'."),
        (
            b"class Net:\n    def build_model(self, a, b):\n        pass\n",
            "net.py defines no top-level build_model function; it must define "
            "def build_model(input_shape, num_classes, **hparams).",
        ),
        (
            b"build_model = lambda a, b: None\n",
            "net.py defines no top-level build_model function; it must define "
            "def build_model(input_shape, num_classes, **hparams).",
        ),
        (
            b"def build_model(shape):\n    pass\n",
            "net.py line 1: build_model must take input_shape and num_classes as its first "
            "two arguments.",
        ),
        (
            b"async def build_model(a, b):\n    pass\n",
            "net.py line 1: build_model must not be async.",
        ),
    ],
)
def test_it_refuses_code_that_is_not_a_model_file(
    client_for: TokenClient, coder: User, storage_root: Path, content: bytes, message: str
) -> None:
    response = upload(client_for(coder), content)

    assert response.status_code == 400
    assert response.json()["errors"]["file"] == [message]
    assert not ModelArchitecture.objects.filter(family="custom").exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.MODEL_CODE_UPLOADED).exists()


def test_it_refuses_a_file_over_the_limit(
    client_for: TokenClient, coder: User, storage_root: Path, settings: Any
) -> None:
    settings.TRAINYARD_MODEL_CODE_MAX_BYTES = 2048
    big = GOOD + b"#" * 3000 + b"\n"

    response = upload(client_for(coder), big)

    assert response.status_code == 400
    assert response.json()["errors"]["file"] == ["net.py is larger than 2048 bytes."]


def test_it_refuses_a_body_far_over_the_limit_before_parsing_it(
    client_for: TokenClient, coder: User, storage_root: Path, settings: Any
) -> None:
    settings.TRAINYARD_MODEL_CODE_MAX_BYTES = 2048

    response = upload(client_for(coder), GOOD + b"#" * 200_000)

    assert response.status_code == 413


@pytest.mark.parametrize(
    ("params", "field_message"),
    [
        ("[1, 2]", "Default hyperparameters must be a JSON object."),
        ("{oops", "Default hyperparameters are not JSON"),
        ('{"bad key": 1}', "Default hyperparameters are invalid"),
    ],
)
def test_it_refuses_bad_default_hyperparameters(
    client_for: TokenClient, coder: User, storage_root: Path, params: str, field_message: str
) -> None:
    response = upload(client_for(coder), GOOD, default_params=params)

    assert response.status_code == 400
    assert response.json()["errors"]["default_params"][0].startswith(field_message)


def test_a_user_with_the_permission_uploads_through_the_page(
    coder: User, storage_root: Path
) -> None:
    client = Client()
    client.force_login(coder)
    assert client.get("/catalog/models/upload/").status_code == 200

    response = client.post(
        "/catalog/models/upload/",
        {"name": "Paged", "file": SimpleUploadedFile("p.py", GOOD), "default_params": ""},
    )

    assert response.status_code == 302
    assert ModelArchitecture.objects.get(family="custom").name == "Paged"
    models_page = client.get("/catalog/models/").content.decode()
    assert 'href="/catalog/models/upload/"' in models_page


def test_an_admin_grants_the_permission_with_one_action(admin_user: User, owner: User) -> None:
    client = Client()
    client.force_login(admin_user)

    response = client.post(
        "/admin/auth/user/",
        {"action": "grant_custom_code", "_selected_action": [owner.pk]},
    )

    assert response.status_code == 302
    assert User.objects.get(pk=owner.pk).has_perm("catalog.run_custom_code")
