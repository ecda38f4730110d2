"""Clinics, staff, clients, episodes of care, sessions, responses and goals."""

from __future__ import annotations

import dataclasses
import zoneinfo
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy, pgettext_lazy

from bordin.measures.instruments import Instrument as MeasureDefinition
from bordin.web.crypto import EncryptedTextField
from bordin.web.prepared import PreparedQuery


def validate_time_zone(name: str) -> None:
    """An IANA time zone name this server knows (``zoneinfo.available_timezones()``)."""
    if name and name not in zoneinfo.available_timezones():
        raise ValidationError(
            gettext_lazy("Enter a time zone name such as Europe/Madrid or America/Mexico_City.")
        )


class Clinic(models.Model):
    name = models.CharField(max_length=200)
    crisis_contacts = models.TextField(
        blank=True,
        help_text="Shown to a client who reports thoughts of self-harm. One contact per line.",
    )
    time_zone = models.CharField(
        max_length=64,
        default="Europe/London",
        help_text="IANA time zone name: staff pages, quiet hours and reminders use it.",
    )
    duty_email = models.EmailField(
        blank=True,
        db_default="",  # rows inserted outside Django (scripts, restores) get no address
        help_text="The clinic's duty contact, e-mailed at once (with the therapist) when a "
        "client reports a risk.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class StaffProfile(models.Model):
    """A user's role in one clinic. What each role may see is decided in ``clinic.scoping``."""

    class Role(models.TextChoices):
        THERAPIST = "therapist", gettext_lazy("Therapist")
        SUPERVISOR = "supervisor", gettext_lazy("Supervisor")
        CLINIC_ADMIN = "clinic_admin", gettext_lazy("Clinic admin")
        RESEARCHER = "researcher", gettext_lazy("Researcher")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff"
    )
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="staff")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.THERAPIST)
    supervisees = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="supervisors",
        help_text="For a supervisor: the therapists of the same clinic they supervise.",
    )
    language = models.CharField(
        max_length=10,
        blank=True,
        default="",
        help_text="Language of this user's pages (a code from LANGUAGES); empty: the browser's.",
    )

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()}, {self.clinic})"

    @property
    def is_clinic_admin(self) -> bool:
        return self.role == self.Role.CLINIC_ADMIN

    @property
    def is_researcher(self) -> bool:
        return self.role == self.Role.RESEARCHER

    @property
    def is_supervisor(self) -> bool:
        return self.role == self.Role.SUPERVISOR


class Client(models.Model):
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="clients")
    therapist = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="clients"
    )
    display_name = models.CharField(max_length=120)
    active = models.BooleanField(default=True)
    # Contact details and consent (encrypted at rest like other free text).
    contact_email = EncryptedTextField(blank=True, help_text="Encrypted at rest.")
    contact_mobile = EncryptedTextField(blank=True, help_text="Encrypted at rest.")
    preferred_language = models.CharField(
        max_length=10, default="en", help_text="Language code of the client's pages and messages."
    )
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        default="",
        validators=[validate_time_zone],
        help_text="IANA time zone of the client's pages and reminders; empty: the clinic's.",
    )
    consent_email = models.BooleanField(default=False)
    consent_email_at = models.DateTimeField(null=True, blank=True)
    consent_sms = models.BooleanField(default=False)
    consent_sms_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(
        null=True, blank=True, help_text="Off the caseload, records kept."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("display_name", "pk")
        indexes = (models.Index(fields=["clinic", "therapist", "active"]),)

    def __str__(self) -> str:
        return self.display_name


class Episode(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", pgettext_lazy("episode", "Open")
        CLOSED = "closed", gettext_lazy("Closed")

    class EndingReason(models.TextChoices):
        PLANNED = "planned", gettext_lazy("Planned ending")
        DROPPED_OUT = "dropped_out", gettext_lazy("Dropped out")
        REFERRED_ON = "referred_on", gettext_lazy("Referred on")
        MOVED_AWAY = "moved_away", gettext_lazy("Moved away")
        OTHER = "other", gettext_lazy("Other")

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="episodes")
    start = models.DateField()
    end = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    ending_reason = models.CharField(
        max_length=20,
        choices=EndingReason.choices,
        blank=True,
        help_text="Why the episode ended; dropout is an outcome, so it is recorded.",
    )

    class Meta:
        ordering = ("-start", "-pk")
        constraints = (
            models.CheckConstraint(
                condition=Q(end__isnull=True) | Q(end__gte=models.F("start")),
                name="episode_end_after_start",
            ),
        )

    def __str__(self) -> str:
        return f"{self.client} from {self.start}"


class Session(models.Model):
    class Attendance(models.TextChoices):
        ATTENDED = "attended", gettext_lazy("Attended")
        MISSED = "missed", gettext_lazy("Missed (no-show)")
        CANCELLED = "cancelled", gettext_lazy("Cancelled by the client with notice")
        LATE_CANCELLED = "late_cancelled", gettext_lazy("Cancelled by the client late")

    episode = models.ForeignKey(Episode, on_delete=models.CASCADE, related_name="sessions")
    number = models.PositiveIntegerField(help_text="1 for the first session of the episode.")
    date = models.DateField()
    attendance = models.CharField(
        max_length=20, choices=Attendance.choices, default=Attendance.ATTENDED
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("episode", "number")
        constraints = (
            models.UniqueConstraint(fields=["episode", "number"], name="session_number_unique"),
            models.CheckConstraint(condition=Q(number__gte=1), name="session_number_positive"),
        )

    def __str__(self) -> str:
        return f"Session {self.number} on {self.date}"


class Instrument(models.Model):
    """A frozen copy of a measure definition; every response points at the exact version."""

    code = models.CharField(max_length=40)
    version = models.CharField(max_length=20)
    definition = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=["code", "version"], name="instrument_version_unique"),
        )

    def __str__(self) -> str:
        return f"{self.code} v{self.version}"

    @classmethod
    def snapshot(cls, definition: MeasureDefinition) -> Instrument:
        """The stored row for this definition's code and version, created on first use."""
        row = cls.objects.filter(code=definition.code, version=definition.version).first()
        if row is not None:
            return row
        row, _ = cls.objects.get_or_create(
            code=definition.code,
            version=definition.version,
            defaults={"definition": definition_as_json(definition)},
        )
        return row

    @classmethod
    def snapshots(cls, definitions: Iterable[MeasureDefinition]) -> dict[str, Instrument]:
        """:meth:`snapshot` of each definition, by code: one query when all rows exist.

        Only the key columns are read (the stored definition is large and not needed to
        reference a row).
        """
        wanted = {(d.code, d.version): d for d in definitions}
        # Every version of the codes (a few rows), matched here: cheaper to compile than one
        # condition per code and version, and a check-in runs it (issue 10): compiled once per
        # connection for each set of codes.
        codes = tuple(sorted({code for code, _ in wanted}))
        query = _SNAPSHOT_QUERIES.get(codes)
        if query is None:
            if len(_SNAPSHOT_QUERIES) > 64:
                _SNAPSHOT_QUERIES.clear()
            query = _SNAPSHOT_QUERIES[codes] = PreparedQuery(
                cls, lambda: cls.objects.filter(code__in=codes).only("code", "version")
            )
        rows = {(r.code, r.version): r for r in query.all()}
        return {
            code: rows.get((code, version)) or cls.snapshot(d)
            for (code, version), d in wanted.items()
        }


