"""The CLI's config handling, exit codes and output formats, against a real portal (Django's
live server on the test database): the commands run in-process through typer's runner and
talk HTTP to it exactly as they would to a deployed portal."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from typer.testing import CliRunner, Result

from portal.accounts.services import api_token_create
from portal.catalog.models import Dataset, ModelArchitecture
from portal.cluster.models import Node
from portal.devservers import free_port
from portal.jobs.models import Attempt, Job, LogLine
from tests.factories import make_attempt, make_job, make_user
from trainyard_cli.main import app

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("TRAINYARD_URL", raising=False)
    monkeypatch.delenv("TRAINYARD_TOKEN", raising=False)
    return tmp_path / "xdg" / "trainyard" / "config.toml"


@pytest.fixture
def portal(live_server: Any, config_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url: str = live_server.url
    return url


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), prog_name="trainyard")


def token_for(user: Any) -> str:
    token: str = api_token_create(user=user, name="cli-test").plaintext
    return token


def logged_in(monkeypatch: pytest.MonkeyPatch, url: str, user: Any) -> None:
    monkeypatch.setenv("TRAINYARD_URL", url)
    monkeypatch.setenv("TRAINYARD_TOKEN", token_for(user))


def test_login_checks_the_token_and_saves_it_0600_for_later_commands(
    portal: str, config_home: Path, owner: Any, iris: Dataset
) -> None:
    token = token_for(owner)
    result = cli("login", "--url", portal + "/", "--token", token)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(config_home.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_home.parent.stat().st_mode) == 0o700
    assert f'url = "{portal}"' in config_home.read_text()
    assert token in config_home.read_text()

    listed = cli("datasets", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert "iris" in [d["slug"] for d in json.loads(listed.stdout)]


def test_login_prompts_for_what_is_missing(portal: str, config_home: Path, owner: Any) -> None:
    result = CliRunner().invoke(app, ["login"], input=f"{portal}\n{token_for(owner)}\n")
    assert result.exit_code == 0, result.output
    assert "Portal URL" in result.output and config_home.exists()


def test_a_refused_token_exits_3_with_the_apis_message_and_saves_nothing(
    portal: str, config_home: Path
) -> None:
    result = cli("login", "--url", portal, "--token", "ty_nope_nope")
    assert result.exit_code == 3
    assert "trainyard login" in result.stderr
    assert not config_home.exists()

    as_json = cli("login", "--url", portal, "--token", "ty_nope_nope", "--json")
    assert as_json.exit_code == 3 and as_json.stdout == ""
    assert json.loads(as_json.stderr)["status"] == 401


def test_the_environment_overrides_the_config_file(
    portal: str, config_home: Path, owner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("login", "--url", portal, "--token", token_for(owner)).exit_code == 0
    monkeypatch.setenv("TRAINYARD_TOKEN", "ty_revoked_or_wrong")
    assert cli("jobs").exit_code == 3
    monkeypatch.delenv("TRAINYARD_TOKEN")
    monkeypatch.setenv("TRAINYARD_URL", f"http://127.0.0.1:{free_port()}")
    unreachable = cli("jobs")
    assert unreachable.exit_code == 4
    assert "cannot reach the portal" in unreachable.stderr


def test_without_a_portal_or_token_it_is_a_usage_error(config_home: Path) -> None:
    result = cli("jobs")
    assert result.exit_code == 2
    assert "trainyard login" in result.stderr
    config_home.parent.mkdir(parents=True)
    config_home.write_text("url = [broken")
    assert cli("jobs").exit_code == 2


def test_every_listing_prints_a_table_and_json(
    portal: str,
    owner: Any,
    admin_user: Any,
    mlp: ModelArchitecture,
    cpu_node: Node,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logged_in(monkeypatch, portal, owner)
    for command, expect in [
        (("datasets", "list"), "Iris"),
        (("models",), "mlp"),
        (("pools",), cpu_node.pool or "-"),
        (("jobs",), "No jobs."),
    ]:
        table = cli(*command)
        assert table.exit_code == 0, table.output
        assert expect in table.stdout
        as_json = cli(*command, "--json")
        assert as_json.exit_code == 0, as_json.output
        assert isinstance(json.loads(as_json.stdout), list)

    refused = cli("nodes")
    assert refused.exit_code == 3 and "permission" in refused.stderr

    logged_in(monkeypatch, portal, admin_user)
    nodes = cli("nodes", "--json")
    assert nodes.exit_code == 0, nodes.output
    assert [n["name"] for n in json.loads(nodes.stdout)] == [cpu_node.name]
    assert cpu_node.name in cli("nodes").stdout


def test_submit_from_a_yaml_spec_then_status_jobs_and_cancel(
    portal: str,
    owner: Any,
    mlp: ModelArchitecture,
    cpu_node: Node,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logged_in(monkeypatch, portal, owner)
    spec = tmp_path / "job.yaml"
    spec.write_text(
        "name: from-yaml\ndataset: iris\nmodel: MLP\n"
        "training: {epochs: 30, learning_rate: 0.05}\nresources: {procs_per_node: 2}\n"
    )
    submitted = cli("submit", str(spec), "--epochs", "3", "--json")
    assert submitted.exit_code == 0, submitted.output
    job = json.loads(submitted.stdout)
    assert job["state"] == "queued" and job["name"] == "from-yaml"
    # Options override the file; the rest of the file is kept.
    assert job["spec"]["training"] == {**job["spec"]["training"], "epochs": 3}
    assert job["spec"]["training"]["learning_rate"] == 0.05
    assert job["spec"]["dataset"] == Dataset.objects.get(slug="iris").pk
    assert job["spec"]["model"] == mlp.pk

    status = cli("status", str(job["id"]))
    assert status.exit_code == 0 and "queued" in status.stdout and "from-yaml" in status.stdout
    assert json.loads(cli("status", str(job["id"]), "--json").stdout)["id"] == job["id"]

    other = make_job(owner, name="another")
    listed = json.loads(cli("jobs", "--state", "queued", "--json").stdout)
    assert {j["id"] for j in listed} == {job["id"], other.pk}
    named = json.loads(cli("jobs", "--name", "YAML", "--json").stdout)
    assert [j["id"] for j in named] == [job["id"]]
    oldest_first = json.loads(cli("jobs", "--ordering", "created_at", "--json").stdout)
    assert [j["id"] for j in oldest_first] == [job["id"], other.pk]

    cancelled = cli("cancel", str(job["id"]))
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.stdout
    assert Job.objects.get(pk=job["id"]).state == Job.State.CANCELLED
    # A finished job follows to its end at once, with the exit code of its state.
    followed = cli("follow", str(job["id"]), "--json")
    assert followed.exit_code == 1
    events = [json.loads(line) for line in followed.stdout.splitlines()]
    assert events[-1] == {**events[-1], "type": "final", "state": "cancelled", "exit_code": 1}


def test_refusals_exit_3_with_the_apis_words(
    portal: str,
    owner: Any,
    outsider: Any,
    mlp: ModelArchitecture,
    cpu_node: Node,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logged_in(monkeypatch, portal, owner)
    bad = cli("submit", "--dataset", "iris", "--model", "mlp", "--procs-per-node", "3")
    assert bad.exit_code == 3
    assert "resources.procs_per_node" in bad.stderr

    unknown = cli("submit", "--dataset", "no-such", "--model", "mlp")
    assert unknown.exit_code == 2 and "iris" in unknown.stderr

    spec = tmp_path / "broken.yaml"
    spec.write_text("training: [unclosed")
    assert cli("submit", str(spec)).exit_code == 2

    job = make_job(outsider)
    hidden = cli("status", str(job.pk), "--json")
    assert hidden.exit_code == 3
    assert json.loads(hidden.stderr) == {"error": "No such job.", "status": 404}
    assert cli("logs", str(job.pk)).exit_code == 3
    assert cli("cancel", str(job.pk)).exit_code == 3


def test_the_job_list_api_filters_and_orders(portal: str, owner: Any, mlp: Any) -> None:
    import httpx

    teammate = make_user("another-owner")
    first = make_job(owner, name="alpha", priority=5)
    second = make_job(teammate, name="beta", priority=-5)
    admin = make_user("boss", is_staff=True)
    headers = {"Authorization": f"Bearer {token_for(admin)}"}

    def ids(**params: Any) -> list[int]:
        response = httpx.get(f"{portal}/api/v1/jobs/", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [job["id"] for job in response.json()["results"]]

    assert ids() == [second.pk, first.pk]
    assert ids(ordering="priority") == [second.pk, first.pk]
    assert ids(ordering="-priority") == [first.pk, second.pk]
    assert ids(owner="owner") == [first.pk]
    assert ids(name="ALP") == [first.pk]
    assert ids(dataset=first.dataset_id, model=first.model_id) == [second.pk, first.pk]
    wrong = httpx.get(f"{portal}/api/v1/jobs/", params={"ordering": "secret"}, headers=headers)
    assert wrong.status_code == 400 and "ordering" in wrong.json()["errors"]


def test_tab_completion_completes_commands_and_options() -> None:
    env = {**os.environ, "_TRAINYARD_COMPLETE": "complete_bash"}

    def complete(words: str) -> str:
        cword = str(len(words.split()) - 1)
        done = subprocess.run(
            [sys.executable, "-m", "trainyard_cli"],
            env={**env, "COMP_WORDS": words, "COMP_CWORD": cword},
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.stdout

    assert complete("trainyard jo").split() == ["jobs"]
    assert "--rank" in complete("trainyard logs 1 --r").split()

    script = subprocess.run(
        [sys.executable, "-m", "trainyard_cli", "--show-completion"],
        env={**os.environ, "SHELL": "/bin/bash"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert script.returncode == 0 and "_TRAINYARD_COMPLETE" in script.stdout


def add_lines(job: Job, attempt: Any, count: int, *, start: int = 0) -> None:
    LogLine.objects.bulk_create(
        LogLine(
            job=job,
            attempt=attempt,
            node_rank=seq % 2,
            # seq counts per node share (attempt, node_rank), as launchers number lines.
            seq=seq // 2,
            stream=LogLine.Stream.STDOUT,
            line=f"[rank {seq % 2}] line {seq}",
            reported_at=timezone.now(),
        )
        for seq in range(start, start + count)
    )


def test_logs_pages_through_every_line_and_filters_by_rank(
    portal: str, owner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    logged_in(monkeypatch, portal, owner)
    job = make_job(owner, state=Job.State.SUCCEEDED)
    add_lines(job, make_attempt(job, state=Attempt.State.SUCCEEDED), 1205)  # two API pages

    every = cli("logs", str(job.pk))
    assert every.exit_code == 0, every.output
    # Pages go by node share, then seq (docs/telemetry.md).
    assert every.stdout.splitlines()[:2] == [
        "[node 0 stdout] [rank 0] line 0",
        "[node 0 stdout] [rank 0] line 2",
    ]
    assert sorted(every.stdout.splitlines()) == sorted(
        f"[node {n % 2} stdout] [rank {n % 2}] line {n}" for n in range(1205)
    )

    odd = cli("logs", str(job.pk), "--rank", "1", "--json")
    lines = [json.loads(line) for line in odd.stdout.splitlines()]
    assert [line["line"] for line in lines] == [f"[rank 1] line {n}" for n in range(1, 1205, 2)]


def test_logs_follow_prints_new_lines_until_the_job_ends(
    portal: str, owner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    logged_in(monkeypatch, portal, owner)
    job = make_job(owner, state=Job.State.RUNNING)
    attempt = make_attempt(job)
    add_lines(job, attempt, 2)

    def later() -> None:
        # As ingest would: more lines, then the job ends.
        try:
            add_lines(job, attempt, 2, start=2)
            Job.objects.filter(pk=job.pk).update(state=Job.State.SUCCEEDED)
        finally:
            connection.close()

    timer = threading.Timer(2.5, later)
    timer.start()
    try:
        followed = cli("logs", str(job.pk), "-f")
    finally:
        timer.join()
    assert followed.exit_code == 0, followed.output
    assert [line.rsplit(" ", 1)[-1] for line in followed.stdout.splitlines()] == list("0123")


def test_why_prints_the_queue_position_the_node_counts_and_the_estimate(
    portal: str, owner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from portal.jobs.scheduling import schedule_pass
    from tests.factories import make_node

    make_node(pool="why-pool", cpu_slots=2, is_draining=True)
    ahead = make_job(owner, pool="why-pool", procs_per_node=2)
    job = make_job(owner, pool="why-pool", procs_per_node=2)
    schedule_pass()
    logged_in(monkeypatch, portal, owner)

    shown = cli("why", str(job.pk))
    assert shown.exit_code == 0, shown.output
    assert "2 of 2 in queue why-pool" in shown.output
    assert f"#{ahead.pk} owner, 1 x 2 CPU slots" in shown.output
    assert "1 nodes  not schedulable" in shown.output
    as_json = json.loads(cli("why", str(job.pk), "--json").output)
    assert as_json["why_pending"]["position"] == 2
    assert as_json["estimated_start"] is None  # a draining node: no start is in sight
