"""The searches REST API: create, list, read (with trials), cancel a search or one trial,
register the best trial. Another user's search answers 404 on every route."""

from __future__ import annotations

from typing import Any

import pydantic
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, QuerySet
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.authentication import TokenScopePermission, authenticated_user
from portal.experiments import selectors, services
from portal.experiments.models import Search
from portal.experiments.schemas import SearchRequest
from portal.experiments.serializers import (
    RegisterBestSerializer,
    SearchDetailSerializer,
    SearchSerializer,
    TrialSerializer,
)
from portal.jobs.schemas import dotted_errors
from portal.lib.drf import (
    BoundedJSONParser,
    ErrorsSerializer,
    django_errors,
    parse_data,
    request_invalid,
)
from portal.registry.selectors import model_version_get_visible
from portal.registry.serializers import ModelVersionSerializer

API_PERMISSIONS = [IsAuthenticated, TokenScopePermission]
NOT_FOUND = OpenApiResponse(description="No such search, or not one you can see.")


def _body(request: Request) -> Any:
    try:
        return request.data
    except exceptions.ParseError as exc:
        raise request_invalid({"__all__": [str(exc.detail)]}) from exc


def _detail(request: Request, search: Search) -> dict[str, Any]:
    trials = selectors.search_trials(search)
    data: dict[str, Any] = SearchDetailSerializer(search, context={"trials": trials}).data
    return data


class SearchListCreateApi(generics.ListAPIView[Search]):
    permission_classes = API_PERMISSIONS
    parser_classes = [BoundedJSONParser]
    serializer_class = SearchSerializer

    def get_queryset(self) -> QuerySet[Search]:
        return (
            selectors.searches_visible_to(self.request.user)
            .select_related("owner", "team", "best_trial")
            .annotate(trial_count=Count("trials"))
            .order_by("-created_at", "-id")
        )

    @extend_schema(summary="List the searches you can see")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Start a hyperparameter search",
        description="Trials are jobs made from `job` with each dimension of `space` set "
        "(`hyperparameters.<name>`, `training.learning_rate`, ...), sampled by `method` and "
        "judged per epoch by `early_stopping`. At most `parallelism` trials are unfinished at "
        "once, and they queue within your quotas. Each dimension's values are checked against "
        "the model's architecture: a value it cannot take is a 400 on `space.<index>`.",
        request=SearchRequest,
        responses={201: SearchDetailSerializer, 400: ErrorsSerializer, 413: ErrorsSerializer},
    )
    def post(self, request: Request) -> Response:
        try:
            search_request = SearchRequest.model_validate(_body(request), strict=True)
        except pydantic.ValidationError as exc:
            raise request_invalid(dotted_errors(exc)) from exc
        try:
            search = services.search_create(
                user=authenticated_user(request), request=search_request
            )
        except DjangoValidationError as exc:
            raise request_invalid(django_errors(exc)) from exc
        search = selectors.search_get_visible(user=request.user, search_id=search.pk)
        return Response(_detail(request, search), status=status.HTTP_201_CREATED)


class SearchDetailApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(
        summary="Read a search and its trials",
        responses={200: SearchDetailSerializer, 404: NOT_FOUND},
    )
    def get(self, request: Request, search_id: int) -> Response:
        search = selectors.search_get_visible(user=request.user, search_id=search_id)
        return Response(_detail(request, search))


class SearchCancelApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(
        summary="Cancel a search and every unfinished trial",
        request=None,
        responses={202: SearchDetailSerializer, 404: NOT_FOUND},
    )
    def post(self, request: Request, search_id: int) -> Response:
        search = selectors.search_get_visible(user=request.user, search_id=search_id)
        services.search_cancel(user=authenticated_user(request), search=search)
        search = selectors.search_get_visible(user=request.user, search_id=search_id)
        return Response(_detail(request, search), status=status.HTTP_202_ACCEPTED)


class TrialCancelApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(
        summary="Cancel one trial (the search goes on)",
        request=None,
        responses={202: TrialSerializer, 404: NOT_FOUND},
    )
    def post(self, request: Request, search_id: int, number: int) -> Response:
        search = selectors.search_get_visible(user=request.user, search_id=search_id)
        trial = search.trials.filter(number=number).first()
        if trial is None:
            raise Http404("No such trial.")
        trial = services.trial_cancel(user=authenticated_user(request), trial=trial)
        return Response(TrialSerializer(trial).data, status=status.HTTP_202_ACCEPTED)


class SearchRegisterBestApi(APIView):
    permission_classes = API_PERMISSIONS
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        summary="Register the best trial in the model registry",
        description="The best completed trial's job's best checkpoint becomes the next version "
        "of `name`, with the job's lineage. 400 while no trial has completed.",
        request=RegisterBestSerializer,
        responses={201: ModelVersionSerializer, 400: ErrorsSerializer, 404: NOT_FOUND},
    )
    def post(self, request: Request, search_id: int) -> Response:
        search = selectors.search_get_visible(user=request.user, search_id=search_id)
        body = parse_data(RegisterBestSerializer, _body(request))
        try:
            version = services.search_register_best(
                user=authenticated_user(request), search=search, name=body["name"]
            )
        except DjangoValidationError as exc:
            raise request_invalid(django_errors(exc)) from exc
        version = model_version_get_visible(user=request.user, version_id=version.pk)
        return Response(ModelVersionSerializer(version).data, status=status.HTTP_201_CREATED)
