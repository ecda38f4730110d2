"""FHIR Questionnaires with real LOINC codes and PLACEHOLDER wording (demo and tests).

Bordin ships no item text of any published questionnaire. These Questionnaires carry PHQ-9's
or GAD-7's codes (so that Bordin's built-in scoring facts apply) with placeholder text in
place of every question and answer; a clinic imports the real wording from the instrument's
owner (``bordin import-questionnaire``).
"""

from __future__ import annotations

from typing import Any

LOINC = "http://loinc.org"
ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
PHQ9_PANEL, PHQ9_TOTAL = "44249-1", "44261-6"
PHQ9_ITEMS = (
    "44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3",
    "44260-8",
)  # fmt: skip
GAD7_PANEL, GAD7_TOTAL = "69737-5", "70274-6"
GAD7_ITEMS = ("69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7")
#: LOINC answer list LL358-3 (codes only) with each answer's score.
ANSWERS = (("LA6568-5", 0), ("LA6569-3", 1), ("LA6570-1", 2), ("LA6571-9", 3))


def option(code: str, score: float | None, display: str = "") -> dict[str, Any]:
    """An ``answerOption`` with a LOINC coding and, unless ``score`` is None, its ordinalValue."""
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
    title: str = "",
    answers: tuple[tuple[str, int], ...] = ANSWERS,
) -> dict[str, Any]:
    """A Questionnaire with a panel's LOINC codes and placeholder wording only."""
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
        "title": title or f"{name} (placeholder wording)",
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


DEMO_TITLE = "PHQ-9 codes, PLACEHOLDER wording (demo only, not the real questionnaire)"
DEMO_LICENCE = (
    "Demo only: every question and answer is placeholder text, not the published PHQ-9. The "
    "codes are PHQ-9's (LOINC 44249-1), so Bordin scores it with PHQ-9's facts. To use PHQ-9 "
    "for real, import its wording as a FHIR Questionnaire from its owner."
)


def demo_phq9() -> dict[str, Any]:
    """The demo clinic's PHQ-9-coded Questionnaire, clearly labelled as placeholder wording."""
    return coded_questionnaire(
        PHQ9_PANEL, PHQ9_ITEMS, total=PHQ9_TOTAL, name="DemoPHQ9Placeholder", title=DEMO_TITLE
    )
