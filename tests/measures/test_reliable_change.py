from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bordin.measures.reliable_change import (
    change_table,
    classify_change,
    jacobson_truax_threshold,
    rci,
    s_diff,
    standard_error,
)
from bordin.measures.series import SeriesMatrix


def test_hand_worked_jacobson_truax() -> None:
    # SD 7.5, r = 0.88: SE = 7.5 * sqrt(0.12) = 2.598; S_diff = 3.674; 1.96 * S_diff = 7.20.
    assert standard_error(7.5, 0.88) == pytest.approx(2.5981, abs=1e-4)
    assert s_diff(7.5, 0.88) == pytest.approx(3.6742, abs=1e-4)
    assert jacobson_truax_threshold(7.5, 0.88) == pytest.approx(7.2015, abs=1e-4)
    # An RCI of exactly 1.96 corresponds to a change of exactly the threshold.
    assert rci(20, 14, threshold=6) == pytest.approx(-1.96)


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (20, 8, "recovered"),  # fell 12 and left the clinical range
        (20, 14, "improved"),  # fell exactly 6: reliable, still a case
        (20, 15, "unchanged"),  # fell 5
        (9, 3, "improved"),  # reliable, but was not a case at the start
        (8, 14, "deteriorated"),  # rose exactly 6
        (8, 13, "unchanged"),
    ],
)
def test_categories_phq9(before: float, after: float, expected: str) -> None:
    got = classify_change(before, after, threshold=6, lower_is_better=True, caseness=10)
    assert got == expected


def test_higher_is_better_flips() -> None:
    assert classify_change(4, 8, threshold=2, lower_is_better=False, caseness=5) == "recovered"
    assert classify_change(8, 4, threshold=2, lower_is_better=False) == "deteriorated"


def test_floating_point_noise_does_not_decide() -> None:
    # 20.1 - 14.1 is 6.000000000000002 in binary floating point: still exactly 6 points.
    assert classify_change(20.1, 14.1, threshold=6, lower_is_better=True) == "improved"
    assert classify_change(14.1, 20.1, threshold=6, lower_is_better=True) == "deteriorated"


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="reliability"):
        standard_error(5, 1.0)
    with pytest.raises(ValueError, match="sd"):
        standard_error(0, 0.5)


def test_change_table_first_versus_last() -> None:
    m = SeriesMatrix.from_scores([None, 20, 15, None, 9, None])
    t = change_table(m, threshold=6, lower_is_better=True, caseness=10)
    row = t.row(0, named=True)
    assert (row["first_session"], row["last_session"]) == (2, 5)
    assert (row["baseline"], row["final"], row["change"]) == (20, 9, -11)
    assert row["category"] == "recovered"
    assert row["rci"] == pytest.approx(-11 / (6 / 1.96), abs=1e-3)
    assert (
        change_table(SeriesMatrix.from_scores([5]), threshold=6, lower_is_better=True).height == 0
    )


@given(
    st.floats(0.1, 50),
    st.floats(0.0, 0.99),
    st.floats(0.1, 50),
    st.floats(0.0, 0.99),
)
def test_threshold_grows_with_sd_and_shrinks_with_reliability(
    sd1: float, r1: float, sd2: float, r2: float
) -> None:
    if sd1 <= sd2 and r1 >= r2:
        assert jacobson_truax_threshold(sd1, r1) <= jacobson_truax_threshold(sd2, r2) + 1e-12
    assert jacobson_truax_threshold(sd1, r1) == pytest.approx(1.96 * math.sqrt(2 * (1 - r1)) * sd1)


scores = st.integers(0, 27)


@given(scores, scores, st.integers(1, 10), st.one_of(st.none(), st.integers(1, 27)))
def test_mirror_symmetry(before: int, after: int, threshold: int, caseness: int | None) -> None:
    """Reflecting the scale (x -> 27 - x) and the direction gives the same category."""
    direct = classify_change(
        before, after, threshold=threshold, lower_is_better=True, caseness=caseness
    )
    mirrored = classify_change(
        27 - before,
        27 - after,
        threshold=threshold,
        lower_is_better=False,
        caseness=None if caseness is None else 27 - caseness,
    )
    assert direct == mirrored


@given(scores, scores, st.integers(1, 10))
def test_swapping_before_and_after_swaps_direction(before: int, after: int, t: int) -> None:
    forward = classify_change(before, after, threshold=t, lower_is_better=True)
    backward = classify_change(after, before, threshold=t, lower_is_better=True)
    swap = {"improved": "deteriorated", "deteriorated": "improved", "unchanged": "unchanged"}
    assert backward == swap[forward]


@given(st.lists(st.lists(st.one_of(st.none(), scores), min_size=1, max_size=8), min_size=1))
def test_table_matches_per_client_rule(rows: list[list[int | None]]) -> None:
    width = max(len(r) for r in rows)
    values = np.array(
        [[np.nan if v is None else v for v in r] + [np.nan] * (width - len(r)) for r in rows],
        dtype=float,
    )
    import polars as pl

    m = SeriesMatrix(
        client_ids=pl.Series("client_id", list(range(len(rows)))),
        values=values,
        last_session=np.array(
            [max([i + 1 for i, v in enumerate(r) if v is not None] or [0]) for r in rows]
        ),
    )
    table = {
        r["client_id"]: r
        for r in change_table(m, threshold=6, lower_is_better=True, caseness=10).iter_rows(
            named=True
        )
    }
    for cid, r in enumerate(rows):
        present = [(i + 1, v) for i, v in enumerate(r) if v is not None]
        if len(present) < 2:
            assert cid not in table
            continue
        (s0, x0), (s1, x1) = present[0], present[-1]
        got = table[cid]
        assert (got["first_session"], got["last_session"]) == (s0, s1)
        assert got["category"] == classify_change(
            x0, x1, threshold=6, lower_is_better=True, caseness=10
        )
