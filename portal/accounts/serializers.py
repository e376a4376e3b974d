"""How teams and quotas look in the REST API (`/api/v1/teams/`, `/api/v1/users/<name>/quota/`)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from portal.accounts.limits import PRIORITY_CEILING, PRIORITY_FLOOR, QUOTA_FIELDS, Limits
from portal.accounts.models import Quota, Team


class QuotaLimitsSerializer(serializers.Serializer[dict[str, Any]]):
    """The limits of a quota; null is blank (in `limits`: the default applies; in
    `effective`: unlimited, or for priorities the full range)."""

    max_gpus = serializers.IntegerField(min_value=0, allow_null=True, required=False)
    max_cpu_slots = serializers.IntegerField(min_value=0, allow_null=True, required=False)
    max_running_jobs = serializers.IntegerField(min_value=0, allow_null=True, required=False)
    max_queued_jobs = serializers.IntegerField(min_value=0, allow_null=True, required=False)
    max_gpu_hours = serializers.FloatField(min_value=0, allow_null=True, required=False)
    max_cpu_slot_hours = serializers.FloatField(min_value=0, allow_null=True, required=False)
    min_priority = serializers.IntegerField(
        min_value=PRIORITY_FLOOR, max_value=PRIORITY_CEILING, allow_null=True, required=False
    )
    max_priority = serializers.IntegerField(
        min_value=PRIORITY_FLOOR, max_value=PRIORITY_CEILING, allow_null=True, required=False
    )


class QuotaSerializer(serializers.Serializer[Any]):
    limits = QuotaLimitsSerializer(help_text="What an admin set (null: the cluster default).")
    effective = QuotaLimitsSerializer(help_text="What applies, the defaults filled in.")
    updated_at = serializers.DateTimeField(allow_null=True)


def quota_body(quota: Quota | None) -> dict[str, Any]:
    return {
        "limits": {name: getattr(quota, name) if quota else None for name in QUOTA_FIELDS},
        "effective": Limits.of(quota).as_dict(),
        "updated_at": quota.updated_at if quota else None,
    }


class TeamSerializer(serializers.ModelSerializer[Team]):
    members = serializers.SerializerMethodField(help_text="Usernames, alphabetically.")
    quota = serializers.SerializerMethodField()

    class Meta:
        model = Team
        fields = ["id", "name", "members", "quota", "created_at"]
        read_only_fields = fields

    def get_members(self, team: Team) -> list[str]:
        # `.all()` keeps the prefetch of `teams_visible_to` in play.
        return [user.username for user in team.members.all()]

    @staticmethod
    def _quota(team: Team) -> Quota | None:
        try:
            return team.quota
        except Quota.DoesNotExist:
            return None

    @extend_schema_field(QuotaSerializer)
    def get_quota(self, team: Team) -> dict[str, Any]:
        return quota_body(self._quota(team))


class TeamNameSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField(max_length=100)


class MemberSerializer(serializers.Serializer[dict[str, Any]]):
    username = serializers.CharField(max_length=150)
