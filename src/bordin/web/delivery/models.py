"""What is sent when (measure plans), what was sent (deliveries and the outbox), and what the
client asked for (unsubscribes) or what went wrong (contact failures)."""

from __future__ import annotations

from datetime import time

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy
from django.utils.translation import gettext_lazy as _

from bordin.web.checkins.models import CheckinLink, SecureLink
from bordin.web.clinic.models import Client, Clinic, Episode, Session
from bordin.web.crypto import EncryptedTextField
from bordin.web.journey.models import JourneyLink

#: Instrument codes of the default plan (built-in, "not validated" Bordin measures).
DEFAULT_CHECKIN_CODES = ("alliance", "wellbeing")
DEFAULT_FOLLOWUP_CODES = ("wellbeing",)
DEFAULT_FOLLOWUP_MONTHS = (1, 3, 6)
#: Not outcome measures: a follow-up asks outcome measures only (docs/delivery.md).
NOT_AT_FOLLOWUP = frozenset({"alliance", "alliance_therapist"})


def _checkin_codes() -> list[str]:
    return list(DEFAULT_CHECKIN_CODES)


def _followup_codes() -> list[str]:
    return list(DEFAULT_FOLLOWUP_CODES)


def _followup_months() -> list[int]:
    return list(DEFAULT_FOLLOWUP_MONTHS)


class Channel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("Text message")
    IN_PERSON = "", _("In person only")


class MeasurePlan(models.Model):
    """What is sent when: a clinic's defaults (``clinic`` set) or one episode's override
    (``episode`` set). Instruments are named by code, so imported questionnaires slot in."""

    clinic = models.OneToOneField(
        Clinic, on_delete=models.CASCADE, null=True, blank=True, related_name="measure_plan"
    )
    episode = models.OneToOneField(
        Episode, on_delete=models.CASCADE, null=True, blank=True, related_name="measure_plan"
    )
    send_intake = models.BooleanField(default=True, help_text="Intake link when a client is added.")
    send_fit_check = models.BooleanField(default=True, help_text="Fit check after session 1.")
    send_checkin = models.BooleanField(default=True, help_text="Check-in after attended sessions.")
    send_graduation = models.BooleanField(default=True, help_text="Summary at a planned ending.")
    checkin_codes = models.JSONField(default=_checkin_codes)
    followup_codes = models.JSONField(default=_followup_codes)
    followup_months = models.JSONField(default=_followup_months)
    reminder_hours = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: BORDIN_REMINDER_HOURS (24)."
    )
    quiet_start = models.TimeField(default=time(21, 0))
    quiet_end = models.TimeField(default=time(8, 0))
    clinic_contact = models.CharField(
        max_length=300, blank=True, help_text="How a former client reaches the clinic."
    )
    rupture_rules = models.JSONField(
        default=dict,
        blank=True,
        help_text="Rupture rule by alliance measure code (fixed, reliable, ceiling); a measure "
        "not named uses its default (bordin.measures.rupture_rules). Clinic plans only.",
    )

    class Meta:
        constraints = (
            models.CheckConstraint(
                condition=(Q(clinic__isnull=False) & Q(episode__isnull=True))
                | (Q(clinic__isnull=True) & Q(episode__isnull=False)),
                name="measure_plan_clinic_xor_episode",
            ),
        )

    def __str__(self) -> str:
        return f"Measure plan for {self.clinic or self.episode}"


class Delivery(models.Model):
    """One questionnaire for one client: its link (the plain token kept encrypted until the
    link is closed, for reminders), the channel, and its reminders."""

    class Kind(models.TextChoices):
        INTAKE = "intake", _("intake questionnaire")
        FIT_CHECK = "fit_check", _("first-session questionnaire")
        CHECKIN = "checkin", _("session check-in")
        GRADUATION = "graduation", _("end-of-therapy summary")
        FOLLOWUP = "followup", _("follow-up questionnaire")

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="deliveries")
    episode = models.ForeignKey(Episode, on_delete=models.CASCADE, related_name="deliveries")
    session = models.ForeignKey(
        Session, on_delete=models.CASCADE, null=True, blank=True, related_name="deliveries"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    checkin_link = models.ForeignKey(
        CheckinLink, on_delete=models.CASCADE, null=True, blank=True, related_name="deliveries"
    )
    journey_link = models.ForeignKey(
        JourneyLink, on_delete=models.CASCADE, null=True, blank=True, related_name="deliveries"
    )
    # None once the link can no longer be used (services.forget_tokens).
    token = EncryptedTextField(  # type: ignore[misc]  # the field's stub type is str only
        null=True,
        blank=True,
        help_text="Token of the open link, for the reminder. Encrypted at rest.",
    )
    channel = models.CharField(max_length=10, choices=Channel.choices, blank=True)
    due_at = models.DateTimeField(default=timezone.now, help_text="When it is (to be) sent.")
    issued_at = models.DateTimeField(null=True, blank=True, help_text="When its link was made.")
    followup_month = models.PositiveSmallIntegerField(null=True, blank=True)
    reminder_at = models.DateTimeField(null=True, blank=True)
    reminders_sent = models.PositiveSmallIntegerField(default=0)
    closed_at = models.DateTimeField(
        null=True, blank=True, help_text="Replaced by a resend, or no longer followed up."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-due_at", "-pk")
        indexes = (
            models.Index(fields=["closed_at", "reminder_at"]),
            models.Index(fields=["kind", "issued_at", "due_at"]),
        )

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.client}"

    @property
    def link(self) -> SecureLink | None:
        return self.checkin_link or self.journey_link

    @property
    def path(self) -> str:
        from django.urls import reverse

        name = "checkin-start" if self.checkin_link_id else "journey-start"
        return reverse(name, args=[self.token])

    @property
    def url(self) -> str:
        return settings.BORDIN_BASE_URL + self.path

    @property
    def state(self) -> str:
        link = self.link
        if link is None:
            return "scheduled"
        return link.state


class OutboxMessage(models.Model):
    """A message to send, written in the same transaction as the link it carries. The worker
    claims it, sends it and marks it sent: a crash between send and mark resends it once."""

    class Purpose(models.TextChoices):
        INVITATION = "invitation", gettext_lazy("Invitation")
        REMINDER = "reminder", gettext_lazy("Reminder")

    class Status(models.TextChoices):
        PENDING = "pending", gettext_lazy("Pending")
        SENT = "sent", gettext_lazy("Sent")
        FAILED = "failed", gettext_lazy("Failed")
        CANCELLED = "cancelled", gettext_lazy("Cancelled")

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="messages")
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="outbox")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    purpose = models.CharField(max_length=20, choices=Purpose.choices)
    essential = models.BooleanField(
        default=False, help_text="Sent even after an unsubscribe (none of today's messages)."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("next_attempt_at", "pk")
        indexes = (models.Index(fields=["status", "next_attempt_at"]),)

    def __str__(self) -> str:
        return f"{self.purpose} by {self.channel} ({self.status})"


class Unsubscribe(models.Model):
    """The client asked for no more non-essential messages on a channel (recorded, kept)."""

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="unsubscribes")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    created_at = models.DateTimeField(default=timezone.now)
    via = models.CharField(max_length=20, default="link")

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.client} unsubscribed from {self.channel}"


class ContactFailure(models.Model):
    """Consecutive failed sends to a client's address; flagged for the admin at the limit."""

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="contact_failures")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    failures = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    flagged_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=["client", "channel"], name="contact_failure_unique"),
        )

    def __str__(self) -> str:
        return f"{self.client}: {self.failures} failed {self.channel} sends"
