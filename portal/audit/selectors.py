"""Reads for the audit log."""

from __future__ import annotations

from django.db.models import QuerySet

from portal.audit.models import AuditEvent


def audit_events() -> QuerySet[AuditEvent]:
    """Every event, newest first (admins only: the edges check)."""
    return AuditEvent.objects.select_related("actor").order_by("-created_at", "-id")
