"""``AuditEvent``: who did what to which record, from where and when. Append-only.

Three layers keep the log append-only:

* the model refuses to update or delete a stored event (``save()`` on an existing row,
  ``delete()``, and ``QuerySet.update()``/``delete()`` raise :class:`AppendOnlyError`);
* the database refuses too: triggers created by migration ``0001`` reject ``UPDATE`` and
  ``DELETE`` on the table (and ``TRUNCATE`` on PostgreSQL), whatever client sends them;
* the model is ``managed = False``: its table is created by its own migration, so Django's
  ``flush`` (and the test runner's flush between transactional tests) never tries to empty it.
  Schema changes to this model therefore need a hand-written migration.

Nothing points at other tables with a foreign key: users, clients and links are kept as plain
ids (plus a username snapshot), so deleting a user or a client never has to touch (update or
cascade-delete) the trail.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

TABLE = "audit_auditevent"


class AppendOnlyError(Exception):
    """Audit events are never changed or removed."""


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("Audit events cannot be updated.")

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        raise AppendOnlyError("Audit events cannot be updated.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit events cannot be deleted.")


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        READ = "read", "Read"
        CREATE = "create", "Create"
        UPDATE = "update", "Update"
        EXPORT = "export", "Export"
        DENIED = "denied", "Access denied"
        LOGIN = "login", "Log in"
        LOGIN_FAILED = "login_failed", "Failed log in"
        LOGOUT = "logout", "Log out"

    #: ``role`` of an event whose actor is a client's check-in link rather than a user.
    CHECKIN_LINK_ROLE = "checkin_link"

    at = models.DateTimeField(default=timezone.now)
    user_id = models.BigIntegerField(null=True, blank=True)
    username = models.CharField(max_length=150, blank=True)
    role = models.CharField(max_length=20, blank=True)
    checkin_link_id = models.BigIntegerField(
        null=True, blank=True, help_text="The actor, for a client's check-in."
    )
    clinic_id = models.BigIntegerField(null=True, blank=True)
    action = models.CharField(max_length=20, choices=Action.choices)
    object_type = models.CharField(max_length=40, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    client_id = models.BigIntegerField(null=True, blank=True)
    detail = models.CharField(max_length=200, blank=True)
    path = models.CharField(max_length=500, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        managed = False  # created by migration 0001 with its triggers; never flushed
        db_table = TABLE
        ordering = ("-at", "-pk")
        indexes = (
            models.Index(fields=["clinic_id", "at"], name="audit_clinic_at"),
            models.Index(fields=["client_id", "at"], name="audit_client_at"),
            models.Index(fields=["user_id", "at"], name="audit_user_at"),
        )

    def __str__(self) -> str:
        who = self.username or (f"link {self.checkin_link_id}" if self.checkin_link_id else "?")
        return (
            f"{self.at:%Y-%m-%d %H:%M:%S} {who} {self.action} {self.object_type} {self.object_id}"
        )

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding or kwargs.get("force_update") or kwargs.get("update_fields"):
            raise AppendOnlyError("Audit events cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit events cannot be deleted.")
