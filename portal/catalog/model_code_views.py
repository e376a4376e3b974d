"""The page for uploading custom model code (users granted `catalog.run_custom_code`)."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from portal.accounts.http import AuthenticatedHttpRequest
from portal.catalog.model_code import (
    PERMISSION_MESSAGE,
    ModelCodeUpload,
    model_code_upload,
    user_may_run_custom_code,
)
from portal.catalog.model_code_api import parse_default_params, read_upload

EXAMPLE = """import torch


def build_model(input_shape, num_classes, hidden=64):
    return torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.LazyLinear(hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, num_classes),
    )
"""


class ModelCodeForm(forms.Form):
    file = forms.FileField(
        help_text="A UTF-8 Python file defining build_model(input_shape, num_classes, **hparams)."
    )
    name = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    default_params = forms.CharField(
        label="Default hyperparameters",
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}),
        required=False,
        help_text='A JSON object passed to build_model as keyword arguments, e.g. {"hidden": 64}.',
    )


@require_http_methods(["GET", "POST"])
def model_code_new(request: AuthenticatedHttpRequest) -> HttpResponse:
    if not user_may_run_custom_code(request.user):
        raise PermissionDenied(PERMISSION_MESSAGE)
    form = ModelCodeForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        file = form.cleaned_data["file"]
        try:
            upload = ModelCodeUpload(
                filename=file.name or "model.py",
                content=read_upload(file, settings.TRAINYARD_MODEL_CODE_MAX_BYTES),
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                default_params=parse_default_params(form.cleaned_data["default_params"]),
            )
            architecture = model_code_upload(user=request.user, upload=upload)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
        else:
            messages.success(
                request, f"Uploaded {architecture.name} ({architecture.code_sha256[:12]})."
            )
            return redirect("catalog:models")
    return render(
        request,
        "catalog/model_upload.html",
        {"form": form, "example": EXAMPLE, "max_bytes": settings.TRAINYARD_MODEL_CODE_MAX_BYTES},
        status=400 if form.is_bound and form.errors else 200,
    )
