from __future__ import annotations

from django.urls import path

from portal.accounts import api

app_name = "accounts-api"
urlpatterns = [
    path("teams/", api.TeamListApi.as_view(), name="teams"),
    path("teams/<int:team_id>/", api.TeamDetailApi.as_view(), name="team"),
    path("teams/<int:team_id>/members/", api.TeamMemberListApi.as_view(), name="members"),
    path(
        "teams/<int:team_id>/members/<str:username>/",
        api.TeamMemberApi.as_view(),
        name="member",
    ),
    path("teams/<int:team_id>/quota/", api.TeamQuotaApi.as_view(), name="team-quota"),
    path("users/<str:username>/quota/", api.UserQuotaApi.as_view(), name="user-quota"),
]
