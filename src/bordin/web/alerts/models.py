"""Alerts for the care team, with a new -> acknowledged -> resolved lifecycle."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from bordin.web.clinic.models import Client, Clinic, Session
from bordin.web.crypto import EncryptedTextField


class Alert(models.Model):
    class Kind(models.TextChoices):
        RISK = "risk", _("Risk")
        RUPTURE = "rupture", _("Rupture")
        WITHDRAWAL = "withdrawal", _("Withdrawal: reach out")
        NOT_ON_TRACK = "not_on_track", _("Not on track")
        DIVERGENCE = "divergence", _("Divergence")
        OVERDUE = "overdue", _("Check-in overdue")
        RELAPSE = "relapse", _("Deterioration at follow-up")

    class Status(models.TextChoices):
        NEW = "new", _("New")
        ACKNOWLEDGED = "acknowledged", _("Acknowledged")
        RESOLVED = "resolved", _("Resolved")

    #: Order of urgency, most urgent first (caseload sort order and badge order).
    URGENCY = (
        Kind.RISK,
        Kind.WITHDRAWAL,
        Kind.RELAPSE,
        Kind.RUPTURE,
        Kind.NOT_ON_TRACK,
        Kind.DIVERGENCE,
        Kind.OVERDUE,
    )
    OPEN_STATUSES = (Status.NEW, Status.ACKNOWLEDGED)

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="alerts")
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="alerts")
    session = models.ForeignKey(
        Session, on_delete=models.CASCADE, related_name="alerts", null=True, blank=True
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW)
    detail = models.TextField(blank=True, help_text="What triggered the alert, in plain words.")
    note = EncryptedTextField(blank=True, help_text="Required when resolving. Encrypted at rest.")
    dedupe_key = models.CharField(
        max_length=120, unique=True, help_text="Identifies the cause, so it is raised once."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ("-created_at", "-pk")
        indexes = (models.Index(fields=["client", "status"]),)

    def __str__(self) -> str:
        return f"{self.get_kind_display()} alert for {self.client} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    @property
    def css_kind(self) -> str:
        """The badge hook: ``not_on_track`` becomes ``not-on-track``."""
        return self.kind.replace("_", "-")
