"""The OpenAPI schema generates cleanly, and describes the job request body."""

from __future__ import annotations

from pathlib import Path

import yaml
from django.contrib.auth.models import User
from django.core.management import call_command

from tests.api.conftest import TokenClient


def test_the_schema_validates_without_warnings(tmp_path: Path) -> None:
    out = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))

    schema = yaml.safe_load(out.read_text())
    assert "/api/v1/jobs/{job_id}/metrics/" in schema["paths"]
    body = schema["paths"]["/api/v1/jobs/"]["post"]["requestBody"]["content"]
    ref = body["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    training = schema["components"]["schemas"][ref]["properties"]["training"]
    assert training["$ref"].endswith("/TrainingParams")
    epochs = schema["components"]["schemas"]["TrainingParams"]["properties"]["epochs"]
    assert epochs["minimum"] == 1
    assert schema["components"]["securitySchemes"]["apiToken"]["scheme"] == "bearer"


def test_the_schema_is_served_to_a_token_holder(client_for: TokenClient, owner: User) -> None:
    response = client_for(owner).get("/api/v1/schema/?format=json")

    assert response.status_code == 200
    assert response.json()["info"]["title"] == "Trainyard API"


def test_the_schema_types_each_attempts_phases_and_the_jobs_flags(tmp_path: Path) -> None:
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schemas = yaml.safe_load(out.read_text())["components"]["schemas"]

    attempts = schemas["Job"]["properties"]["attempts"]
    assert attempts["items"]["$ref"].endswith("/Attempt")
    phases = schemas["Attempt"]["properties"]["phases"]
    assert phases["items"]["$ref"].endswith("/AttemptPhase")
    phase = schemas["AttemptPhase"]["properties"]["phase"]
    ref = phase.get("$ref") or phase["allOf"][0]["$ref"]
    assert schemas[ref.rsplit("/", 1)[-1]]["enum"][:3] == ["queued", "placed", "received"]
    assert schemas["AttemptPhase"]["properties"]["node_rank"]["type"] == ["integer", "null"]
    for flag in ("stalled_at", "idle_at"):
        assert schemas["Job"]["properties"][flag]["format"] == "date-time"
