"""Importing a FHIR Questionnaire into a clinic: all stored in one transaction, or nothing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from bordin.measures.instruments import Instrument as MeasureDefinition
from bordin.measures.instruments import instrument_from_dict
from bordin.measures.questionnaire import Imported, parse_questionnaire
from bordin.web.clinic import analysis
from bordin.web.clinic.models import Clinic, Instrument, definition_as_json
from bordin.web.instruments.models import ClinicInstrument, QuestionnaireSource
from bordin.web.prepared import NO_PK, PreparedQuery


@dataclass(frozen=True)
class ImportResult:
    entry: ClinicInstrument
    imported: Imported
    new_version: bool


def import_questionnaire(
    data: bytes, source: str, clinic: Clinic, user: Any = None
) -> ImportResult:
    """Check ``data`` (a FHIR R4 Questionnaire) and put it on ``clinic``'s list.

    Raises :class:`~bordin.measures.questionnaire.QuestionnaireError` (nothing stored) when the
    file cannot be imported. Re-importing an identical file changes nothing; a changed file
    becomes a new version, and earlier responses stay tied to the version they answered.
    """
    imported = parse_questionnaire(data, source, analysis.registry())
    definition = imported.definition
    with transaction.atomic():
        row, created = Instrument.objects.get_or_create(
            code=definition.code,
            version=definition.version,
            defaults={"definition": definition_as_json(definition)},
        )
        QuestionnaireSource.objects.get_or_create(
            instrument=row,
            defaults={"resource": imported.resource, "sha256": hashlib.sha256(data).hexdigest()},
        )
        entry, _ = ClinicInstrument.objects.update_or_create(
            clinic=clinic,
            code=definition.code,
            defaults={"instrument": row, "notes": "\n".join(imported.notes), "imported_by": user},
        )
    return ImportResult(entry, imported, created)


def definition_of(row: Instrument) -> MeasureDefinition:
    """The measure definition a stored instrument version was frozen with."""
    return instrument_from_dict(row.definition)


#: Compiled once per connection: every check-in form reads it (issue 10).
_CHECKIN_INSTRUMENTS = PreparedQuery(
    ClinicInstrument,
    lambda clinic_id: (
        ClinicInstrument.objects.filter(clinic_id=clinic_id, active=True, may_use=True)
        .select_related("instrument")
        .order_by("code", "pk")
    ),
    NO_PK,
)


def clinic_checkin_instruments(clinic_id: int) -> list[ClinicInstrument]:
    """The clinic's imported instruments that its check-in asks, in list order."""
    return _CHECKIN_INSTRUMENTS.all(clinic_id)


def seed_demo_questionnaire(clinic: Clinic) -> ClinicInstrument:
    """Put the placeholder-worded, PHQ-9-coded Questionnaire on the demo clinic's list."""
    import json

    from bordin.web.instruments.placeholder import DEMO_LICENCE, demo_phq9

    data = json.dumps(demo_phq9(), indent=2).encode()
    entry = import_questionnaire(data, "demo-phq9-placeholder.json", clinic).entry
    from bordin.web.delivery.services import plan_instrument  # delivery imports this module

    entry.licence, entry.may_use, entry.active = DEMO_LICENCE, True, True
    entry.save(update_fields=["licence", "may_use", "active"])
    plan_instrument(clinic.pk, entry.code, may_use=True)
    return entry
