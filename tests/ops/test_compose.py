"""compose.yaml runs real programs of this project, keeps its data, and can join GPU nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from portal.ops.processes import process_table
from tests.ops.programs import assert_runs_something_real, identity, split_shell

ROOT = Path(__file__).resolve().parents[2]
PORTAL_SERVICES = ("web", "control", "beat", "ingest", "predict")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def commands(service: dict[str, Any]) -> list[list[str]]:
    command = service["command"]
    assert isinstance(command, list), "use the exec form, so signals reach the program"
    return split_shell(command)


def test_postgres_and_redis_have_healthchecks_and_persistent_volumes(compose):
    services, volumes = compose["services"], compose["volumes"]
    checks = {"postgres": "pg_isready", "redis": "redis-cli"}
    for name, probe in checks.items():
        assert probe in compose["services"][name]["healthcheck"]["test"]
        named = [mount.split(":")[0] for mount in services[name]["volumes"]]
        assert any(volume in volumes for volume in named), f"{name} keeps no data"
    assert "/var/lib/postgresql/data" in services["postgres"]["volumes"][0]
    assert "--appendonly" in services["redis"]["command"]


def test_every_process_has_a_service(compose):
    assert {*PORTAL_SERVICES, "node", "migrate"} <= set(compose["services"])


@pytest.mark.parametrize("name", [*PORTAL_SERVICES, "migrate", "node"])
def test_each_service_command_names_something_that_exists(compose, name):
    for argv in commands(compose["services"][name]):
        assert_runs_something_real(argv)


def test_services_run_the_same_programs_as_the_local_process_table(compose, tmp_path):
    local = {
        identity(spec.argv)
        for spec in process_table(
            python="/venv/bin/python",
            web_host="127.0.0.1",
            web_port=8000,
            node_name="n",
            state_dir=tmp_path,
        )
    }
    deployed = {
        identity(argv)
        for name in [*PORTAL_SERVICES, "node"]
        for argv in commands(compose["services"][name])
    }
    assert local == deployed


def test_migrate_runs_first_and_the_portal_waits_for_healthy_servers(compose):
    services = compose["services"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert [argv[2] for argv in commands(services["migrate"])] == ["migrate", "seed"]
    for name in PORTAL_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"


def test_secrets_come_from_files_never_from_the_compose_file(compose):
    services = compose["services"]
    for name in [*PORTAL_SERVICES, "migrate"]:
        env = services[name]["environment"]
        assert env["DJANGO_SECRET_KEY_FILE"].startswith("/run/secrets/")
        assert env["DATABASE_URL_FILE"].startswith("/run/secrets/")
        assert "DJANGO_SECRET_KEY" not in env
        assert "DATABASE_URL" not in env
        assert {"django_secret_key", "database_url"} <= set(services[name]["secrets"])
    for name in PORTAL_SERVICES:
        assert "node_secret" in services[name]["secrets"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"].startswith("/run/")
    assert all("file" in secret for secret in compose["secrets"].values())


def test_the_node_reserves_nvidia_gpus_and_needs_only_redis(compose):
    node = compose["services"]["node"]
    devices = node["deploy"]["resources"]["reservations"]["devices"]
    assert {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]} in devices
    assert node["profiles"] == ["gpu-node"]
    assert "REDIS_URL" in node["environment"]
    assert not any(key.startswith(("DATABASE", "DJANGO")) for key in node["environment"])
    assert "depends_on" not in node, "a GPU host runs the node on its own"
    # The key that checks the portal's signatures, and nothing else.
    assert node["secrets"] == ["node_secret"]
    assert node["environment"]["TRAINYARD_NODE_SECRET_FILE"] == "/run/secrets/node_secret"


def test_the_image_runs_as_a_non_root_user_from_pinned_packages():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "-c constraints.txt" in dockerfile
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "node_modules", ".trainyard", "secrets", ".git"} <= set(ignored)
