"""`trainyard searches create|list|show|cancel` against a real portal (the live server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from portal.experiments.models import Search
from tests.cli.test_commands import cli, config_home, logged_in, portal  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_search_is_created_from_a_file_listed_shown_and_cancelled(
    portal: str,  # noqa: F811
    owner: Any,
    iris: Any,
    mlp: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logged_in(monkeypatch, portal, owner)
    spec = tmp_path / "search.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "cli sweep",
                "job": {"dataset": "iris", "model": mlp.slug, "training": {"epochs": 2}},
                "space": [
                    {
                        "name": "training.learning_rate",
                        "kind": "log_uniform",
                        "low": 0.001,
                        "high": 0.1,
                    }
                ],
                "max_trials": 3,
                "parallelism": 1,
            }
        )
    )
    created = cli("searches", "create", str(spec), "--json")
    assert created.exit_code == 0, created.output
    search_id = json.loads(created.stdout)["id"]
    assert Search.objects.get(pk=search_id).dataset_id == iris.pk

    listed = cli("searches", "list")
    assert listed.exit_code == 0 and "cli sweep" in listed.stdout
    shown = cli("searches", "show", str(search_id))
    assert shown.exit_code == 0 and "best: none yet" in shown.stdout
    cancelled = cli("searches", "cancel", str(search_id))
    assert cancelled.exit_code == 0 and f"search {search_id}: cancelled" in cancelled.stdout
    assert Search.objects.get(pk=search_id).state == Search.State.CANCELLED

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"job": {"dataset": iris.pk, "model": mlp.pk}, "space": []}))
    refused = cli("searches", "create", str(bad))
    assert refused.exit_code == 3 and "space" in refused.stderr
