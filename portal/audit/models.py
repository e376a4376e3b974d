from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    """One admin or security-relevant action: who did what to which object, when, from where.

    Rows are only ever added (by `portal.audit.services.audit_record`); the admin shows them
    read-only.
    """

    class Action(models.TextChoices):
        LOGIN = "login", "Logged in"
        LOGIN_FAILED = "login_failed", "Login failed"
        LOCKOUT = "lockout", "Locked out after failed logins"
        TOKEN_CREATED = "token_created", "Created an API token"
        TOKEN_REVOKED = "token_revoked", "Revoked an API token"
        NODE_DRAINED = "node_drained", "Drained a node"
        NODE_UNDRAINED = "node_undrained", "Undrained a node"
        NODE_CORDONED = "node_cordoned", "Cordoned a node"
        NODE_UNCORDONED = "node_uncordoned", "Uncordoned a node"
        MODEL_CODE_UPLOADED = "model_code_uploaded", "Uploaded custom model code"
        MODEL_VERSION_REGISTERED = "model_version_registered", "Registered a model version"
        TEAM_CHANGED = "team_changed", "Changed a team or its members"
        QUOTA_SET = "quota_set", "Set a quota"
        WEBHOOK_CREATED = "webhook_created", "Created a webhook"
        WEBHOOK_DELETED = "webhook_deleted", "Deleted a webhook"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # The username as typed (a failed login may name nobody); it outlives a deleted user.
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    target = models.CharField(max_length=200, blank=True, help_text="What was acted on.")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.target}"
