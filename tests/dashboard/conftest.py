from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache

from portal.dashboard.selectors import TOP_CACHE_KEY
from tests.api.conftest import client_for  # noqa: F401 - a fixture


@pytest.fixture(autouse=True)
def _fresh_top_usage() -> Iterator[None]:
    """The top users are cached for a minute; each test computes its own."""
    cache.delete(TOP_CACHE_KEY)
    yield
    cache.delete(TOP_CACHE_KEY)
