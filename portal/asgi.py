"""ASGI entry point: HTTP through Django, WebSockets through Channels (`/ws/...`)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
# Django must be set up before anything imports models (consumers, routing).
django_http = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from portal.accounts.websocket import WebSocketAuthMiddleware  # noqa: E402
from portal.lib.websocket_origin import SameOriginValidator  # noqa: E402
from portal.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Static files are served by WhiteNoise's middleware inside Django, so one `daphne` is
        # a whole portal; a deployment behind a reverse proxy can serve STATIC_ROOT there.
        "http": django_http,
        # Scheme, host and port of the page must be the portal's own (docs/security.md).
        "websocket": SameOriginValidator(WebSocketAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)
