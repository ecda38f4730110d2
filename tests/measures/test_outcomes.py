from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bordin.measures.outcomes import paired_outcomes


def long(rows: list[tuple[str, int, str, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["client_id", "session", "measure", "score"], orient="row")


def one(rows: list[tuple[str, int, str, float]]) -> dict[str, object]:
    return paired_outcomes(long(rows)).table.row(0, named=True)


def test_recovery_with_reliable_improvement() -> None:
    r = one([("a", 1, "phq9", 16), ("a", 1, "gad7", 12), ("a", 6, "phq9", 7), ("a", 6, "gad7", 5)])
    assert r["case_at_start"] and r["recovered"] and r["reliable_improvement"]
    assert r["reliable_recovery"] and not r["reliable_deterioration"]


def test_uses_first_and_last_session_with_both_measures() -> None:
    rows = [
        ("a", 1, "phq9", 20),  # no GAD-7 at session 1: not a paired session
        ("a", 2, "phq9", 12),
        ("a", 2, "gad7", 9),
        ("a", 5, "phq9", 8),
        ("a", 5, "gad7", 6),
        ("a", 6, "phq9", 2),  # no GAD-7 at session 6 either
    ]
    r = one(rows)
    assert (r["first_session"], r["last_session"]) == (2, 5)
    # PHQ-9 fell 4 and GAD-7 fell 3: below both thresholds.
    assert r["recovered"] and not r["reliable_improvement"] and not r["reliable_recovery"]


def test_improvement_cancelled_by_deterioration_on_the_other_measure() -> None:
    r = one([("a", 1, "phq9", 20), ("a", 1, "gad7", 5), ("a", 3, "phq9", 10), ("a", 3, "gad7", 9)])
    assert not r["reliable_improvement"] and r["reliable_deterioration"]


def test_not_a_case_at_start_cannot_recover() -> None:
    r = one([("a", 1, "phq9", 9), ("a", 1, "gad7", 7), ("a", 3, "phq9", 1), ("a", 3, "gad7", 0)])
    assert not r["case_at_start"] and not r["recovered"] and r["reliable_improvement"]


def test_clients_with_fewer_than_two_paired_sessions_are_excluded_and_counted() -> None:
    data = long(
        [
            ("a", 1, "phq9", 16),
            ("a", 1, "gad7", 12),
            ("b", 1, "phq9", 16),
            ("b", 2, "gad7", 12),
            ("c", 1, "alliance", 7),
        ]
    )
    result = paired_outcomes(data)
    assert result.table.height == 0 and result.excluded_clients == 2


phq = st.integers(0, 27)
gad = st.integers(0, 21)


@settings(max_examples=300)
@given(phq, gad, phq, gad)
def test_rules_hold(p0: int, g0: int, p1: int, g1: int) -> None:
    r = one(
        [("a", 1, "phq9", p0), ("a", 1, "gad7", g0), ("a", 2, "phq9", p1), ("a", 2, "gad7", g1)]
    )
    assert r["case_at_start"] == (p0 >= 10 or g0 >= 8)
    assert r["recovered"] == (r["case_at_start"] and not (p1 >= 10 or g1 >= 8))
    assert r["reliable_deterioration"] == (p1 - p0 >= 6 or g1 - g0 >= 4)
    assert r["reliable_improvement"] == (
        (p0 - p1 >= 6 or g0 - g1 >= 4) and not r["reliable_deterioration"]
    )
    assert r["reliable_recovery"] == (r["recovered"] and r["reliable_improvement"])
    assert not (r["reliable_improvement"] and r["reliable_deterioration"])


def test_needs_thresholds() -> None:
    from dataclasses import replace

    from bordin.measures.instruments import builtin_registry

    bare = replace(builtin_registry()["phq9"], caseness=None)
    with pytest.raises(ValueError, match="caseness"):
        paired_outcomes(long([("a", 1, "phq9", 1)]), phq9=bare)
