"""The unread notification count the nav shows on every page."""

from __future__ import annotations

from django.http import HttpRequest

from portal.notifications.selectors import unread_count


def unread_notifications(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    # Lazy: a page that never shows the nav (an API error page) never counts.
    return {"unread_notifications": lambda: unread_count(user)}
