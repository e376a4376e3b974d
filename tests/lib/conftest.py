"""The stream bookkeeping tests read real streams the way ingest's tests do."""

from tests.consumers.support import isolated_channel_layer  # noqa: F401 - a fixture
from tests.ingest.conftest import streams  # noqa: F401 - a fixture
