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


def test_course_is_interim_without_episode_endings_and_finished_with_them() -> None:
    from bordin.measures.instruments import builtin_registry
    from bordin.measures.outcomes import paired_from_matrices
    from bordin.measures.series import SeriesMatrix

    frame = long(
        [
            ("a", 1, "phq9", 16),
            ("a", 1, "gad7", 12),
            ("a", 4, "phq9", 6),
            ("a", 4, "gad7", 5),
            ("b", 1, "phq9", 16),
            ("b", 1, "gad7", 12),
            ("b", 3, "phq9", 15),
            ("b", 3, "gad7", 11),
        ]
    )
    reg = builtin_registry()

    def m(code: str) -> SeriesMatrix:
        return SeriesMatrix.from_long(frame.filter(pl.col("measure") == code))

    plain = paired_from_matrices(m("phq9"), m("gad7"), phq9=reg["phq9"], gad7=reg["gad7"])
    assert plain.table.get_column("course").to_list() == ["interim", "interim"]
    known = paired_from_matrices(
        m("phq9"), m("gad7"), phq9=reg["phq9"], gad7=reg["gad7"], finished={"a": True}
    )
    assert known.table.get_column("course").to_list() == ["finished", "interim"]


def test_course_status_needs_an_ending_and_two_treatment_contacts() -> None:
    from bordin.measures.outcomes import course_status

    assert course_status(True, 2) == "finished"
    assert course_status(True, 1) == "interim"  # one treatment contact is not a course
    assert course_status(False, 12) == "interim"  # still in treatment
    assert course_status(None, 12) == "interim"  # long data: nothing known about the end


def test_own_first_last_pairing_option() -> None:
    from bordin.measures.instruments import builtin_registry
    from bordin.measures.outcomes import paired_from_matrices
    from bordin.measures.series import SeriesMatrix

    # PHQ-9 at 1, 2, 5; GAD-7 at 2, 3, 4: only session 2 has both, so the same-session rule
    # excludes the client, while each measure's own first and last gives 16 -> 6 and 12 -> 5.
    frame = long(
        [
            ("a", 1, "phq9", 16),
            ("a", 2, "phq9", 15),
            ("a", 5, "phq9", 6),
            ("a", 2, "gad7", 12),
            ("a", 3, "gad7", 9),
            ("a", 4, "gad7", 5),
        ]
    )
    reg = builtin_registry()

    def m(code: str) -> SeriesMatrix:
        return SeriesMatrix.from_long(frame.filter(pl.col("measure") == code))

    same = paired_from_matrices(m("phq9"), m("gad7"), phq9=reg["phq9"], gad7=reg["gad7"])
    assert same.table.height == 0
    own = paired_from_matrices(
        m("phq9"), m("gad7"), phq9=reg["phq9"], gad7=reg["gad7"], pairing="own_first_last"
    )
    row = own.table.row(0, named=True)
    assert (row["first_session"], row["last_session"]) == (1, 5)
    assert row["recovered"] and row["reliable_recovery"]
    with pytest.raises(ValueError, match="pairing must be"):
        paired_from_matrices(
            m("phq9"),
            m("gad7"),
            phq9=reg["phq9"],
            gad7=reg["gad7"],
            pairing="x",  # type: ignore[arg-type]
        )


def test_summary_labels_outcomes_interim_and_gives_intervals(tmp_path: object) -> None:
    from bordin.measures.batch import analyze
    from bordin.measures.instruments import builtin_registry
    from bordin.measures.synth import synthesize

    data = synthesize(80, seed=3).select("client_id", "session", "measure", "score")
    data = data.with_columns(pl.col("measure").cast(pl.Enum(sorted(builtin_registry()))))
    summary = analyze(data, builtin_registry()).summary
    assert summary["outcomes"]["course"] == "interim"
    low, high = summary["outcomes"]["reliable_recovery_rate_ci"]
    assert low <= summary["outcomes"]["reliable_recovery_rate"] <= high
