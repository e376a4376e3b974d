"""Job templates: a spec saved under a name, personal or a team's, to submit again.

Reads and writes in one small module (the template is a spec with a name; its rules are few):
who sees a template (its owner, its team's members; admins every one), saving (validated as a
`JobRequest`; a name is unique within its owner's or team's templates), deleting, and
submitting from one with overrides deep-merged over its spec (`portal.jobs.specs`).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from portal.accounts.models import Team
from portal.accounts.selectors import user_is_admin
from portal.jobs.models import Job, JobTemplate
from portal.jobs.schemas import JobRequest
from portal.jobs.services import job_submit
from portal.jobs.specs import request_from_spec

NAME_MAX = 100  # JobTemplate.name's max_length


def job_templates_visible_to(user: AbstractBaseUser | AnonymousUser) -> QuerySet[JobTemplate]:
    """The user's own templates and their teams'; every template for admins."""
    templates = JobTemplate.objects.select_related("owner", "team")
    if user_is_admin(user):
        return templates
    if not user.is_authenticated:
        return templates.none()
    teams = Team.objects.filter(members=user.pk).values("pk")
    return templates.filter(Q(owner=user.pk) | Q(team__in=teams))


def job_template_get_visible(
    *, user: AbstractBaseUser | AnonymousUser, template_id: int
) -> JobTemplate:
    """The template, if the user may see it; Http404 otherwise."""
    found = job_templates_visible_to(user).filter(pk=template_id).first()
    if found is None:
        raise Http404("No such job template.")
    return found


def _team_for(user: AbstractBaseUser, team: str | None) -> Team | None:
    if not team:
        return None
    found = Team.objects.filter(members=user.pk, name=team).first()
    if found is None:
        raise ValidationError({"team": [f"You are not a member of a team named {team!r}."]})
    return found


def job_template_save(
    *,
    user: AbstractBaseUser,
    name: str,
    spec: JobRequest | dict[str, Any],
    team: str | None = None,
    replace: bool = False,
) -> JobTemplate:
    """Save `spec` under `name`, for the user alone or for `team` (one of theirs). A name
    already taken there is refused (ValidationError on `name`) unless `replace`, which
    overwrites that template's spec. A spec that is not a valid `JobRequest` is refused with
    errors keyed `spec.<dotted path>`; whether its dataset and model can be used is checked
    when a job is submitted from it, as they may change in between."""
    name = name.strip()
    if not name or len(name) > NAME_MAX:
        raise ValidationError(
            {"name": [f"Give the template a name of 1 to {NAME_MAX} characters."]}
        )
    try:
        request = spec if isinstance(spec, JobRequest) else request_from_spec(spec, {})
    except ValidationError as exc:
        raise ValidationError(
            {f"spec.{key}": messages for key, messages in exc.message_dict.items()}
        ) from exc
    stored = request.model_dump(mode="json")
    owning_team = _team_for(user, team)
    scope = {"team": owning_team} if owning_team else {"owner_id": user.pk, "team": None}
    with transaction.atomic():
        existing = JobTemplate.objects.select_for_update().filter(name=name, **scope).first()
        if existing is not None:
            if not replace:
                where = f"team {owning_team.name}" if owning_team else "you"
                raise ValidationError({"name": [f"A template named {name!r} exists for {where}."]})
            existing.spec = stored
            existing.updated_at = timezone.now()
            existing.save(update_fields=["spec", "updated_at"])
            return existing
        try:
            with transaction.atomic():
                return JobTemplate.objects.create(
                    name=name, spec=stored, created_by_id=user.pk, **scope
                )
        except IntegrityError as exc:  # saved by someone else at the same moment
            raise ValidationError({"name": [f"A template named {name!r} already exists."]}) from exc


def job_template_delete(*, user: AbstractBaseUser, template: JobTemplate) -> None:
    """Delete a template the user may see (Http404 otherwise)."""
    job_template_get_visible(user=user, template_id=template.pk).delete()


def job_template_submit(
    *, user: AbstractBaseUser, template: JobTemplate, overrides: dict[str, Any] | None = None
) -> Job:
    """Submit a job from `template` with `overrides` deep-merged over its spec; errors as
    `job_submit`'s (keyed by dotted `JobRequest` paths)."""
    job_template_get_visible(user=user, template_id=template.pk)
    return job_submit(user=user, request=request_from_spec(template.spec, overrides or {}))
