"""Reads for the model registry: who sees which model version."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet
from django.http import Http404

from portal.accounts.models import Team
from portal.accounts.selectors import user_is_admin
from portal.registry.models import ModelVersion
from workers.storage import StorageError, local_path_for

FILE_KINDS = ("safetensors", "torchscript")


def model_versions_visible_to(user: AbstractBaseUser | AnonymousUser) -> QuerySet[ModelVersion]:
    """The user's own versions and their teams'; every version for admins (as for jobs)."""
    versions = ModelVersion.objects.select_related("owner", "team", "job", "dataset")
    if user_is_admin(user):
        return versions
    if not user.is_authenticated:
        return versions.none()
    teams = Team.objects.filter(members=user.pk).values("pk")
    return versions.filter(Q(owner=user.pk) | Q(team__in=teams))


def model_version_get_visible(
    *, user: AbstractBaseUser | AnonymousUser, version_id: int
) -> ModelVersion:
    """The version, if the user may see it; Http404 otherwise, so an id reveals nothing."""
    found = model_versions_visible_to(user).filter(pk=version_id).first()
    if found is None:
        raise Http404("No such model version.")
    return found


def model_version_file(version: ModelVersion, kind: str) -> tuple[Path, str]:
    """The stored file of `kind` and the name a download gets; Http404 if it is gone."""
    if kind not in FILE_KINDS:
        raise Http404("No such file.")
    uri = version.safetensors_uri if kind == "safetensors" else version.torchscript_uri
    try:
        path = local_path_for(uri)
    except StorageError as exc:
        raise Http404("The file is not in local storage.") from exc
    if not path.is_file():
        raise Http404("The file is gone from storage.")
    suffix = ".safetensors" if kind == "safetensors" else ".torchscript.pt"
    return path, f"{version.name}-v{version.version}{suffix}"
