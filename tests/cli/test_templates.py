"""`trainyard templates list | save | submit | delete` against a real portal (Django's live
server): a spec file or a job saved under a name, then submitted with `--set` overrides."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from portal.accounts.services import api_token_create
from portal.jobs.models import Job, JobTemplate
from tests.jobs.helpers import submit
from trainyard_cli.main import app

pytestmark = pytest.mark.django_db(transaction=True)


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), prog_name="trainyard")


@pytest.fixture
def logged_in(live_server: Any, owner: Any, tmp_path: Path, monkeypatch: Any) -> Any:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("TRAINYARD_URL", live_server.url)
    monkeypatch.setenv("TRAINYARD_TOKEN", api_token_create(user=owner, name="cli").plaintext)
    return owner


def test_save_a_spec_file_then_submit_it_with_overrides(
    logged_in: Any, iris: Any, mlp: Any, cpu_node: Any, tmp_path: Path
) -> None:
    spec = tmp_path / "small.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "dataset": "iris",
                "model": "mlp",
                "training": {"epochs": 2},
                "resources": {"procs_per_node": 1},
            }
        )
    )
    saved = cli("templates", "save", "small", str(spec), "--json")
    assert saved.exit_code == 0, saved.output
    template = json.loads(saved.stdout)
    assert template["spec"]["dataset"] == iris.pk and template["spec"]["model"] == mlp.pk

    listed = cli("templates", "list")
    assert "small" in listed.stdout

    submitted = cli(
        "templates",
        "submit",
        "small",
        "--set",
        "training.epochs=5",
        "--set",
        "hyperparameters.hidden_sizes=[4, 4]",
        "--json",
    )
    assert submitted.exit_code == 0, submitted.output
    job = Job.objects.get(pk=json.loads(submitted.stdout)["id"])
    assert job.spec["training"]["epochs"] == 5
    assert job.spec["hyperparameters"]["hidden_sizes"] == [4, 4]

    duplicate = cli("templates", "save", "small", str(spec))
    assert duplicate.exit_code == 3 and "small" in duplicate.output

    deleted = cli("templates", "delete", "small")
    assert deleted.exit_code == 0, deleted.output
    assert not JobTemplate.objects.exists()


def test_save_from_a_job_and_refuse_a_bad_override(
    logged_in: Any, iris: Any, mlp: Any, cpu_node: Any
) -> None:
    job = submit(logged_in, iris, mlp, resources={"procs_per_node": 1})
    saved = cli("templates", "save", "again", "--from-job", str(job.pk))
    assert saved.exit_code == 0, saved.output
    assert JobTemplate.objects.get(name="again").spec == job.spec

    bad = cli("templates", "submit", "again", "--set", "training.epochs=0")
    assert bad.exit_code == 3 and "training.epochs" in bad.output
    usage = cli("templates", "submit", "again", "--set", "nonsense")
    assert usage.exit_code == 2
    missing = cli("templates", "submit", "nope")
    assert missing.exit_code == 2 and "no template named 'nope'" in missing.output
