"""Submit the Iris job through the REST API and watch real torchrun train it on a real node."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from typing import Any

import httpx
import psutil
import pytest
import websockets

from portal.accounts.services import api_token_create
from portal.catalog.models import Dataset, ModelArchitecture
from portal.catalog.services import catalog_ensure_builtins
from portal.cluster.models import Node
from portal.jobs.models import Attempt, Checkpoint, Job, MetricPoint
from portal.jobs.scheduling import checkpoint_dir
from tests.e2e.conftest import Stack, wait_for
from tests.factories import make_user

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


class SocketRecorder:
    """Listens on a job's WebSocket in a thread and records every message with its arrival."""

    def __init__(self, url: str, token: str, origin: str) -> None:
        self.url, self.token, self.origin = url, token, origin
        self.messages: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.connected = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True)

    async def _listen(self) -> None:
        async with websockets.connect(
            self.url,
            additional_headers={"Authorization": f"Bearer {self.token}"},
            origin=websockets.Origin(self.origin),
        ) as socket:
            self.connected.set()
            while not self.stop.is_set():
                try:
                    raw = await asyncio.wait_for(socket.recv(), timeout=0.5)
                except TimeoutError:
                    continue
                self.messages.append(json.loads(raw))

    def __enter__(self) -> SocketRecorder:
        self.thread.start()
        assert self.connected.wait(15), "the WebSocket did not connect"
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def _ready_cluster(stack: Stack) -> tuple[str, Dataset, ModelArchitecture]:
    catalog_ensure_builtins()
    user = make_user("researcher")
    token = api_token_create(user=user, name="e2e").plaintext
    # The node announces itself through its heartbeats; the flush between tests removed it.
    wait_for(
        lambda: Node.objects.filter(name=stack.node_name, state=Node.State.ONLINE).exists(),
        timeout=30,
        what=f"node {stack.node_name} to register",
    )
    return (
        token,
        Dataset.objects.get(slug="iris"),
        ModelArchitecture.objects.get(slug="mlp"),
    )


def _submit(stack: Stack, token: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{stack.base_url}/api/v1/jobs/",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def _iris_job(dataset: Dataset, model: ModelArchitecture, *, epochs: int) -> dict[str, Any]:
    return {
        "name": "iris e2e",
        "dataset": dataset.pk,
        "model": model.pk,
        "hyperparameters": {"hidden_sizes": [16, 16], "activation": "relu", "dropout": 0.0},
        "training": {
            "epochs": epochs,
            "batch_size": 16,
            "learning_rate": 0.01,
            "optimizer": "adam",
            "loss": "cross_entropy",
            "seed": 7,
            "checkpoint_every": 5,
        },
        "resources": {"nodes": 1, "procs_per_node": 2},
    }


def _job_state(job_id: int) -> str:
    return str(Job.objects.values_list("state", flat=True).get(pk=job_id))


def test_iris_trains_with_torchrun_and_streams_live(stack: Stack) -> None:
    token, dataset, model = _ready_cluster(stack)
    job = _submit(stack, token, _iris_job(dataset, model, epochs=40))

    with SocketRecorder(
        f"{stack.ws_url}/ws/jobs/{job['id']}/", token, origin=stack.base_url
    ) as socket:
        try:
            wait_for(
                lambda: Job.objects.get(pk=job["id"]).is_terminal,
                timeout=240,
                what="the job to finish",
            )
            # The final events of the batch that finished the job may still be in flight.
            wait_for(
                lambda: any(m.get("state") == "succeeded" for m in socket.messages),
                timeout=10,
                what="the succeeded state over the WebSocket",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{stack.logs()}") from exc

    finished = Job.objects.get(pk=job["id"])
    assert finished.state == Job.State.SUCCEEDED, f"{finished.state_reason}\n{stack.logs()}"

    attempt = Attempt.objects.get(job=finished)
    points = list(MetricPoint.objects.filter(attempt=attempt).order_by("seq"))
    assert [p.seq for p in points] == list(range(len(points))), "metric seqs have a gap"
    steps = [p.step for p in points if p.split == MetricPoint.Split.TRAIN]
    assert steps == sorted(steps) and len(steps) >= 40
    val = [p for p in points if p.split == MetricPoint.Split.VAL]
    assert [p.epoch for p in val] == list(range(1, 41))
    assert val[-1].accuracy is not None and val[-1].accuracy >= 0.9

    # Every 5 epochs a checkpoint, each reported before the exit and stored; the newest 2 and
    # the best are kept, the best is exported, and the kept ones download whole.
    checkpoints = list(Checkpoint.objects.filter(attempt=attempt).order_by("epoch"))
    assert [c.epoch for c in checkpoints] == list(range(5, 41, 5))
    assert checkpoints[0].is_best
    assert finished.parameter_count == (4 * 16 + 16) + (16 * 16 + 16) + (16 * 3 + 3)
    listed = httpx.get(
        f"{stack.base_url}/api/v1/jobs/{job['id']}/checkpoints/",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).json()
    kept = [c for c in listed if c["available"]]
    assert {c["epoch"] for c in kept} >= {35, 40}
    newest = httpx.get(
        f"{stack.base_url}{kept[-1]['download']}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert newest.status_code == 200
    assert hashlib.sha256(newest.content).hexdigest() == checkpoints[-1].sha256
    export = checkpoint_dir(finished) / f"attempt-{attempt.pk}" / "export"
    assert (export / "model.safetensors").is_file() and (export / "model.json").is_file()

    # Live, not only backfill: metric events arrived while the job was still running.
    live_points = []
    seen_running = False
    for message in socket.messages:
        if message["type"] == "state":
            seen_running = seen_running or message["state"] == "running"
            if message["state"] in {"succeeded", "failed", "cancelled"}:
                break
        elif message["type"] == "metrics" and seen_running:
            live_points.extend(message["points"])
    assert live_points, "no metric events arrived over the WebSocket while the job ran"
    received = {
        (p["attempt"], p["seq"])
        for m in socket.messages
        if m["type"] == "metrics"
        for p in m["points"]
    }
    assert received >= {(attempt.pk, p.seq) for p in points[: len(points) // 2]}


def _rank_processes(attempt_id: int) -> list[psutil.Process]:
    marker = f"attempts/{attempt_id}/"
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "workers.train" in cmdline and marker in cmdline:
            found.append(proc)
    return found


def test_cancelling_a_running_job_stops_every_rank_within_10s(stack: Stack) -> None:
    token, dataset, model = _ready_cluster(stack)
    job = _submit(stack, token, _iris_job(dataset, model, epochs=5000))
    wait_for(
        lambda: MetricPoint.objects.filter(job_id=job["id"]).count() > 5,
        timeout=120,
        what="training to report metrics",
    )
    attempt = Attempt.objects.get(job_id=job["id"])
    assert len(_rank_processes(attempt.pk)) >= 2, "expected two ranks running"

    cancelled_at = time.monotonic()
    response = httpx.post(
        f"{stack.base_url}/api/v1/jobs/{job['id']}/cancel/",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    wait_for(lambda: not _rank_processes(attempt.pk), timeout=10, what="every rank to exit")
    assert time.monotonic() - cancelled_at < 10
    wait_for(
        lambda: _job_state(job["id"]) == Job.State.CANCELLED, timeout=15, what="cancelled state"
    )
