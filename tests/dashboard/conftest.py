from __future__ import annotations

from tests.api.conftest import client_for  # noqa: F401 - a fixture
