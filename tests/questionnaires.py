"""FHIR Questionnaires for tests: real LOINC codes, placeholder wording only.

Bordin ships no item text of any published instrument, so every text here is a placeholder
("Placeholder question 3"), never the instrument's wording.
"""

from __future__ import annotations

import json
from typing import Any

from bordin.web.instruments.placeholder import (
    GAD7_ITEMS,
    GAD7_PANEL,
    GAD7_TOTAL,
    PHQ9_ITEMS,
    PHQ9_PANEL,
    PHQ9_TOTAL,
    coded_questionnaire,
    option,
)

__all__ = ["GAD7_ITEMS", "PHQ9_ITEMS", "as_bytes", "conditional", "gad7", "option", "phq9"]


def phq9(**kw: Any) -> dict[str, Any]:
    return coded_questionnaire(PHQ9_PANEL, PHQ9_ITEMS, total=PHQ9_TOTAL, name="PlaceholderPHQ9",
                               **kw)  # fmt: skip


def gad7(**kw: Any) -> dict[str, Any]:
    return coded_questionnaire(GAD7_PANEL, GAD7_ITEMS, total=GAD7_TOTAL, name="PlaceholderGAD7",
                               **kw)  # fmt: skip


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
