"""Schemathesis against the real app: no server error and no schema violation, in any operation.

The schema is the one the API serves; requests go through Django's WSGI handler in this
process, signed in with an admin's token (admins may call every operation), inside the test's
transaction (so nothing scheduled on commit ever runs). Bounded: a few derandomized examples
per operation, so the run is deterministic and short.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from portal.accounts.services import api_token_create
from tests.factories import make_attempt, make_job

EXAMPLES_PER_OPERATION = 8
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def auth(db: None, admin_user: User) -> dict[str, str]:
    issued = api_token_create(user=admin_user, name="schemathesis", expires_in=timedelta(hours=1))
    return {"Authorization": f"Bearer {issued.plaintext}"}


@pytest.fixture
def in_test_transaction() -> Iterator[None]:
    """Keep the test's database connection open across in-process requests, as Django's
    test client does: the WSGI handler would close it when each request finishes."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def job_with_an_attempt(db: None, admin_user: User, iris: Any, mlp: Any, cpu_node: Any) -> None:
    # Something behind job ids, metrics and logs, and a dataset and model a submit can name.
    make_attempt(make_job(admin_user))


def served_schema() -> Any:
    """The schema exactly as `/api/v1/schema/` renders it (no database needed)."""
    raw = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(raw))


# The schema's own route is drf-spectacular's (an unknown ?format= is its 404), not ours.
schema = schemathesis.openapi.from_dict(served_schema()).exclude(path="/api/v1/schema/")
schema.app = get_wsgi_application()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@pytest.mark.usefixtures("in_test_transaction", "job_with_an_attempt")
def test_the_api_conforms_to_its_schema(case: Any, auth: dict[str, str]) -> None:
    case.call_and_validate(headers=auth, checks=CHECKS)
