from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bordin.measures.instruments import (
    DefinitionError,
    ScoringError,
    builtin_registry,
    load_definitions,
    parse_definitions,
    registry,
)

BDI = """
[measures.bdi]
direction = "lower_is_better"
min = 0
max = 63
reliable_change = 7
caseness = 14
role = "outcome"
"""


def test_builtins_are_present_and_keyed_by_loinc() -> None:
    reg = builtin_registry()
    assert set(reg) >= {"alliance", "wellbeing", "phq9", "gad7"}
    assert reg.by_loinc("44249-1") is reg["phq9"]
    assert reg.by_loinc("44261-6") is reg["phq9"]
    assert reg.by_loinc("70274-6") is reg["gad7"]
    assert reg.by_loinc("nope") is None


def test_published_facts() -> None:
    reg = builtin_registry()
    phq, gad = reg["phq9"], reg["gad7"]
    assert (phq.min, phq.max, phq.caseness, phq.reliable_change) == (0, 27, 10, 6)
    assert (gad.min, gad.max, gad.caseness, gad.reliable_change) == (0, 21, 8, 4)
    assert [i.id for i in phq.items][-1] == "44260-8"
    assert phq.items[-1].risk_at == 1
    assert len(phq.items) == 9 and len(gad.items) == 7
    assert phq.band(4) == "minimal" and phq.band(10) == "moderate" and phq.band(27) == "severe"
    assert gad.band(15) == "severe"
    # Scoring facts only: the repository carries no item wording for published instruments.
    assert all(item.text == "" for item in phq.items + gad.items)


def test_own_checkins_are_marked_not_validated() -> None:
    reg = builtin_registry()
    for code in ("alliance", "alliance_therapist", "wellbeing"):
        assert reg[code].validated is False
        assert all(item.text for item in reg[code].items)
    alliance = reg["alliance"]
    assert alliance.role == "alliance" and alliance.rupture_threshold == 1.5
    assert {i.part for i in alliance.items if i.part} == {"goals", "tasks", "bond", "overall"}


def test_phq9_scoring_and_risk_item() -> None:
    phq = builtin_registry()["phq9"]
    answers = {item.id: 1 for item in phq.items}
    score = phq.score(answers)
    assert score.total == 9 and score.risk_items == ("44260-8",)
    answers["44260-8"] = 0
    assert phq.score(answers).risk_items == ()


def test_alliance_mean_ignores_free_text() -> None:
    alliance = builtin_registry()["alliance"]
    score = alliance.score({"goals": 7, "tasks": 8, "bond": 9, "overall": 8, "better": "more time"})
    assert score.total == 8.0


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"goals": 7, "tasks": 8, "bond": 9}, "'overall' is not answered"),
        ({"goals": 7, "tasks": 8, "bond": 9, "overall": 11}, "not one of"),
        ({"goals": "x", "tasks": 8, "bond": 9, "overall": 1}, "needs a number"),
        ({"goals": 1, "tasks": 8, "bond": 9, "overall": 1, "extra": 3}, "unknown item"),
    ],
)
def test_scoring_errors_say_what_to_fix(answers: dict[str, object], message: str) -> None:
    with pytest.raises(ScoringError, match=message):
        builtin_registry()["alliance"].score(answers)  # type: ignore[arg-type]


def test_user_definitions_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "measures.toml"
    path.write_text(BDI, encoding="utf-8")
    reg = registry(path)
    bdi = reg["bdi"]
    assert bdi.lower_is_better and bdi.caseness == 14
    assert bdi.effective_sudden_gain_cutoff == 7  # defaults to the reliable-change threshold
    assert "phq9" in reg


def test_reliable_change_derived_from_reliability_and_sd() -> None:
    text = BDI.replace("reliable_change = 7", "reliability = 0.9\nsd = 8.1")
    bdi = parse_definitions(text, "x.toml")["bdi"]
    assert bdi.reliable_change == pytest.approx(1.96 * math.sqrt(2) * 8.1 * math.sqrt(0.1))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('direction = "lower_is_better"', 'direction = "down"'), "'direction' must be"),
        (("max = 63", "max = -1"), "must be below"),
        (("caseness = 14", "caseness = 99"), "outside"),
        (("reliable_change = 7", "reliability = 0.9"), "give both"),
        (("reliable_change = 7", "reliable_change = -1"), "must be positive"),
        (('role = "outcome"', 'role = "other"'), "'role' must be"),
        (("min = 0", 'min = "zero"'), "must be a number"),
    ],
)
def test_bad_definitions_name_the_problem(change: tuple[str, str], message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        parse_definitions(BDI.replace(*change), "x.toml")


def test_unreadable_or_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="cannot read"):
        load_definitions(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[measures.bdi\n", encoding="utf-8")
    with pytest.raises(DefinitionError, match="not valid TOML"):
        load_definitions(bad)
    empty = tmp_path / "empty.toml"
    empty.write_text("title = 'x'\n", encoding="utf-8")
    with pytest.raises(DefinitionError, match=r"no \[measures\.CODE\]"):
        load_definitions(empty)


def test_overrides_check_codes() -> None:
    reg = builtin_registry().with_overrides(rupture_threshold={"alliance": 2.0})
    assert reg["alliance"].rupture_threshold == 2.0
    with pytest.raises(DefinitionError, match="unknown measure code 'nope'"):
        builtin_registry().with_overrides(sudden_gain_cutoff={"nope": 1.0})


@given(st.lists(st.integers(0, 10), min_size=4, max_size=4))
def test_alliance_score_is_the_item_mean_within_range(values: list[int]) -> None:
    alliance = builtin_registry()["alliance"]
    answers = dict(zip(["goals", "tasks", "bond", "overall"], values, strict=True))
    total = alliance.score(answers).total
    assert total == pytest.approx(sum(values) / 4)
    assert alliance.in_range(total)


@given(st.lists(st.integers(0, 3), min_size=9, max_size=9))
def test_phq9_total_is_the_sum_and_band_is_monotone(values: list[int]) -> None:
    phq = builtin_registry()["phq9"]
    total = phq.score(dict(zip([i.id for i in phq.items], values, strict=True))).total
    assert total == sum(values)
    order = ["minimal", "mild", "moderate", "moderately severe", "severe"]
    assert order.index(phq.band(total)) <= order.index(phq.band(min(27, total + 1)))


def test_reverse_keyed_items_are_flipped() -> None:
    text = """
[measures.mini]
direction = "higher_is_better"
min = 0
max = 8
[[measures.mini.items]]
id = "a"
options = [{value = 0}, {value = 1}, {value = 2}, {value = 3}, {value = 4}]
[[measures.mini.items]]
id = "b"
reverse = true
options = [{value = 0}, {value = 1}, {value = 2}, {value = 3}, {value = 4}]
"""
    mini = parse_definitions(text, "mini.toml")["mini"]
    assert mini.score({"a": 4, "b": 0}).total == 8
    assert mini.score({"a": 0, "b": 4}).total == 0
