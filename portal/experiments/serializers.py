"""The searches API's answers (its requests are `portal.experiments.schemas.SearchRequest`)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from portal.experiments.models import Search, Trial
from portal.experiments.selectors import trial_duration_s
from portal.lib.realtime import json_finite


class TrialSerializer(serializers.ModelSerializer[Trial]):
    job_state = serializers.SerializerMethodField()
    job_state_reason = serializers.SerializerMethodField()
    duration_s = serializers.SerializerMethodField()
    intermediate = serializers.SerializerMethodField()

    class Meta:
        model = Trial
        fields = [
            "id",
            "number",
            "job",
            "job_state",
            "job_state_reason",
            "params",
            "state",
            "state_reason",
            "best_value",
            "final_value",
            "pruned_step",
            "pruned_comparison",
            "intermediate",
            "duration_s",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_job_state(self, trial: Trial) -> str | None:
        return trial.job.state if trial.job else None

    def get_job_state_reason(self, trial: Trial) -> str:
        """Why its job waits (the queue, a quota), or how it ended."""
        return trial.job.state_reason if trial.job else ""

    def get_duration_s(self, trial: Trial) -> float | None:
        return trial_duration_s(trial)

    def get_intermediate(self, trial: Trial) -> dict[str, float | None]:
        """The optimised metric per epoch."""
        values: dict[str, float | None] = json_finite(trial.intermediate)
        return values


class BestTrialSerializer(serializers.Serializer[Any]):
    number = serializers.IntegerField()
    job = serializers.IntegerField(allow_null=True)
    best_value = serializers.FloatField(allow_null=True)


class SearchSerializer(serializers.ModelSerializer[Search]):
    owner = serializers.CharField(source="owner.username", read_only=True)
    team = serializers.CharField(source="team.name", read_only=True, allow_null=True)
    trial_count = serializers.SerializerMethodField()
    best_trial = serializers.SerializerMethodField()

    class Meta:
        model = Search
        fields = [
            "id",
            "name",
            "owner",
            "team",
            "dataset",
            "model",
            "base_request",
            "space",
            "method",
            "metric",
            "direction",
            "max_trials",
            "parallelism",
            "seed",
            "pruner",
            "pruner_settings",
            "state",
            "state_reason",
            "trial_count",
            "best_trial",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_trial_count(self, search: Search) -> int:
        count = getattr(search, "trial_count", None)
        return int(count) if count is not None else search.trials.count()

    @extend_schema_field(BestTrialSerializer(allow_null=True))
    def get_best_trial(self, search: Search) -> dict[str, Any] | None:
        """The best completed trial so far: its number, job and best value."""
        best = search.best_trial
        if best is None:
            return None
        return {"number": best.number, "job": best.job_id, "best_value": best.best_value}


class SearchDetailSerializer(SearchSerializer):
    trials = serializers.SerializerMethodField()

    class Meta(SearchSerializer.Meta):
        fields = [*SearchSerializer.Meta.fields, "trials"]
        read_only_fields = fields

    @extend_schema_field(TrialSerializer(many=True))
    def get_trials(self, search: Search) -> list[dict[str, Any]]:
        trials = self.context.get("trials")
        if trials is None:
            trials = list(search.trials.select_related("job").order_by("number"))
        data: list[dict[str, Any]] = TrialSerializer(trials, many=True).data  # type: ignore[assignment]
        return data


class RegisterBestSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        default="",
        help_text="The model's name in the registry (blank: the search's name).",
    )
