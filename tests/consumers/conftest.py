from __future__ import annotations

from tests.consumers.support import isolated_channel_layer  # noqa: F401 - a fixture
