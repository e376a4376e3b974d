"""The teams and quotas REST API.

Members read their own teams (members and quota); admins read every team and make every
change. A team you are not in answers 404 (ids reveal nothing), a change you may not make on
a team you can see answers 403, and so does creating a team. A user's quota: the user
themself and admins read it, admins set it; anyone else's answers 404.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts import selectors, services
from portal.accounts.authentication import TokenScopePermission, authenticated_user
from portal.accounts.models import Team
from portal.accounts.serializers import (
    MemberSerializer,
    QuotaLimitsSerializer,
    QuotaSerializer,
    TeamNameSerializer,
    TeamSerializer,
    quota_body,
)
from portal.lib.drf import ErrorsSerializer, django_errors, parse_data, request_invalid

API_PERMISSIONS = [IsAuthenticated, TokenScopePermission]
NOT_FOUND = OpenApiResponse(description="No such team (or user), or not one you can see.")
ADMINS_ONLY = OpenApiResponse(description="Only admins may make this change.")


def _admin(request: Request) -> User:
    user = authenticated_user(request)
    if not isinstance(user, User) or not selectors.user_is_admin(user):
        raise exceptions.PermissionDenied("Only admins may change teams and quotas.")
    return user


def _team(request: Request, team_id: int) -> Team:
    return selectors.team_get_visible(user=authenticated_user(request), team_id=team_id)


def _team_body(team_id: int, request: Request) -> dict[str, Any]:
    return dict(TeamSerializer(_team(request, team_id)).data)


def _call(change: Any, **kwargs: Any) -> Any:
    try:
        return change(**kwargs)
    except DjangoValidationError as exc:
        raise request_invalid(django_errors(exc)) from exc


class TeamListApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(
        summary="List your teams (admins: every team)", responses=TeamSerializer(many=True)
    )
    def get(self, request: Request) -> Response:
        teams = selectors.teams_visible_to(authenticated_user(request)).order_by("name")
        return Response(TeamSerializer(teams, many=True).data)

    @extend_schema(
        summary="Create a team (admins)",
        request=TeamNameSerializer,
        responses={201: TeamSerializer, 400: ErrorsSerializer, 403: ADMINS_ONLY},
    )
    def post(self, request: Request) -> Response:
        by = _admin(request)
        data = parse_data(TeamNameSerializer, request.data)
        team = _call(services.team_create, name=data["name"], by=by)
        return Response(_team_body(team.pk, request), status=status.HTTP_201_CREATED)


class TeamDetailApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(summary="Read a team", responses={200: TeamSerializer, 404: NOT_FOUND})
    def get(self, request: Request, team_id: int) -> Response:
        return Response(_team_body(team_id, request))

    @extend_schema(
        summary="Rename a team (admins)",
        request=TeamNameSerializer,
        responses={200: TeamSerializer, 400: ErrorsSerializer, 403: ADMINS_ONLY, 404: NOT_FOUND},
    )
    def patch(self, request: Request, team_id: int) -> Response:
        team = _team(request, team_id)
        by = _admin(request)
        data = parse_data(TeamNameSerializer, request.data)
        _call(services.team_rename, team=team, name=data["name"], by=by)
        return Response(_team_body(team_id, request))

    @extend_schema(
        summary="Delete a team (admins); its jobs and datasets stay, with no team",
        responses={204: None, 403: ADMINS_ONLY, 404: NOT_FOUND},
    )
    def delete(self, request: Request, team_id: int) -> Response:
        team = _team(request, team_id)
        services.team_delete(team=team, by=_admin(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _user(username: str) -> User:
    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        raise request_invalid({"username": [f"There is no user {username}."]})
    return user


class TeamMemberListApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(
        summary="Add a member to a team (admins)",
        request=MemberSerializer,
        responses={200: TeamSerializer, 400: ErrorsSerializer, 403: ADMINS_ONLY, 404: NOT_FOUND},
    )
    def post(self, request: Request, team_id: int) -> Response:
        team = _team(request, team_id)
        by = _admin(request)
        data = parse_data(MemberSerializer, request.data)
        services.team_member_add(team=team, user=_user(data["username"]), by=by)
        return Response(_team_body(team_id, request))


class TeamMemberApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(
        summary="Remove a member from a team (admins)",
        responses={200: TeamSerializer, 403: ADMINS_ONLY, 404: NOT_FOUND},
    )
    def delete(self, request: Request, team_id: int, username: str) -> Response:
        team = _team(request, team_id)
        by = _admin(request)
        member = team.members.filter(username=username).first()
        if member is None:
            raise Http404("No such member.")
        services.team_member_remove(team=team, user=member, by=by)
        return Response(_team_body(team_id, request))


_QUOTA_CHANGED = {200: QuotaSerializer, 400: ErrorsSerializer, 403: ADMINS_ONLY, 404: NOT_FOUND}


def _set_quota(request: Request, holder: User | Team) -> Response:
    by = _admin(request)
    values = parse_data(QuotaLimitsSerializer, request.data)
    _call(services.quota_set, holder=holder, values=values, by=by)
    return Response(QuotaSerializer(quota_body(selectors.quota_of(holder))).data)


class TeamQuotaApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(summary="Read a team's quota", responses={200: QuotaSerializer, 404: NOT_FOUND})
    def get(self, request: Request, team_id: int) -> Response:
        team = _team(request, team_id)
        return Response(QuotaSerializer(quota_body(selectors.quota_of(team))).data)

    @extend_schema(
        summary="Set a team's quota (admins)",
        description="Fields left out keep their value; null blanks a field (the cluster "
        "default applies).",
        request=QuotaLimitsSerializer,
        responses=_QUOTA_CHANGED,
    )
    def patch(self, request: Request, team_id: int) -> Response:
        return _set_quota(request, _team(request, team_id))


class UserQuotaApi(APIView):
    permission_classes = API_PERMISSIONS

    def _holder(self, request: Request, username: str) -> User:
        user = User.objects.filter(username=username).first()
        me = authenticated_user(request)
        if user is None or (user.pk != me.pk and not selectors.user_is_admin(me)):
            raise Http404("No such user.")
        return user

    @extend_schema(
        summary="Read a user's quota (your own; admins: anyone's)",
        responses={200: QuotaSerializer, 404: NOT_FOUND},
    )
    def get(self, request: Request, username: str) -> Response:
        holder = self._holder(request, username)
        return Response(QuotaSerializer(quota_body(selectors.quota_of(holder))).data)

    @extend_schema(
        summary="Set a user's quota (admins)",
        description="Fields left out keep their value; null blanks a field (the cluster "
        "default applies).",
        request=QuotaLimitsSerializer,
        responses=_QUOTA_CHANGED,
    )
    def patch(self, request: Request, username: str) -> Response:
        return _set_quota(request, self._holder(request, username))
