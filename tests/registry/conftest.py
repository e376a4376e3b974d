"""Registry tests: a private storage root for the exports, and API clients holding tokens."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from portal.accounts.models import ApiToken
from portal.accounts.services import api_token_create

TokenClient = Callable[..., APIClient]


@pytest.fixture(autouse=True)
def _private_storage(storage_root: Path) -> Path:
    """Every registry test writes its jobs' exports under a storage root of its own."""
    return storage_root


@pytest.fixture
def api(db: None) -> TokenClient:
    """`api(user, scope="write")`: an APIClient that sends a fresh token for `user`."""

    def make(user: User, scope: str = ApiToken.Scope.WRITE) -> APIClient:
        issued = api_token_create(user=user, name="test", scope=scope, expires_in=timedelta(days=1))
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
        return client

    return make
