"""The `trainyard` CLI against a whole running Trainyard: log in, list the catalog and the
cluster, submit the Iris job from a YAML spec and follow it to success over the WebSocket,
follow a diverging job to its failure, read logs by rank, and cancel a running job. The CLI
runs as its own process (`python -m trainyard_cli`), as a user's shell would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from portal.accounts.services import api_token_create
from portal.catalog.services import catalog_ensure_builtins
from portal.cluster.models import Node
from tests.e2e.conftest import Stack, wait_for
from tests.factories import make_user, small_csv

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

IRIS_SPEC = """\
name: iris from the cli
dataset: iris
model: mlp
hyperparameters: {hidden_sizes: [16, 16], activation: relu}
training:
  epochs: 6
  batch_size: 16
  learning_rate: 0.01
  optimizer: adam
  seed: 7
resources: {nodes: 1, procs_per_node: 2}
"""
# Plain SGD at the largest learning rate the API allows, through a wide, deep MLP: the loss
# overflows within the first epochs (checked on Iris for seeds 0-4), and the trainer stops on
# the non-finite loss with its reason. An `mse` loss would not do: it is taken on softmax
# outputs and stays bounded.
DIVERGING_SPEC = """\
name: diverges
dataset: iris
model: mlp
hyperparameters: {hidden_sizes: [512, 512, 512, 512]}
training: {epochs: 20, optimizer: sgd, learning_rate: 10.0}
resources: {procs_per_node: 2}
"""


class Cli:
    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.env = {**os.environ, "XDG_CONFIG_HOME": str(home), **env}
        self.env.pop("TRAINYARD_URL", None)
        self.env.pop("TRAINYARD_TOKEN", None)

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "trainyard_cli", *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def ok(done: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert done.returncode == code, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_cli_logs_in_lists_submits_follows_reads_logs_and_cancels(
    stack: Stack, tmp_path: Path
) -> None:
    catalog_ensure_builtins()
    researcher = api_token_create(user=make_user("cli-user"), name="e2e").plaintext
    admin = api_token_create(user=make_user("cli-admin", is_staff=True), name="e2e").plaintext
    wait_for(
        lambda: Node.objects.filter(name=stack.node_name, state=Node.State.ONLINE).exists(),
        timeout=30,
        what=f"node {stack.node_name} to register",
    )
    cli = Cli(tmp_path / "config", {})
    ok(cli("login", "--url", stack.base_url, "--token", researcher))

    for command, expect in [
        (("datasets", "list"), "iris"),
        (("models",), "mlp"),
        (("pools",), "default"),
    ]:
        assert expect in ok(cli(*command)).lower()
        assert isinstance(json.loads(ok(cli(*command, "--json"))), list)

    # Upload a dataset and wait for the stack's control worker to validate it.
    csv = tmp_path / "plants.csv"
    csv.write_bytes(small_csv(60))
    uploaded = json.loads(
        ok(cli("datasets", "upload", str(csv), "--target", "label", "--wait", "--json"))
    )
    assert (uploaded["name"], uploaded["state"], uploaded["num_rows"]) == ("plants", "ready", 60)
    ok(cli("nodes"), code=3)
    as_admin = {"TRAINYARD_TOKEN": admin}  # the environment overrides the saved token
    assert stack.node_name in ok(cli("nodes", env=as_admin))
    listed = json.loads(ok(cli("nodes", "--json", env=as_admin)))
    assert stack.node_name in {node["name"] for node in listed}

    # Submit and follow to success: progress of epochs and steps, then the final state.
    spec = tmp_path / "iris.yaml"
    spec.write_text(IRIS_SPEC)
    try:
        out = ok(cli("submit", str(spec), "--follow", timeout=300))
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.logs()}") from exc
    assert "epoch 6/6" in out and "ETA" in out and "step" in out and "accuracy" in out
    job_id = int(out.split()[1])
    assert "running" in out
    assert out.splitlines()[-1].startswith(f"job {job_id} succeeded")

    jobs = json.loads(ok(cli("jobs", "--json")))
    assert [(j["id"], j["state"]) for j in jobs] == [(job_id, "succeeded")]
    logs = ok(cli("logs", str(job_id)))
    assert "[rank 0]" in logs and "[rank 1]" in logs
    rank_lines = [
        json.loads(line)
        for line in ok(cli("logs", str(job_id), "--rank", "0", "--json")).splitlines()
    ]
    assert rank_lines and {line["node_rank"] for line in rank_lines} == {0}

    # A diverging job: followed as JSON Lines, it ends non-zero with the trainer's reason.
    spec.write_text(DIVERGING_SPEC)
    failed = cli("submit", str(spec), "--follow", "--json", timeout=300)
    assert failed.returncode == 1, f"{failed.stdout}\n{failed.stderr}\n{stack.logs()}"
    events = [json.loads(line) for line in failed.stdout.splitlines()]
    assert events[0]["state"] == "queued"  # the submitted job
    final = events[-1]
    assert final["type"] == "final" and final["state"] == "failed" and final["exit_code"] == 1
    assert "loss became" in final["reason"]

    # Cancel a running job; following it then ends with 1 and says so.
    spec.write_text(IRIS_SPEC.replace("epochs: 6", "epochs: 5000"))
    running: dict[str, Any] = json.loads(ok(cli("submit", str(spec), "--json")))

    def is_running() -> bool:
        job = json.loads(ok(cli("status", str(running["id"]), "--json")))
        return bool(job["state"] == "running")

    wait_for(is_running, timeout=120, interval=1, what="the long job to run")
    cancelled = json.loads(ok(cli("cancel", str(running["id"]), "--json")))
    assert cancelled["state"] in {"cancelling", "cancelled"}
    started = time.monotonic()
    followed = cli("follow", str(running["id"]), timeout=120)
    assert followed.returncode == 1, followed.stdout + followed.stderr
    assert followed.stdout.splitlines()[-1].startswith(f"job {running['id']} cancelled")
    assert time.monotonic() - started < 60
