"""`trainyard datasets upload | list | show | delete` against a real portal (Django's live
server): the file is streamed as a multipart form, `--wait` follows validation run by a real
Celery worker on the control queue, and `--json` output parses for every command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from typer.testing import CliRunner, Result

from portal.accounts.services import api_token_create
from portal.catalog.models import Dataset
from portal.celery import app as celery_app
from portal.jobs.models import Job
from tests.factories import make_job, small_csv
from trainyard_cli.main import app

pytestmark = pytest.mark.django_db(transaction=True)


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), prog_name="trainyard")


@pytest.fixture
def logged_in(
    live_server: Any, owner: Any, storage_root: Path, tmp_path: Path, monkeypatch: Any
) -> Any:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("TRAINYARD_URL", live_server.url)
    monkeypatch.setenv("TRAINYARD_TOKEN", api_token_create(user=owner, name="cli").plaintext)
    return owner


@pytest.fixture
def control_worker(logged_in: Any) -> Iterator[None]:
    """A real Celery worker on the control queue, in this process (it validates uploads)."""
    with start_worker(
        celery_app, pool="solo", perform_ping_check=False, queues=["control"], loglevel="ERROR"
    ):
        yield


@pytest.fixture
def plants_csv(tmp_path: Path) -> Path:
    path = tmp_path / "plants.csv"
    path.write_bytes(small_csv(40))
    return path


def test_upload_streams_the_file_and_prints_the_new_version(
    logged_in: Any, plants_csv: Path
) -> None:
    result = cli("datasets", "upload", str(plants_csv), "--target", "label", "--json")

    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert (body["name"], body["version"], body["state"]) == ("plants", 1, "uploaded")
    dataset = Dataset.objects.get(pk=body["id"])
    assert dataset.size_bytes == plants_csv.stat().st_size
    assert dataset.owner == logged_in

    again = cli("datasets", "upload", str(plants_csv), "--target", "label", "--name", "plants")
    assert again.exit_code == 0, again.output
    assert "Uploaded plants v2" in again.stdout


def test_upload_wait_ends_ready_and_show_prints_the_schema(
    logged_in: Any, control_worker: None, plants_csv: Path
) -> None:
    result = cli(
        "datasets", "upload", str(plants_csv), "--target", "label", "--wait", "--timeout", "60"
    )

    assert result.exit_code == 0, result.output
    assert "ready" in result.stdout
    dataset = Dataset.objects.get(name="plants")
    assert dataset.state == Dataset.State.READY

    shown = cli("datasets", "show", str(dataset.pk))
    assert shown.exit_code == 0, shown.output
    assert "height" in shown.stdout and "target" in shown.stdout
    as_json = json.loads(cli("datasets", "show", str(dataset.pk), "--json").stdout)
    assert [c["name"] for c in as_json["schema"]] == ["height", "width", "label"]


def test_upload_wait_exits_1_with_the_message_when_invalid(
    logged_in: Any, control_worker: None, tmp_path: Path
) -> None:
    lonely = tmp_path / "lonely.csv"
    lonely.write_bytes(b"height,width,label\n1,2,a\n3,4,a\n5,6,a\n")

    result = cli("datasets", "upload", str(lonely), "--target", "label", "--wait", "--json")

    assert result.exit_code == 1, result.output
    body = json.loads(result.stdout)
    assert body["state"] == "invalid"
    error = json.loads(result.stderr)
    assert "lonely.csv" in error["error"]


def test_list_filters_and_parses_as_json(logged_in: Any, plants_csv: Path) -> None:
    assert cli("datasets", "upload", str(plants_csv), "--target", "label").exit_code == 0

    listed = cli("datasets", "list", "--name", "plants", "--json")
    assert listed.exit_code == 0, listed.output
    assert [(d["name"], d["state"]) for d in json.loads(listed.stdout)] == [("plants", "uploaded")]
    table = cli("datasets", "list", "--state", "uploaded")
    assert "plants" in table.stdout and "Iris" not in table.stdout


def test_delete_removes_it_and_is_refused_while_a_job_uses_it(
    logged_in: Any, plants_csv: Path
) -> None:
    first = json.loads(
        cli("datasets", "upload", str(plants_csv), "--target", "label", "--json").stdout
    )
    second = json.loads(
        cli("datasets", "upload", str(plants_csv), "--target", "label", "--json").stdout
    )
    job = make_job(logged_in, name="on-plants")
    Job.objects.filter(pk=job.pk).update(dataset_id=first["id"])

    refused = cli("datasets", "delete", str(first["id"]))
    assert refused.exit_code == 3
    assert "on-plants" in refused.stderr

    deleted = cli("datasets", "delete", str(second["id"]), "--json")
    assert deleted.exit_code == 0, deleted.output
    assert json.loads(deleted.stdout) == {"deleted": second["id"]}
    assert not Dataset.objects.filter(pk=second["id"]).exists()

    missing = cli("datasets", "show", str(second["id"]), "--json")
    assert missing.exit_code == 3 and json.loads(missing.stderr)["status"] == 404


def test_upload_of_a_missing_file_is_a_usage_error(logged_in: Any, tmp_path: Path) -> None:
    result = cli("datasets", "upload", str(tmp_path / "nope.csv"), "--target", "label")
    assert result.exit_code == 2
    assert "not a file" in result.stderr
