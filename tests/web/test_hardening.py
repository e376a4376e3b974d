"""The pages hold against hostile input: unsafe names, static traversal, forged cookies."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from portal.jobs.models import Job


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["bell\x07", "right-to-left \u202egpj.exe", "esc\x1b"])
def test_the_job_form_refuses_them_with_a_field_error(
    client: Client, owner: User, job_form_data: dict[str, Any], name: str
) -> None:
    client.force_login(owner)
    response = client.post(reverse("jobs:new"), {**job_form_data, "name": name})

    assert response.status_code == 400
    assert "Control characters" in " ".join(response.context["form"].errors["name"])
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_the_token_form_refuses_a_bidi_override(client: Client, owner: User) -> None:
    client.force_login(owner)
    response = client.post(
        "/account/tokens/", {"name": "cli \u202e", "scope": "read", "expires_in_days": "1"}
    )
    assert response.status_code == 400
    assert not owner.api_tokens.exists()


TRAVERSALS = [
    "/static/../portal/settings.py",
    "/static/../../etc/passwd",
    "/static/..%2fportal%2fsettings.py",
    "/static/%2e%2e/portal/settings.py",
    "/static/%2e%2e%2fportal%2fsettings.py",
    "/static/%252e%252e%252fportal%252fsettings.py",
    "/static/..%252fportal/settings.py",
    "/static/css/../../portal/settings.py",
    "/static/css/..%5c..%5cportal%5csettings.py",
    "/static/..\\portal\\settings.py",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/css/%00.css",
    "/static/vendor/uplot/../../../../package.json",
    "/static/%c0%ae%c0%ae/portal/settings.py",
    "/static/no-such-file.js",
]


@pytest.mark.django_db
@pytest.mark.parametrize("path", TRAVERSALS)
@pytest.mark.parametrize("signed_in", [False, True])
def test_traversal_under_static_is_a_404_in_every_encoding(
    client: Client, owner: User, path: str, signed_in: bool
) -> None:
    if signed_in:
        client.force_login(owner)
    response = client.get(path)

    assert response.status_code == 404
    assert b"SECRET_KEY" not in response.content


def test_a_real_static_file_is_still_served(client: Client) -> None:
    response = client.get("/static/css/trainyard.css")

    assert response.status_code == 200
    assert b"{" in b"".join(response.streaming_content)  # type: ignore[attr-defined]


# ---- no public secret ---------------------------------------------------------------------

# The development key this project once shipped, and keys anyone might guess.
FIXED_KEYS = [
    "dev-only-insecure-key-set-DJANGO_SECRET_KEY-in-production",
    "django-insecure-changeme",
    "secret",
]
PAYLOAD = '<img src=x id="forged-message">'


def messages_cookie(key: str) -> str:
    """A `messages` cookie holding raw (marked safe) HTML, written by Django's own cookie
    storage as if `key` were the SECRET_KEY."""
    from django.contrib.messages.storage.cookie import CookieStorage
    from django.http import HttpRequest, HttpResponse
    from django.test import override_settings
    from django.utils.safestring import mark_safe

    with override_settings(SECRET_KEY=key):
        storage = CookieStorage(HttpRequest())
        storage.add(20, mark_safe(PAYLOAD))  # noqa: S308 - the attack under test
        response = HttpResponse()
        storage.update(response)
    return response.cookies["messages"].value


@pytest.mark.django_db
def test_a_messages_cookie_signed_with_the_real_key_is_what_would_render() -> None:
    # The control: were the key known, this cookie would put raw HTML in the login page.
    from django.conf import settings

    client = Client()
    client.cookies["messages"] = messages_cookie(settings.SECRET_KEY)
    assert PAYLOAD in client.get(reverse("login")).content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("key", FIXED_KEYS)
def test_a_messages_cookie_signed_with_any_fixed_key_is_ignored(key: str) -> None:
    client = Client()
    client.cookies["messages"] = messages_cookie(key)

    page = client.get(reverse("login"))

    assert page.status_code == 200
    assert "forged-message" not in page.content.decode()


def test_the_secret_key_is_generated_per_state_directory() -> None:
    import os
    import stat
    from pathlib import Path

    from django.conf import settings

    assert settings.SECRET_KEY not in FIXED_KEYS
    assert len(settings.SECRET_KEY) >= 50
    key_file = os.environ.get("DJANGO_SECRET_KEY_FILE")
    if key_file:  # the test run, like `bin/dev run`, generated it in its state directory
        path = Path(key_file)
        assert path.read_text().strip() == settings.SECRET_KEY
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.parent == Path(settings.STATE_DIR)


# ---- Content-Security-Policy --------------------------------------------------------------

PAGES = [
    "/login/",
    "/",
    "/jobs/new/",
    "/catalog/datasets/",
    "/catalog/datasets/upload/",
    "/catalog/models/",
    "/cluster/nodes/",
    "/account/tokens/",
    "/audit/",
    "/admin/",
    "/admin/login/",
    "/admin/audit/auditevent/",
]


@pytest.mark.django_db
@pytest.mark.parametrize("path", PAGES)
def test_every_page_has_a_csp_that_allows_no_inline_script(
    client: Client, admin_user: User, iris: Any, cpu_node: Any, path: str
) -> None:
    if path != "/login/":
        client.force_login(admin_user)
    response = client.get(path, follow=True)
    assert response.status_code == 200

    policy = response["Content-Security-Policy"]
    directives = dict(
        (part.split()[0], part.split()[1:]) for part in policy.split(";") if part.strip()
    )
    assert directives["script-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in directives["script-src"]
    assert "'unsafe-eval'" not in policy


def test_no_template_has_an_inline_script_or_event_handler() -> None:
    import re
    from pathlib import Path

    from django.conf import settings

    inline = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>")
    handler = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
    for template in Path(settings.BASE_DIR, "templates").rglob("*.html"):
        text = template.read_text()
        assert not inline.search(text), f"{template}: inline <script>"
        assert not handler.search(text), f"{template}: inline event handler"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/jobs/100000000000000000000/", "/?page=100000000000000000000", "/audit/?page=-1"]
)
def test_huge_ids_and_pages_on_the_pages_are_not_server_errors(
    client: Client, admin_user: User, path: str
) -> None:
    client.force_login(admin_user)
    assert client.get(path).status_code in {200, 404}


@pytest.mark.django_db
def test_a_huge_node_id_on_the_drain_form_is_a_404(client: Client, admin_user: User) -> None:
    client.force_login(admin_user)
    response = client.post("/cluster/nodes/100000000000000000000/drain/", {"draining": "true"})
    assert response.status_code == 404
