from __future__ import annotations

from rest_framework import serializers

from portal.audit.models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    actor = serializers.CharField(source="actor_name", read_only=True, help_text="Username.")

    class Meta:
        model = AuditEvent
        fields = ["id", "created_at", "actor", "action", "target", "ip_address", "details"]
        read_only_fields = fields
