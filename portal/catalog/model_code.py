"""Custom model code: a user's Python file that defines `build_model`, stored for nodes to run.

Only users an admin granted `catalog.run_custom_code` may upload. The portal never imports or
executes the file: it checks that the bytes are UTF-8 Python that parses (`ast.parse`) and
define a top-level `build_model(input_shape, num_classes, **hparams)`, stores them under
their SHA-256, and records who uploaded what in the audit log. Nodes load the file only after
its bytes matched that digest; predictions use the TorchScript export, never the file.
"""

from __future__ import annotations

import ast
import hashlib
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, PermissionsMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from portal.accounts.models import Team
from portal.audit.models import AuditEvent
from portal.audit.services import audit_record
from portal.catalog.models import ModelArchitecture
from portal.lib.text import text_problem
from workers.files import write_atomic
from workers.messages import CustomModel

RUN_CUSTOM_CODE = "catalog.run_custom_code"
PERMISSION_MESSAGE = (
    "Uploading model code needs the permission catalog.run_custom_code "
    '("Can define and train custom model code"); ask an admin to grant it.'
)
ENTRY_POINT = "build_model"
NAME_MAX_CHARS = 200
DESCRIPTION_MAX_CHARS = 5000
_SLUG_UNSAFE = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class ModelCodeUpload:
    """What the user sent: the file's name and bytes (read up to the limit plus one byte)."""

    filename: str
    content: bytes
    name: str
    description: str
    default_params: Any


def user_may_run_custom_code(user: AbstractBaseUser) -> bool:
    """Whether an admin granted `user` custom code (superusers hold every permission)."""
    return isinstance(user, PermissionsMixin) and user.is_active and user.has_perm(RUN_CUSTOM_CODE)


def code_problem(filename: str, content: bytes) -> str | None:
    """Why `content` is not acceptable model code, or None. Parses, never runs."""
    limit = settings.TRAINYARD_MODEL_CODE_MAX_BYTES
    if len(content) > limit:
        return f"{filename} is larger than {limit} bytes."
    if not content.strip():
        return f"{filename} is empty."
    try:
        source = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"{filename} is not UTF-8 text: byte {exc.start} is {content[exc.start]:#04x}."
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        return f"{filename} line {exc.lineno}: {exc.msg}."
    except ValueError as exc:  # a NUL byte
        return f"{filename} is not Python source: {exc}."
    functions = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == ENTRY_POINT
    ]
    if not functions:
        return (
            f"{filename} defines no top-level {ENTRY_POINT} function; it must define "
            f"def {ENTRY_POINT}(input_shape, num_classes, **hparams)."
        )
    function = functions[-1]
    if isinstance(function, ast.AsyncFunctionDef):
        return f"{filename} line {function.lineno}: {ENTRY_POINT} must not be async."
    arguments = function.args
    positional = len(arguments.posonlyargs) + len(arguments.args)
    if positional < 2 and arguments.vararg is None:
        return (
            f"{filename} line {function.lineno}: {ENTRY_POINT} must take input_shape and "
            "num_classes as its first two arguments."
        )
    return None


def _hparams_problem(params: Any) -> str | None:
    if not isinstance(params, dict):
        return "Default hyperparameters must be a JSON object."
    try:
        msgspec.convert(
            {"architecture": "custom", "code_uri": "x", "code_sha256": "0" * 64, "hparams": params},
            CustomModel,
            strict=True,
        )
    except msgspec.ValidationError as exc:
        return f"Default hyperparameters are invalid: {exc}"
    return None


def _slug(name: str) -> str:
    base = _SLUG_UNSAFE.sub("-", name.lower()).strip("-")[:60] or "model"
    return f"custom-{base}-{uuid.uuid4().hex[:8]}"


def model_code_upload(*, user: AbstractBaseUser, upload: ModelCodeUpload) -> ModelArchitecture:
    """Store `upload` as a custom architecture owned by `user`.

    Raises `PermissionDenied` (with `PERMISSION_MESSAGE`) for a user without
    `catalog.run_custom_code`, and `ValidationError` keyed `file`, `name`, `description` or
    `default_params` for what is wrong with the upload.
    """
    if not user_may_run_custom_code(user):
        raise PermissionDenied(PERMISSION_MESSAGE)
    errors: dict[str, list[str]] = {}
    name = upload.name.strip()
    if not name:
        errors["name"] = ["Give the model a name."]
    elif len(name) > NAME_MAX_CHARS:
        errors["name"] = [f"Ensure this value has at most {NAME_MAX_CHARS} characters."]
    elif (problem := text_problem(name)) is not None:
        errors["name"] = [problem]
    if len(upload.description) > DESCRIPTION_MAX_CHARS:
        errors["description"] = [
            f"Ensure this value has at most {DESCRIPTION_MAX_CHARS} characters."
        ]
    if (problem := code_problem(upload.filename, upload.content)) is not None:
        errors["file"] = [problem]
    if (problem := _hparams_problem(upload.default_params)) is not None:
        errors["default_params"] = [problem]
    if errors:
        raise ValidationError(errors)
    sha256 = hashlib.sha256(upload.content).hexdigest()
    # Content-addressed: the same code uploaded twice is one file, and a file's name is its
    # checksum, so no upload can replace another's bytes.
    target = Path(settings.TRAINYARD_STORAGE_ROOT).resolve() / "models" / "code" / f"{sha256}.py"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, upload.content)
    with transaction.atomic():
        architecture = ModelArchitecture.objects.create(
            slug=_slug(name),
            name=name,
            description=upload.description,
            family=ModelArchitecture.Family.CUSTOM,
            default_params=upload.default_params,
            code_uri=target.as_uri(),
            code_sha256=sha256,
            owner_id=user.pk,
            team=Team.objects.filter(members=user.pk).order_by("name").first(),
            is_public=False,
        )
        audit_record(
            action=AuditEvent.Action.MODEL_CODE_UPLOADED,
            actor=user,
            target=f"model {architecture.pk} {name}",
            details={
                "model": architecture.pk,
                "filename": upload.filename[:255],
                "sha256": sha256,
                "size_bytes": len(upload.content),
            },
        )
    return architecture
