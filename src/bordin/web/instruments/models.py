"""Imported questionnaires and each clinic's list of active instruments.

Until the measure plan (delivery issue) lands, a clinic's check-in asks Bordin's own alliance and
wellbeing check-ins plus every instrument on this list that is active and that an admin has
marked as licensed for use in the clinic
(:func:`bordin.web.checkins.services.checkin_instrument_codes`).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from bordin.web.clinic.models import Clinic, Instrument


class QuestionnaireSource(models.Model):
    """The FHIR Questionnaire an instrument version was imported from, kept as it came."""

    instrument = models.OneToOneField(
        Instrument, on_delete=models.PROTECT, related_name="questionnaire_source"
    )
    resource = models.JSONField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"FHIR Questionnaire for {self.instrument}"


class ClinicInstrument(models.Model):
    """An imported instrument on a clinic's list; ``instrument`` is its current version.

    Importing a new version moves ``instrument`` on; responses keep pointing at the version
    they answered.
    """

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="instruments")
    code = models.CharField(max_length=40)
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    licence = models.TextField(
        blank=True, help_text="Who owns the instrument and on what terms it may be used."
    )
    may_use = models.BooleanField(
        default=False, help_text="An admin confirmed that it may be used in this clinic."
    )
    active = models.BooleanField(default=True, help_text="Asked in the client's check-in.")
    notes = models.TextField(blank=True, help_text="What the import said (scoring, risk items).")
    imported_at = models.DateTimeField(auto_now=True)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ("code", "pk")
        constraints = (
            models.UniqueConstraint(fields=["clinic", "code"], name="clinic_instrument_unique"),
        )

    def __str__(self) -> str:
        return f"{self.code} in {self.clinic}"

    @property
    def in_checkin(self) -> bool:
        return self.active and self.may_use
