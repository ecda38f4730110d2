"""FHIR Questionnaires for tests: real LOINC codes, placeholder wording only.

Bordin ships no item text of any published instrument, so every text here is a placeholder
("Placeholder question 3"), never the instrument's wording.
"""

from __future__ import annotations

import json
from typing import Any

LOINC = "http://loinc.org"
ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
PHQ9_ITEMS = (
    "44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3",
    "44260-8",
)  # fmt: skip
GAD7_ITEMS = ("69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7")
ANSWERS = (("LA6568-5", 0), ("LA6569-3", 1), ("LA6570-1", 2), ("LA6571-9", 3))


def option(code: str, score: float | None, display: str = "") -> dict[str, Any]:
    coding: dict[str, Any] = {"system": LOINC, "code": code, "display": display or f"Answer {code}"}
    if score is not None:
        coding["extension"] = [{"url": ORDINAL, "valueDecimal": score}]
    return {"valueCoding": coding}


def coded_questionnaire(
    panel: str,
    items: tuple[str, ...],
    *,
    total: str | None = None,
    version: str = "1",
    name: str = "PlaceholderPanel",
    answers: tuple[tuple[str, int], ...] = ANSWERS,
) -> dict[str, Any]:
    """A Questionnaire with a panel's LOINC codes and placeholder wording."""
    q_items: list[dict[str, Any]] = [
        {
            "linkId": f"q{k}",
            "code": [{"system": LOINC, "code": code}],
            "text": f"Placeholder question {k} (not the instrument's wording)",
            "type": "choice",
            "required": True,
            "answerOption": [option(c, s, f"Placeholder answer {s}") for c, s in answers],
        }
        for k, code in enumerate(items, start=1)
    ]
    if total:
        q_items.append(
            {
                "linkId": "total",
                "code": [{"system": LOINC, "code": total}],
                "text": "Placeholder total",
                "type": "integer",
                "readOnly": True,
            }
        )
    return {
        "resourceType": "Questionnaire",
        "id": name.lower(),
        "url": f"https://example.org/Questionnaire/{name.lower()}",
        "version": version,
        "name": name,
        "title": f"{name} (placeholder wording)",
        "status": "active",
        "code": [{"system": LOINC, "code": panel}],
        "item": [
            {
                "linkId": "intro",
                "type": "display",
                "text": "Placeholder introduction (not the instrument's wording)",
            },
            {"linkId": "g1", "type": "group", "text": "Placeholder group", "item": q_items},
        ],
    }


def phq9(**kw: Any) -> dict[str, Any]:
    return coded_questionnaire("44249-1", PHQ9_ITEMS, total="44261-6", name="PlaceholderPHQ9", **kw)


def gad7(**kw: Any) -> dict[str, Any]:
    return coded_questionnaire("69737-5", GAD7_ITEMS, total="70274-6", name="PlaceholderGAD7", **kw)


def as_bytes(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def conditional() -> dict[str, Any]:
    """An unscored Questionnaire with every answer type and an enableWhen (placeholders)."""
    return {
        "resourceType": "Questionnaire",
        "name": "Placeholder conditional",
        "status": "draft",
        "item": [
            {"linkId": "intro", "type": "display", "text": "Placeholder introduction"},
            {"linkId": "a", "type": "boolean", "text": "Placeholder yes/no", "required": True},
            {
                "linkId": "b",
                "type": "integer",
                "text": "Placeholder how many",
                "required": True,
                "enableWhen": [{"question": "a", "operator": "=", "answerBoolean": True}],
            },
            {"linkId": "d", "type": "decimal", "text": "Placeholder how much"},
            {"linkId": "c", "type": "string", "text": "Placeholder words"},
            {"linkId": "t", "type": "text", "text": "Placeholder longer words"},
        ],
    }
