"""FHIR Questionnaire import: conversion, scoring by built-in facts, enableWhen and errors.

Questionnaires come from :mod:`tests.questionnaires`: real LOINC codes, placeholder wording.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bordin.measures.instruments import Condition, ScoringError
from bordin.measures.questionnaire import MAX_BYTES, QuestionnaireError, parse_questionnaire
from tests.questionnaires import GAD7_ITEMS, PHQ9_ITEMS, as_bytes, gad7, option, phq9


def load(doc: Any) -> Any:
    return parse_questionnaire(as_bytes(doc), "test.json")


def problems(doc: Any = None, raw: bytes | None = None) -> list[str]:
    with pytest.raises(QuestionnaireError) as caught:
        parse_questionnaire(raw if raw is not None else as_bytes(doc), "test.json")
    return caught.value.problems


def test_phq9_coded_questionnaire_gets_the_builtin_facts() -> None:
    imported = load(phq9())
    d = imported.definition
    assert imported.facts == "phq9" and d.code == "phq9"
    assert (d.min, d.max, d.caseness, d.reliable_change) == (0, 27, 10, 6)
    assert d.lower_is_better and d.validated and d.source == "fhir"
    assert d.band(12) == "moderate"
    asked = [i for i in d.items if i.kind == "choice"]
    assert [i.code for i in asked] == list(PHQ9_ITEMS)
    # The read-only total item is not asked: Bordin computes the total.
    assert "total" not in {i.id for i in d.items}
    # Item 9 (44260-8) is the risk item, at any answer above 0.
    assert [(i.code, i.risk_at) for i in asked if i.risk_at is not None] == [("44260-8", 1.0)]
    assert d.version.startswith("1+")
    assert any("44249-1" in note for note in imported.notes)


def test_phq9_total_and_risk_hand_worked() -> None:
    d = load(phq9()).definition
    answers = {f"q{k}": v for k, v in zip(range(1, 10), (3, 2, 2, 1, 1, 0, 0, 1, 1), strict=True)}
    score = d.score(answers)
    assert score.total == 11  # 3+2+2+1+1+0+0+1+1
    assert score.risk_items == ("q9",)
    assert d.is_case(score.total)
    assert d.score({**answers, "q9": 0}).risk_items == ()


def test_answers_are_matched_by_score_not_by_code() -> None:
    """One published GAD-7 codes item 68509-9's score 2 as LA18938-3."""
    doc = gad7()
    item2 = doc["item"][1]["item"][1]
    assert item2["code"][0]["code"] == "68509-9"
    item2["answerOption"][2] = option("LA18938-3", 2)
    d = load(doc).definition
    assert d.item("q2").option_for(2.0).code == "LA18938-3"
    assert d.score({f"q{k}": 2 for k in range(1, 8)}).total == 14
    assert len([i for i in d.items if i.kind == "choice"]) == len(GAD7_ITEMS)


def test_missing_weight_falls_back_to_the_facts_answer_code() -> None:
    doc = phq9()
    for item in doc["item"][1]["item"][:9]:
        for opt in item["answerOption"]:
            del opt["valueCoding"]["extension"]
    d = load(doc).definition
    assert [o.value for o in d.item("q1").options] == [0, 1, 2, 3]


def test_unknown_questionnaire_with_weights_is_summed() -> None:
    doc = coded_unknown(weights=True)
    imported = load(doc)
    d = imported.definition
    assert imported.facts is None and not d.unscored
    assert d.code == "q-placeholder-scale"
    assert (d.min, d.max) == (0, 4)
    assert d.score({"a": 2, "b": 1, "note": "x"}).total == 3
    assert any("sum of 2 weighted items" in n for n in imported.notes)


def test_unknown_questionnaire_without_weights_is_stored_unscored() -> None:
    imported = load(coded_unknown(weights=False))
    assert imported.definition.unscored
    assert any("Stored unscored" in n and "'a'" in n for n in imported.notes)
    with pytest.raises(ScoringError, match="no total"):
        imported.definition.score({"a": 0, "b": 1})


