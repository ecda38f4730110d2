"""Bordin's records as FHIR R4 resources (Patient, Questionnaire, QuestionnaireResponse,
Observation) and Bundles, as plain JSON-ready dicts.

Each resource validates against the ``fhir.resources.R4B`` models (tests/web/test_fhir.py).
A total score becomes an Observation with the instrument's LOINC total code when it has one
(PHQ-9 44261-6, GAD-7 70274-6), ``derivedFrom`` the QuestionnaireResponse, and the session's
date as ``effectiveDateTime``. Free text never leaves Bordin through FHIR.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from bordin.measures.instruments import Instrument as MeasureDefinition
from bordin.measures.instruments import instrument_from_dict
from bordin.web.clinic import scoping
from bordin.web.clinic.models import Client, Instrument, Response

LOINC = "http://loinc.org"
ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
BORDIN_INSTRUMENT = "urn:bordin:instrument"
BORDIN_ANSWER = "urn:bordin:answer"
PATIENT_SYSTEM = "urn:bordin:clinic:{clinic}:client"
PSEUDONYM_SYSTEM = "urn:bordin:clinic:{clinic}:pseudonym"
FHIR_JSON = "application/fhir+json"


def patient_id(client: Client, pseudonymous: bool) -> str:
    return scoping.pseudonym(client.clinic_id, client.pk) if pseudonymous else str(client.pk)


def patient(client: Client, pseudonymous: bool) -> dict[str, Any]:
    pid = patient_id(client, pseudonymous)
    system = (PSEUDONYM_SYSTEM if pseudonymous else PATIENT_SYSTEM).format(clinic=client.clinic_id)
    out: dict[str, Any] = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": system, "value": pid}],
        "active": client.active,
    }
    if not pseudonymous:
        out["name"] = [{"text": client.display_name}]
    return out


def _fhir_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", text)[:64]


def questionnaire_id(row: Instrument) -> str:
    return _fhir_id(f"{row.code}-{row.version}")


def questionnaire_url(row: Instrument, definition: MeasureDefinition) -> str:
    return definition.url or f"urn:bordin:questionnaire:{row.code}"


def canonical(row: Instrument, definition: MeasureDefinition) -> str:
    return f"{questionnaire_url(row, definition)}|{row.version}"


def definition(row: Instrument) -> MeasureDefinition:
    return instrument_from_dict(row.definition)


def questionnaire(row: Instrument) -> dict[str, Any]:
    """The Questionnaire a response answered: the imported resource as it came, or one built
    from a Bordin definition (its own wording)."""
    d = definition(row)
    source = getattr(row, "questionnaire_source", None)
    if source is not None:
        out = dict(source.resource)
    else:
        out = {
            "resourceType": "Questionnaire",
            "name": re.sub(r"[^A-Za-z0-9]", "", d.name.title())[:60] or "Questionnaire",
            "title": d.name,
            "status": "active",
            "description": d.description or None,
            "item": [_questionnaire_item(i) for i in d.items],
        }
        if d.loinc_panel:
            out["code"] = [{"system": LOINC, "code": d.loinc_panel}]
    out.update(id=questionnaire_id(row), url=questionnaire_url(row, d), version=row.version)
    return {k: v for k, v in out.items() if v is not None}


def _questionnaire_item(item: Any) -> dict[str, Any]:
    kind = "choice" if item.kind == "choice" else item.kind
    out: dict[str, Any] = {
        "linkId": item.id,
        "text": item.text or item.id,
        "type": kind,
        "required": bool(item.required),
    }
    if kind == "choice":
        out["answerOption"] = [
            {
                "valueCoding": {
                    "system": o.system or BORDIN_ANSWER,
                    "code": o.code or f"{o.value:g}",
                    "display": o.label or f"{o.value:g}",
                    "extension": [{"url": ORDINAL, "valueDecimal": o.value}],
                }
            }
            for o in item.options
        ]
    return out


def questionnaire_response(
    response: Response, pid: str, row: Instrument, d: MeasureDefinition
) -> dict[str, Any]:
    items = []
    for item in d.items:
        value = response.answers.get(item.id)
        if value is None or not item.takes_answer:
            continue
        answer = _answer(item, value)
        if answer is not None:
            entry = {"linkId": item.id, "answer": [answer]}
            if item.text:
                entry["text"] = item.text
            items.append(entry)
    return {
        "resourceType": "QuestionnaireResponse",
        "id": f"qr-{response.pk}",
        "questionnaire": canonical(row, d),
        "status": "completed",
        "subject": {"reference": f"Patient/{pid}"},
        "authored": response.submitted_at.isoformat(),
        "item": items,
    }


def _answer(item: Any, value: Any) -> dict[str, Any] | None:
    if item.kind == "choice":
        option = item.option_for(float(value))
        if option is None:
            return None
        return {
            "valueCoding": {
                "system": option.system or BORDIN_ANSWER,
                "code": option.code or f"{option.value:g}",
                "display": option.label or f"{option.value:g}",
            }
        }
    if item.kind == "boolean":
        return {"valueBoolean": bool(value)}
    if item.kind == "integer":
        return {"valueInteger": int(value)}
    if item.kind == "decimal":
        return {"valueDecimal": float(value)}
    return None  # free text stays in Bordin


def observation_code(row: Instrument, d: MeasureDefinition) -> dict[str, Any]:
    if d.loinc_total:
        return {"coding": [{"system": LOINC, "code": d.loinc_total}], "text": d.name}
    return {"coding": [{"system": BORDIN_INSTRUMENT, "code": row.code}], "text": d.name}


def observation(
    response: Response, pid: str, row: Instrument, d: MeasureDefinition
) -> dict[str, Any] | None:
    """The total score as an Observation; ``None`` for an unscored response."""
    if response.total is None:
        return None
    return {
        "resourceType": "Observation",
        "id": f"obs-{response.pk}",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                    }
                ]
            }
        ],
        "code": observation_code(row, d),
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": response.session.date.isoformat(),
        "issued": response.submitted_at.isoformat(),
        "valueQuantity": {
            "value": response.total,
            "system": "http://unitsofmeasure.org",
            "code": "{score}",
            "unit": "score",
        },
        "derivedFrom": [{"reference": f"QuestionnaireResponse/qr-{response.pk}"}],
    }


def responses_of(clients: Iterable[Client]) -> Iterator[tuple[Client, Response]]:
    """Every client response of these clients, oldest first, with what the resources need."""
    by_pk = {c.pk: c for c in clients}
    rows = (
        Response.objects.filter(session__episode__client_id__in=by_pk, respondent="client")
        .select_related("session__episode", "instrument__questionnaire_source")
        .order_by("session__episode__client_id", "submitted_at", "pk")
    )
    for r in rows:
        yield by_pk[r.session.episode.client_id], r


def resources(
    clients: Iterable[Client], pseudonymous: bool, code: str | None = None
) -> Iterator[dict[str, Any]]:
    """Patient, Questionnaire (once each), QuestionnaireResponse and Observation resources."""
    clients = list(clients)
    for c in clients:
        yield patient(c, pseudonymous)
    defs: dict[int, MeasureDefinition] = {}
    for c, r in responses_of(clients):
        row = r.instrument
        if row.pk not in defs:
            defs[row.pk] = definition(row)
            yield questionnaire(row)
        pid = patient_id(c, pseudonymous)
        yield questionnaire_response(r, pid, row, defs[row.pk])
        obs = observation(r, pid, row, defs[row.pk])
        if obs is not None:
            yield obs


def bundle(entries: Iterable[dict[str, Any]], kind: str = "collection") -> dict[str, Any]:
    listed = [
        {"fullUrl": f"urn:bordin:{e['resourceType']}/{e['id']}", "resource": e} for e in entries
    ]
    out: dict[str, Any] = {"resourceType": "Bundle", "type": kind, "entry": listed}
    if kind == "searchset":
        out["total"] = len(listed)
    return out
