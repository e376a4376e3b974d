"""Every model of Trainyard's apps is in the Django admin: the operator's escape hatch."""

from __future__ import annotations

from django.apps import apps
from django.contrib import admin
from django.db.models import Model


def our_models() -> list[type[Model]]:
    return [
        model
        for config in apps.get_app_configs()
        if config.name.startswith("portal.")
        for model in config.get_models()
    ]


def test_every_model_of_ours_is_registered() -> None:
    models = our_models()
    unregistered = [model._meta.label for model in models if not admin.site.is_registered(model)]

    assert unregistered == []
    assert {"jobs.Job", "jobs.Attempt", "cluster.Node", "accounts.ApiToken"} <= {
        model._meta.label for model in models
    }