def coded_unknown(*, weights: bool) -> dict[str, Any]:
    def opts() -> list[dict[str, Any]]:
        return [option(f"c{k}", k if weights else None) for k in range(3)]

    return {
        "resourceType": "Questionnaire",
        "name": "Placeholder scale",
        "status": "draft",
        "item": [
            {"linkId": "a", "type": "choice", "text": "Placeholder A", "answerOption": opts()},
            {"linkId": "b", "type": "choice", "text": "Placeholder B", "answerOption": opts()},
            {"linkId": "note", "type": "string", "text": "Placeholder note"},
        ],
    }


def test_enable_when_is_honoured_in_scoring() -> None:
    doc = coded_unknown(weights=True)
    doc["item"][1]["enableWhen"] = [
        {"question": "a", "operator": "=", "answerCoding": {"code": "c2"}}
    ]
    d = load(doc).definition
    b = d.item("b")
    assert b.enable_when == (Condition("a", "=", 2.0),)
    # b is asked only when a is answered with c2 (score 2); otherwise it is not required...
    assert d.score({"a": 1}).total == 1
    # ...and an answer to it is ignored.
    assert d.score({"a": 1, "b": 2}).total == 1
    assert d.score({"a": 2, "b": 2}).total == 4
    with pytest.raises(ScoringError, match="'b' is not answered"):
        d.score({"a": 2})


@pytest.mark.parametrize(
    ("operator", "answer", "given", "expected"),
    [
        ("=", 2.0, 2, True),
        ("=", 2.0, 1, False),
        ("!=", 2.0, 1, True),
        ("!=", 2.0, None, True),
        (">", 1.0, 2, True),
        (">", 1.0, 1, False),
        ("<", 1.0, 0, True),
        ("<", 1.0, None, False),
        ("exists", True, 0, True),
        ("exists", True, None, False),
        ("exists", False, None, True),
        ("=", "yes", "yes", True),
    ],
)
def test_condition_operators(operator: Any, answer: Any, given: Any, expected: bool) -> None:
    assert Condition("x", operator, answer).holds(given) is expected


@given(st.floats(-100, 100), st.floats(-100, 100))
def test_condition_comparisons_agree_with_python(a: float, b: float) -> None:
    assert Condition("x", ">", b).holds(a) == (a > b)
    assert Condition("x", "<", b).holds(a) == (a < b)
    assert Condition("x", "!=", b).holds(a) != Condition("x", "=", b).holds(a)


@given(st.lists(st.integers(0, 3), min_size=9, max_size=9))
def test_phq9_total_is_the_sum_of_item_scores(scores: list[int]) -> None:
    d = PHQ9_DEFINITION
    score = d.score({f"q{k}": v for k, v in enumerate(scores, start=1)})
    assert score.total == sum(scores)
    assert d.in_range(score.total)
    assert bool(score.risk_items) == (scores[8] > 0)


PHQ9_DEFINITION = parse_questionnaire(as_bytes(phq9())).definition


def test_enable_behavior_any() -> None:
    doc = coded_unknown(weights=True)
    doc["item"][2]["enableWhen"] = [
        {"question": "a", "operator": ">", "answerInteger": 1},
        {"question": "b", "operator": "exists", "answerBoolean": True},
    ]
    doc["item"][2]["enableBehavior"] = "any"
    item = load(doc).definition.item("note")
    assert item.enabled({"a": 0, "b": 1})
    assert item.enabled({"a": 2})
    assert not item.enabled({"a": 0})


def test_new_content_is_a_new_version() -> None:
    first = load(phq9()).definition.version
    doc = phq9()
    doc["item"][0]["text"] = "Placeholder introduction, revised"
    assert load(doc).definition.version != first
    assert load(phq9()).definition.version == first


# --------------------------------------------------------------------------------- errors


def test_missing_link_id() -> None:
    doc = phq9()
    del doc["item"][1]["item"][2]["linkId"]
    found = problems(doc)
    assert any("item 'g1' item 3: has no linkId" in p for p in found), found


