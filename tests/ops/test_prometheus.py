"""`/metrics`: refused without the token, and the gauges read the database at scrape time."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families
from pytest_django.fixtures import Settings

from tests.factories import make_job, make_node

TOKEN = "scrape-secret-0123456789"

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(settings: Settings) -> str:
    settings.TRAINYARD_METRICS_TOKEN = TOKEN
    return TOKEN


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_metrics_refuses_a_scrape_without_the_token(token: str, admin_user: User) -> None:
    client = Client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    # A signed-in admin's session is not the token either.
    client.force_login(admin_user)
    assert client.get("/metrics").status_code == 401


def test_metrics_is_off_without_a_token_setting(settings: Settings) -> None:
    settings.TRAINYARD_METRICS_TOKEN = None
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 404


def test_metrics_reports_nodes_gpus_queue_and_jobs_from_the_database(
    token: str, owner: User
) -> None:
    make_node(
        "gpu-a",
        gpu_count=1,
        health={
            "cpu_percent": 12.5,
            "memory_used": 100,
            "memory_total": 400,
            "gpus": [
                {
                    "index": 0,
                    "name": "NVIDIA H200",
                    "utilization": 87.0,
                    "memory_used": 5,
                    "memory_total": 10,
                    "temperature": 50.0,
                    "power": None,
                }
            ],
        },
    )
    make_node("gone", state="offline")
    make_job(owner, gpus_per_node=2, nodes=2)
    make_job(owner, state="running")

    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    got = samples(response.content)
    assert got[("trainyard_node_up", (("node", "gpu-a"), ("pool", "default")))] == 1.0
    assert got[("trainyard_node_up", (("node", "gone"), ("pool", "default")))] == 0.0
    assert got[("trainyard_nodes", (("status", "offline"),))] == 1.0
    gpu = (("gpu", "0"), ("model", "NVIDIA H200"), ("node", "gpu-a"))
    assert got[("trainyard_gpu_utilization_percent", gpu)] == 87.0
    assert ("trainyard_gpu_power_watts", gpu) not in got  # NVML could not read it
    assert got[("trainyard_node_cpu_percent", (("node", "gpu-a"),))] == 12.5
    assert got[("trainyard_jobs", (("pool", "any"), ("state", "queued")))] == 1.0
    assert got[("trainyard_jobs", (("pool", "any"), ("state", "running")))] == 1.0
    assert got[("trainyard_queue_requested", (("resource", "gpus"),))] == 4.0
    assert ("trainyard_ingest_reachable", ()) in got
    # Its own registry per scrape: none of the process-wide default collectors.
    assert not [name for name, _ in got if name.startswith(("python_", "process_"))]
