"""`manage.py check --deploy` is clean with production settings, and they are what they say."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "TRAINYARD_"))
    }
    env.update(
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_SECURE_COOKIES="true",
        DJANGO_ALLOWED_HOSTS="portal.example",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://portal.example",
        TRAINYARD_STATE_DIR=str(tmp_path / "state"),
        **extra,
    )
    return env


def test_check_deploy_is_clean_with_production_settings(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


SHOW = """
import json
from django.conf import settings as s
print(json.dumps({
    "debug": s.DEBUG,
    "hsts": s.SECURE_HSTS_SECONDS,
    "ssl_redirect": s.SECURE_SSL_REDIRECT,
    "session_secure": s.SESSION_COOKIE_SECURE,
    "csrf_secure": s.CSRF_COOKIE_SECURE,
    "csp_script": s.CONTENT_SECURITY_POLICY["DIRECTIVES"]["script-src"],
    "submit_rate": s.TRAINYARD_SUBMIT_RATE,
    "lockout": s.AXES_FAILURE_LIMIT,
}))
"""


def test_production_settings_turn_on_tls_protections_and_abuse_limits(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SHOW],
        cwd=ROOT,
        env=production_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    assert shown == {
        "debug": False,
        "hsts": 31_536_000,
        "ssl_redirect": True,
        "session_secure": True,
        "csrf_secure": True,
        "csp_script": ["'self'"],
        "submit_rate": "30/minute",
        "lockout": 10,
    }


def test_without_a_secret_key_production_refuses_to_start(tmp_path: Path) -> None:
    env = production_env(tmp_path)
    del env["DJANGO_SECRET_KEY"]
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr
    assert not (tmp_path / "state" / "secret-key").exists()