def test_duplicate_link_ids() -> None:
    doc = phq9()
    doc["item"][1]["item"][3]["linkId"] = "q1"
    found = problems(doc)
    assert any("item 'q1': linkId 'q1' is used twice" in p for p in found), found


def test_answer_without_value() -> None:
    doc = phq9()
    doc["item"][1]["item"][4]["answerOption"][1] = {"initialSelected": False}
    found = problems(doc)
    assert any("item 'q5': answer option 2 has no value" in p for p in found), found


def test_unsupported_item_type() -> None:
    doc = phq9()
    doc["item"][1]["item"].append({"linkId": "when", "type": "date", "text": "Placeholder"})
    found = problems(doc)
    assert any("item 'when': item type 'date' is not supported" in p for p in found), found


def test_repeating_item_is_refused() -> None:
    doc = phq9()
    doc["item"][1]["item"][0]["repeats"] = True
    assert any("item 'q1': 'repeats' is true" in p for p in problems(doc))


def test_file_over_5_mb() -> None:
    raw = b" " * MAX_BYTES + as_bytes(phq9())
    found = problems(raw=raw)
    assert found and "the limit is 5 MB" in found[0]


def test_invalid_json() -> None:
    found = problems(raw=b'{"resourceType": "Questionnaire",\n  "item": [}')
    assert found and found[0].startswith("not valid JSON") and "line 2" in found[0]


def test_not_a_questionnaire() -> None:
    assert "resourceType must be 'Questionnaire'" in problems({"resourceType": "Patient"})[0]


def test_panel_code_without_its_item_codes() -> None:
    doc = phq9()
    doc["item"][1]["item"][8]["code"] = [{"system": "http://loinc.org", "code": "00000-0"}]
    assert any("44260-8" in p for p in problems(doc))


def test_score_outside_the_facts_range() -> None:
    doc = phq9()
    doc["item"][1]["item"][0]["answerOption"].append(option("LA-X", 7))
    assert any("item 'q1': answer option 5 scores 7" in p for p in problems(doc))


def test_fhir_model_errors_name_the_item() -> None:
    doc = phq9()
    doc["item"][1]["item"][0]["required"] = "perhaps"
    found = problems(doc)
    assert any(p.startswith("item 'q1'") for p in found), found


def test_enable_when_on_unknown_item() -> None:
    doc = copy.deepcopy(coded_unknown(weights=True))
    doc["item"][1]["enableWhen"] = [{"question": "zz", "operator": "exists", "answerBoolean": True}]
    assert any("item 'b': enableWhen 1 refers to unknown item 'zz'" in p for p in problems(doc))


def test_every_problem_is_reported_at_once() -> None:
    doc = phq9()
    del doc["item"][1]["item"][2]["linkId"]
    doc["item"][1]["item"].append({"linkId": "when", "type": "date"})
    assert len(problems(doc)) >= 2
    assert json.loads(as_bytes(doc))  # the document itself is untouched JSON


def test_item_and_answer_translations() -> None:
    doc = phq9()
    translation = "http://hl7.org/fhir/StructureDefinition/translation"

    def ext(lang: str, text: str) -> dict[str, Any]:
        parts = [{"url": "lang", "valueCode": lang}, {"url": "content", "valueString": text}]
        return {"extension": [{"url": translation, "extension": parts}]}

    q1 = doc["item"][1]["item"][0]
    q1["_text"] = ext("cy", "Cwestiwn dalfan 1")
    q1["answerOption"][0]["valueCoding"]["_display"] = ext("cy", "Ateb dalfan 0")
    item = load(doc).definition.item("q1")
    assert item.text_for("cy-GB") == "Cwestiwn dalfan 1"
    assert item.text_for("en").startswith("Placeholder question 1")
    assert item.options[0].label_for("cy") == "Ateb dalfan 0"
    # The frozen copy keeps them.
    import dataclasses

    from bordin.measures.instruments import instrument_from_dict

    d = load(doc).definition
    assert instrument_from_dict(json.loads(json.dumps(dataclasses.asdict(d)))) == d
