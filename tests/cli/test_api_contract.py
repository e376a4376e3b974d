"""The API's schema is the CLI's contract: every call in `trainyard_cli.api.ENDPOINTS` must
exist in the portal's OpenAPI schema with the query parameters it sends, the body fields it
may send, and the response fields it reads. A change on either side that breaks the other
fails here."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from trainyard_cli.api import ENDPOINTS, Endpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client: Client, admin_user: Any) -> dict[str, Any]:
    client.force_login(admin_user)
    response = client.get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow `$ref`s, and step through a nullable `oneOf`/`anyOf`/`allOf` of one schema."""
    while True:
        if "$ref" in node:
            name = node["$ref"].removeprefix("#/components/schemas/")
            node = schema["components"]["schemas"][name]
            continue
        for key in ("allOf", "oneOf", "anyOf"):
            options = [o for o in node.get(key, []) if o.get("type") != "null"]
            if len(options) == 1:
                node = options[0]
                break
        else:
            return node


def has_field(schema: dict[str, Any], node: dict[str, Any], dotted: str) -> bool:
    for key in dotted.split("."):
        node = resolve(schema, node)
        while node.get("type") == "array" or "items" in node:
            node = resolve(schema, node["items"])
        if key not in node.get("properties", {}):
            return False
        node = node["properties"][key]
    return True


def operation(schema: dict[str, Any], endpoint: Endpoint) -> dict[str, Any]:
    assert endpoint.path in schema["paths"], f"{endpoint.path} is not in the API"
    path_item = schema["paths"][endpoint.path]
    assert endpoint.method.lower() in path_item, f"{endpoint.method} {endpoint.path} missing"
    found: dict[str, Any] = path_item[endpoint.method.lower()]
    return found


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_every_call_the_cli_makes_is_in_the_schema(
    schema: dict[str, Any], endpoint: Endpoint
) -> None:
    op = operation(schema, endpoint)
    query = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
    assert set(endpoint.params) <= query, f"not accepted: {set(endpoint.params) - query}"
    path_params = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
    assert path_params == {part[1:-1] for part in endpoint.path.split("/") if part.startswith("{")}

    responses = op["responses"]
    assert str(endpoint.status) in responses, f"answers {sorted(responses)}, not {endpoint.status}"
    if endpoint.fields:
        body = responses[str(endpoint.status)]["content"]["application/json"]["schema"]
        missing = [f for f in endpoint.fields if not has_field(schema, body, f)]
        assert not missing, f"{endpoint.method} {endpoint.path} does not answer {missing}"

    if endpoint.body:
        content = op["requestBody"]["content"]
        assert endpoint.media in content, f"takes {sorted(content)}, not {endpoint.media}"
        request = content[endpoint.media]["schema"]
        unknown = [f for f in endpoint.body if not has_field(schema, request, f)]
        assert not unknown, f"{endpoint.method} {endpoint.path} does not take {unknown}"


def test_the_contract_check_catches_a_field_the_api_does_not_have(
    schema: dict[str, Any],
) -> None:
    body = operation(schema, ENDPOINTS[0])["responses"]["200"]["content"]["application/json"]
    assert has_field(schema, body["schema"], "results.spec.training.epochs")
    assert not has_field(schema, body["schema"], "results.spec.training.nonsense")
    assert not has_field(schema, body["schema"], "results.no_such_field")


def test_the_api_docs_page_serves_swagger_ui_to_signed_in_users_only(
    client: Client, admin_user: Any
) -> None:
    assert client.get("/api/v1/docs/").status_code in (401, 403)
    client.force_login(admin_user)
    page = client.get("/api/v1/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "swagger-ui" in html and "<script>" not in html  # no inline script: CSP-safe
    # Served from our own static files (npm's swagger-ui-dist), never from a CDN.
    assert '<script src="/static/vendor/swagger-ui/swagger-ui-bundle.js">' in html
    assert "https://" not in html
    script = client.get("/api/v1/docs/?script=")
    assert script.status_code == 200 and b"/api/v1/schema/" in script.content
