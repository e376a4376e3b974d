from __future__ import annotations

from django.urls import path

from portal.accounts import team_views, views

app_name = "accounts"
urlpatterns = [
    path("tokens/", views.token_list, name="tokens"),
    path("tokens/<int:token_id>/revoke/", views.token_revoke, name="revoke"),
    path("teams/", team_views.team_list, name="teams"),
    path("teams/<int:team_id>/", team_views.team_detail, name="team"),
    path("teams/<int:team_id>/rename/", team_views.team_rename, name="team-rename"),
    path("teams/<int:team_id>/delete/", team_views.team_delete, name="team-delete"),
    path("teams/<int:team_id>/members/", team_views.team_member_add, name="member-add"),
    path(
        "teams/<int:team_id>/members/<str:username>/remove/",
        team_views.team_member_remove,
        name="member-remove",
    ),
    path("teams/<int:team_id>/quota/", team_views.team_quota, name="team-quota"),
    path("users/<str:username>/quota/", team_views.user_quota, name="user-quota"),
]
