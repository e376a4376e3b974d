from __future__ import annotations

from django.contrib import admin

from portal.audit.models import AuditEvent
from portal.lib.admin import ReadOnlyAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin[AuditEvent]):
    """Read-only: the log is written by services and signals, never edited."""

    list_display = ["created_at", "actor_name", "action", "target", "ip_address"]
    list_filter = ["action", "created_at"]
    search_fields = ["actor_name", "target", "ip_address"]
    date_hierarchy = "created_at"
