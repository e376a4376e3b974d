"""The job templates REST API (`/api/v1/job-templates/`): list, save, read, delete, submit.

A template another user cannot see answers 404 on every route, like a job.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.authentication import authenticated_user
from portal.jobs import job_templates, selectors, services
from portal.jobs.api import API_PERMISSIONS
from portal.jobs.models import JobTemplate
from portal.jobs.serializers import JobSerializer
from portal.lib.drf import (
    BoundedJSONParser,
    ErrorsSerializer,
    django_errors,
    parse_data,
    request_invalid,
)

NOT_FOUND = OpenApiResponse(description="No such template, or not one you can see.")


class JobTemplateSerializer(serializers.ModelSerializer[JobTemplate]):
    owner = serializers.CharField(
        source="owner.username", default=None, read_only=True, help_text="Personal: its owner."
    )
    team = serializers.CharField(
        source="team.name", default=None, read_only=True, help_text="A team's: the team."
    )
    spec = serializers.JSONField(read_only=True, help_text="A whole job request.")

    class Meta:
        model = JobTemplate
        fields = ["id", "name", "owner", "team", "spec", "created_at", "updated_at"]
        read_only_fields = fields


class JobTemplateSaveSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    team = serializers.CharField(
        required=False,
        allow_null=True,
        max_length=100,
        help_text="One of your teams: its members share the template. Absent: yours alone.",
    )
    spec = serializers.JSONField(
        required=False, help_text="A job request (as `POST /api/v1/jobs/` takes)."
    )
    from_job = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=2**63 - 1,
        help_text="Instead of `spec`: the stored spec of this job (one you can see).",
    )
    replace = serializers.BooleanField(
        default=False, help_text="Overwrite the template of that name, if there is one."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("spec" in attrs) == ("from_job" in attrs):
            raise serializers.ValidationError("Give either `spec` or `from_job`.")
        if "spec" in attrs and not isinstance(attrs["spec"], dict):
            raise serializers.ValidationError({"spec": ["A job request is a JSON object."]})
        return attrs


def _body(request: Request) -> Any:
    try:
        return request.data
    except exceptions.ParseError as exc:
        raise request_invalid({"__all__": [str(exc.detail)]}) from exc


class JobTemplateListCreateApi(generics.ListAPIView[JobTemplate]):
    permission_classes = API_PERMISSIONS
    parser_classes = [BoundedJSONParser]
    serializer_class = JobTemplateSerializer

    def get_queryset(self) -> QuerySet[JobTemplate]:
        return job_templates.job_templates_visible_to(self.request.user)

    @extend_schema(summary="List the job templates you can use (yours and your teams')")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Save a job template",
        description="A spec (a job request, validated as one) or a job's stored spec "
        "(`from_job`) under a name, for you or for one of your teams. A name already used "
        "there is a 400 on `name` unless `replace`.",
        request=JobTemplateSaveSerializer,
        responses={201: JobTemplateSerializer, 400: ErrorsSerializer, 404: NOT_FOUND},
    )
    def post(self, request: Request) -> Response:
        body = parse_data(JobTemplateSaveSerializer, _body(request))
        user = authenticated_user(request)
        if "from_job" in body:
            spec = selectors.job_get_visible(user=user, job_id=body["from_job"]).spec
        else:
            spec = body["spec"]
        try:
            template = job_templates.job_template_save(
                user=user,
                name=body["name"],
                spec=spec,
                team=body.get("team"),
                replace=body["replace"],
            )
        except DjangoValidationError as exc:
            raise request_invalid(django_errors(exc)) from exc
        return Response(JobTemplateSerializer(template).data, status=status.HTTP_201_CREATED)


class JobTemplateDetailApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(
        summary="Read a job template", responses={200: JobTemplateSerializer, 404: NOT_FOUND}
    )
    def get(self, request: Request, template_id: int) -> Response:
        template = job_templates.job_template_get_visible(
            user=request.user, template_id=template_id
        )
        return Response(JobTemplateSerializer(template).data)

    @extend_schema(summary="Delete a job template", responses={204: None, 404: NOT_FOUND})
    def delete(self, request: Request, template_id: int) -> Response:
        user = authenticated_user(request)
        template = job_templates.job_template_get_visible(user=user, template_id=template_id)
        job_templates.job_template_delete(user=user, template=template)
        return Response(status=status.HTTP_204_NO_CONTENT)


class JobTemplateSubmitApi(APIView):
    permission_classes = API_PERMISSIONS
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        summary="Submit a job from a template",
        description="The body holds overrides, deep-merged over the template's spec (objects "
        'merge key by key, anything else replaces): `{"training": {"epochs": 5}}`. An empty '
        "body submits the template as it is. Errors as for `POST /api/v1/jobs/`.",
        request=OpenApiTypes.OBJECT,
        responses={
            201: JobSerializer,
            400: ErrorsSerializer,
            404: NOT_FOUND,
            503: ErrorsSerializer,
        },
    )
    def post(self, request: Request, template_id: int) -> Response:
        user = authenticated_user(request)
        template = job_templates.job_template_get_visible(user=user, template_id=template_id)
        overrides = _body(request) or {}
        if not isinstance(overrides, dict):
            raise request_invalid({"__all__": ["The overrides are a JSON object."]})
        try:
            job = job_templates.job_template_submit(
                user=user, template=template, overrides=overrides
            )
        except DjangoValidationError as exc:
            raise request_invalid(django_errors(exc)) from exc
        except services.DryRunUnavailable as exc:
            return Response(
                {"errors": {"__all__": [str(exc)]}}, status=status.HTTP_503_SERVICE_UNAVAILABLE
            )
        JobSerializer.eager_one(job)
        body = JobSerializer(job, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED)
