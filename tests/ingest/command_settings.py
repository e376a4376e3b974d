"""Settings for `manage.py ingest` started by a test: the project's own, with the channel
layer under the prefix the test chose, so its fan-out reaches no one else's groups."""

import os
from typing import Any

from portal.settings import *  # noqa: F403
from portal.settings import CHANNEL_LAYERS

_default: dict[str, Any] = dict(CHANNEL_LAYERS["default"])
_default["CONFIG"] = {**_default["CONFIG"], "prefix": os.environ["TEST_ASGI_PREFIX"]}
CHANNEL_LAYERS = {"default": _default}