#: :meth:`Instrument.snapshots`' query for each set of codes.
_SNAPSHOT_QUERIES: dict[tuple[str, ...], PreparedQuery[Instrument]] = {}


def definition_as_json(definition: MeasureDefinition) -> dict[str, Any]:
    """A JSON-ready copy of a measure definition (tuples become lists)."""
    data = dataclasses.asdict(definition)
    data["subscales"] = {k: list(v) for k, v in definition.subscales.items()}
    data["answer_codes"] = dict(definition.answer_codes)
    result: dict[str, Any] = data
    return result


class Response(models.Model):
    """One completed questionnaire for one session, by the client or the therapist."""

    class Respondent(models.TextChoices):
        CLIENT = "client", gettext_lazy("Client")
        THERAPIST = "therapist", gettext_lazy("Therapist")

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="responses")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="responses")
    respondent = models.CharField(max_length=10, choices=Respondent.choices)
    rated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The staff member, for a therapist's rating.",
    )
    answers = models.JSONField(default=dict)
    total = models.FloatField(
        null=True, blank=True, help_text="Empty for an instrument stored unscored."
    )
    free_text = EncryptedTextField(blank=True, help_text="Encrypted at rest.")
    risk_flagged = models.BooleanField(default=False)
    submitted_at = models.DateTimeField()
    idempotency_key = models.CharField(max_length=100, unique=True)

    class Meta:
        ordering = ("session__number", "pk")
        constraints = (
            models.UniqueConstraint(
                fields=["session", "instrument", "respondent"],
                name="one_response_per_session_instrument_respondent",
            ),
        )
        indexes = (models.Index(fields=["respondent", "submitted_at"]),)

    def __str__(self) -> str:
        return f"{self.instrument} by {self.respondent} for {self.session}"


class Goal(models.Model):
    episode = models.ForeignKey(Episode, on_delete=models.CASCADE, related_name="goals")
    text = EncryptedTextField(
        max_length=300, help_text="In the client's own words. Encrypted at rest."
    )
    position = models.PositiveSmallIntegerField(default=0)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("position", "pk")

    def __str__(self) -> str:
        return self.text


class GoalRating(models.Model):
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="goal_ratings")
    response = models.ForeignKey(
        Response, on_delete=models.CASCADE, related_name="goal_ratings", null=True, blank=True
    )
    goal = models.ForeignKey(Goal, on_delete=models.CASCADE, related_name="ratings")
    rating = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ("session__number", "goal__position")
        constraints = (
            models.UniqueConstraint(fields=["session", "goal"], name="goal_rating_unique"),
            models.CheckConstraint(
                condition=Q(rating__gte=0) & Q(rating__lte=10), name="goal_rating_0_10"
            ),
        )

    def __str__(self) -> str:
        return f"{self.goal}: {self.rating}"
