"""Alliance rupture and repair detection: hand-worked cases, an oracle, and properties."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bordin.measures.ruptures import Rupture, detect, detect_scores, gumz_threshold
from bordin.measures.series import SeriesMatrix

T = 1.5
COLUMNS = ["client_id", "session", "previous_session", "drop", "status", "repair_session"]


def one(scores: list[float | None], threshold: float = T) -> list[tuple[int, str, int | None]]:
    """(session, status, repair_session) of each rupture in one series."""
    return [
        (r.session, r.status, r.repair_session) for r in detect_scores(scores, threshold=threshold)
    ]


# --- hand-worked cases -------------------------------------------------------------------------


def test_drop_of_exactly_the_threshold_counts() -> None:
    assert detect_scores([7.8, 6.3], threshold=1.5) == [
        Rupture(session=2, previous_session=1, drop=1.5, status="open", repair_session=None)
    ]


def test_rounding_absorbs_floating_point_noise_at_the_threshold() -> None:
    assert 8.2 - 6.7 < 1.5  # 1.4999999999999991 in binary floating point
    assert detect_scores([8.2, 6.7], threshold=1.5) == [
        Rupture(session=2, previous_session=1, drop=1.5, status="open", repair_session=None)
    ]
    # the same noise on the repair side: 6.7 -> 8.2 is a rise of exactly the threshold
    assert one([9.0, 6.7, 8.2]) == [(2, "repaired", 3)]


def test_drop_just_below_the_threshold_is_not_a_rupture() -> None:
    assert detect_scores([8.0, 6.6], threshold=1.5) == []


def test_rises_and_small_dips_are_not_ruptures() -> None:
    assert detect_scores([5.0, 9.0, 8.0, 7.0, 10.0], threshold=1.5) == []


def test_previous_score_falls_back_to_two_sessions_earlier() -> None:
    (r,) = detect_scores([8.0, None, 6.0], threshold=T)
    assert (r.session, r.previous_session, r.drop) == (3, 1, 2.0)


def test_session_before_wins_over_two_sessions_before() -> None:
    # s-1 exists (6.5), so s-2 (9.0) is not used: 6.5 -> 6.0 is no rupture.
    assert detect_scores([9.0, 6.5, 6.0], threshold=T) == [
        Rupture(session=2, previous_session=1, drop=2.5, status="open", repair_session=None)
    ]


def test_no_comparison_when_both_earlier_sessions_are_missing() -> None:
    assert detect_scores([9.0, None, None, 2.0], threshold=T) == []
    assert detect_scores([None, None, 2.0], threshold=T) == []


def test_repair_by_returning_to_the_previous_level() -> None:
    assert one([8.0, 6.0, 6.5, 8.0]) == [(2, "repaired", 4)]


def test_repair_by_rising_by_the_threshold_without_reaching_the_previous_level() -> None:
    # 9 -> 6 is a drop of 3; 7.5 is still below 9 but 1.5 above the low point.
    assert one([9.0, 6.0, 7.5]) == [(2, "repaired", 3)]
    # a rise of 1.4 from the low point, still below 9: not yet a repair
    assert one([9.0, 6.0, 7.4, 7.4, 7.4]) == [(2, "unrepaired", None)]


def test_repair_exactly_at_the_previous_level_counts() -> None:
    assert one([7.8, 6.3, 7.8]) == [(2, "repaired", 3)]


def test_repair_at_s_plus_3_counts_and_at_s_plus_4_does_not() -> None:
    assert one([8.0, 6.0, 6.0, 6.0, 8.0]) == [(2, "repaired", 5)]
    assert one([8.0, 6.0, 6.0, 6.0, 6.0, 8.0]) == [(2, "unrepaired", None)]


def test_repair_through_missing_sessions_in_the_window() -> None:
    assert one([8.0, 6.0, None, None, 8.0]) == [(2, "repaired", 5)]


def test_first_repair_session_is_reported() -> None:
    assert one([8.0, 6.0, 8.0, 9.0]) == [(2, "repaired", 3)]


def test_unrepaired_versus_open_depends_on_the_last_session() -> None:
    assert one([8.0, 6.0, 6.0]) == [(2, "open", None)]  # last = 3 < 2 + 3
    assert one([8.0, 6.0, 6.0, 6.0]) == [(2, "open", None)]  # last = 4 < 5
    assert one([8.0, 6.0, 6.0, 6.0, 6.0]) == [(2, "unrepaired", None)]  # last = 5
    assert one([8.0, 6.0, None, None, 6.0]) == [(2, "unrepaired", None)]
    assert one([8.0, 6.0, None, None, None, 6.0]) == [(2, "unrepaired", None)]


def test_two_ruptures_in_one_series() -> None:
    scores: list[float | None] = [8.0, 6.0, 8.5, 8.5, 5.0, 5.5, 6.0, 6.0, 9.0]
    assert detect_scores(scores, threshold=T) == [
        Rupture(session=2, previous_session=1, drop=2.0, status="repaired", repair_session=3),
        Rupture(session=5, previous_session=4, drop=3.5, status="unrepaired", repair_session=None),
    ]


def test_further_drop_during_an_open_rupture_is_its_own_rupture() -> None:
    # 9 -> 7 (rupture at 2); 7 -> 5 (rupture at 3, against 7); 7 at session 4 repairs only
    # the second one (back to its previous level 7, and a rise of 2 from 5).
    assert one([9.0, 7.0, 5.0, 7.0]) == [(2, "open", None), (3, "repaired", 4)]


def test_repair_session_is_null_unless_repaired() -> None:
    frame = detect(SeriesMatrix.from_scores([8.0, 6.0, 6.0, 6.0, 6.0, 4.0]), threshold=T)
    assert frame.get_column("status").to_list() == ["unrepaired", "open"]
    assert frame.get_column("repair_session").to_list() == [None, None]


def test_empty_and_degenerate_inputs_give_an_empty_frame_with_the_schema() -> None:
    empty = SeriesMatrix.from_long(
        pl.DataFrame(
            {"client_id": [], "session": [], "score": []},
            schema={"client_id": pl.String, "session": pl.Int64, "score": pl.Float64},
        )
    )
    for matrix in (
        empty,
        SeriesMatrix.from_scores([]),
        SeriesMatrix.from_scores([5.0]),
        SeriesMatrix.from_scores([5.0, 6.0, 7.0]),
    ):
        out = detect(matrix, threshold=T)
        assert out.height == 0
        assert out.columns == COLUMNS
        assert out.dtypes == [pl.String, pl.Int64, pl.Int64, pl.Float64, pl.String, pl.Int64]
    assert detect_scores([], threshold=T) == []


@pytest.mark.parametrize("bad", [0, 0.0, -1.5, math.nan, math.inf])
def test_threshold_must_be_positive(bad: float) -> None:
    with pytest.raises(ValueError, match="threshold"):
        detect(SeriesMatrix.from_scores([8.0, 6.0]), threshold=bad)
    with pytest.raises(ValueError, match="threshold"):
        detect_scores([8.0, 6.0], threshold=bad)


def test_many_clients_keep_id_dtype_and_sort_order() -> None:
    frame = pl.DataFrame(
        {
            "client_id": [20, 20, 3, 3, 3, 7, 7],
            "session": [1, 2, 1, 2, 5, 2, 3],
            "score": [9.0, 6.0, 8.0, 6.0, 5.0, 7.0, 8.0],
        }
    )
    out = detect(SeriesMatrix.from_long(frame), threshold=T)
    assert out.columns == COLUMNS
    assert out.schema["client_id"] == pl.Int64
    assert out.rows() == [
        (3, 2, 1, 2.0, "unrepaired", None),
        (20, 2, 1, 3.0, "open", None),
    ]


def test_unsorted_client_ids_are_sorted_in_the_output() -> None:
    matrix = SeriesMatrix(
        client_ids=pl.Series("client_id", ["b", "a"]),
        values=np.array([[8.0, 6.0, 4.0], [9.0, 7.0, 7.0]]),
        last_session=np.array([3, 3], dtype=np.int64),
    )
    out = detect(matrix, threshold=T)
    assert out.select("client_id", "session").rows() == [("a", 2), ("b", 2), ("b", 3)]


# --- oracle and properties ---------------------------------------------------------------------


def oracle(
    scores: list[float | None], threshold: float
) -> list[tuple[int, int, float, str, int | None]]:
    """The rule, written as plainly as possible for one client (sessions are 1-based)."""
    score = {k + 1: v for k, v in enumerate(scores) if v is not None}
    last = max(score, default=0)
    out = []
    for s in sorted(score):
        if s - 1 in score:
            p = s - 1
        elif s - 2 in score:
            p = s - 2
        else:
            continue
        if round(score[s] - score[p], 9) > -threshold:
            continue
        repair = None
        for r in range(s + 1, s + 4):
            if r in score and (
                round(score[r] - score[p], 9) >= 0 or round(score[r] - score[s], 9) >= threshold
            ):
                repair = r
                break
        if repair is not None:
            status = "repaired"
        elif last >= s + 3:
            status = "unrepaired"
        else:
            status = "open"
        out.append((s, p, round(score[p] - score[s], 9), status, repair))
    return out


# Scores on a 0.1 grid from 0 to 10, like a mean of 0-10 ratings; tenths make the
# floating-point differences inexact, so the rounding is exercised.
tenths = st.integers(0, 100).map(lambda i: i / 10)
series = st.lists(st.none() | tenths, min_size=0, max_size=12)
thresholds = st.integers(1, 40).map(lambda i: i / 10)
panels = st.lists(series, min_size=1, max_size=6)


def to_matrix(panel: list[list[float | None]]) -> SeriesMatrix:
    rows = [
        (f"c{i}", k + 1, v)
        for i, scores in enumerate(panel)
        for k, v in enumerate(scores)
        if v is not None
    ]
    frame = pl.DataFrame(
        {
            "client_id": [r[0] for r in rows],
            "session": [r[1] for r in rows],
            "score": [r[2] for r in rows],
        },
        schema={"client_id": pl.String, "session": pl.Int64, "score": pl.Float64},
    )
    return SeriesMatrix.from_long(frame)


def panel_oracle(panel: list[list[float | None]], threshold: float) -> list[tuple[object, ...]]:
    return sorted(
        (f"c{i}", *row) for i, scores in enumerate(panel) for row in oracle(scores, threshold)
    )


@settings(max_examples=300, deadline=None)
@given(panel=panels, threshold=thresholds)
def test_matrix_version_equals_the_per_client_oracle(
    panel: list[list[float | None]], threshold: float
) -> None:
    out = detect(to_matrix(panel), threshold=threshold)
    assert out.columns == COLUMNS
    assert out.rows() == panel_oracle(panel, threshold)


@settings(max_examples=200, deadline=None)
@given(scores=series, threshold=thresholds)
def test_single_series_equals_the_oracle(scores: list[float | None], threshold: float) -> None:
    got = [
        (r.session, r.previous_session, r.drop, r.status, r.repair_session)
        for r in detect_scores(scores, threshold=threshold)
    ]
    assert got == oracle(scores, threshold)


@settings(max_examples=150, deadline=None)
@given(panel=panels, threshold=thresholds, shift=st.integers(-50, 50))
def test_adding_a_constant_changes_nothing(
    panel: list[list[float | None]], threshold: float, shift: int
) -> None:
    moved = [[None if v is None else v + shift for v in scores] for scores in panel]
    assert detect(to_matrix(moved), threshold=threshold).equals(
        detect(to_matrix(panel), threshold=threshold)
    )


@settings(max_examples=200, deadline=None)
@given(panel=panels, threshold=thresholds)
def test_invariants_of_every_rupture(panel: list[list[float | None]], threshold: float) -> None:
    matrix = to_matrix(panel)
    out = detect(matrix, threshold=threshold)
    last = dict(zip(matrix.client_ids.to_list(), matrix.last_session.tolist(), strict=True))
    for client, s, p, drop, status, r in out.rows():
        assert s - p in (1, 2)
        assert drop >= threshold
        if status == "repaired":
            assert r is not None and s < r <= s + 3
        else:
            assert r is None
        if status == "open":
            assert last[client] < s + 3
        if status == "unrepaired":
            assert last[client] >= s + 3


@settings(max_examples=150, deadline=None)
@given(panel=panels, low=thresholds, extra=thresholds)
def test_raising_the_threshold_never_creates_ruptures(
    panel: list[list[float | None]], low: float, extra: float
) -> None:
    matrix = to_matrix(panel)
    at_low = set(detect(matrix, threshold=low).select("client_id", "session").rows())
    at_high = set(detect(matrix, threshold=low + extra).select("client_id", "session").rows())
    assert at_high <= at_low


# --- gumz_threshold ----------------------------------------------------------------------------


def synthetic(
    n_clients: int, n_sessions: int, sd_between: float, sd_within: float, seed: int, missing: float
) -> SeriesMatrix:
    rng = np.random.default_rng(seed)
    level = rng.normal(6.0, sd_between, size=(n_clients, 1))
    values = level + rng.normal(0.0, sd_within, size=(n_clients, n_sessions))
    values[rng.random(values.shape) < missing] = np.nan
    present = ~np.isnan(values)
    last = np.where(present.any(axis=1), n_sessions - present[:, ::-1].argmax(axis=1), 0)
    return SeriesMatrix(
        client_ids=pl.Series("client_id", np.arange(n_clients)),
        values=values,
        last_session=last.astype(np.int64),
    )


@pytest.mark.parametrize(
    ("sd_between", "sd_within", "missing"),
    [(1.5, 0.6, 0.0), (0.5, 0.8, 0.3), (2.0, 0.3, 0.1), (0.0, 1.0, 0.2)],
)
def test_gumz_threshold_recovers_the_within_client_critical_difference(
    sd_between: float, sd_within: float, missing: float
) -> None:
    matrix = synthetic(2000, 20, sd_between, sd_within, seed=7, missing=missing)
    expected = 1.96 * math.sqrt(2) * sd_within
    assert gumz_threshold(matrix) == pytest.approx(expected, rel=0.03)


def test_gumz_threshold_ignores_differences_in_client_level() -> None:
    matrix = synthetic(300, 12, 1.0, 0.7, seed=3, missing=0.2)
    offsets = np.random.default_rng(4).normal(0, 5, size=(matrix.n_clients, 1))
    moved = SeriesMatrix(matrix.client_ids, matrix.values + offsets, matrix.last_session)
    assert gumz_threshold(moved) == pytest.approx(gumz_threshold(matrix), rel=1e-9)


def test_gumz_threshold_scales_with_the_scores() -> None:
    matrix = synthetic(300, 12, 1.0, 0.7, seed=5, missing=0.2)
    scaled = SeriesMatrix(matrix.client_ids, matrix.values * 2.5, matrix.last_session)
    assert gumz_threshold(scaled) == pytest.approx(2.5 * gumz_threshold(matrix), rel=1e-9)


def test_gumz_threshold_is_usable_as_a_threshold() -> None:
    matrix = synthetic(500, 15, 1.0, 0.5, seed=11, missing=0.1)
    out = detect(matrix, threshold=gumz_threshold(matrix))
    # With pure noise, a drop beyond the 95% critical difference is rare (about 2.5%).
    comparisons = int((~np.isnan(matrix.values)).sum()) - matrix.n_clients
    assert 0 < out.height < 0.05 * comparisons


def test_gumz_threshold_needs_within_client_variation() -> None:
    with pytest.raises(ValueError, match="two or more scores"):
        gumz_threshold(SeriesMatrix.from_scores([5.0]))
    with pytest.raises(ValueError, match="two or more scores"):
        gumz_threshold(SeriesMatrix.from_scores([]))
    with pytest.raises(ValueError, match="never vary"):
        gumz_threshold(SeriesMatrix.from_scores([5.0, 5.0, None, 5.0]))


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.tuples(st.integers(1, 8), st.integers(2, 45)),
    gone=st.floats(0.0, 0.6),
    threshold=st.sampled_from([0.5, 1.0, 1.5, 2.25]),
    retest=st.sampled_from([None, 0.5, 0.8]),
)
def test_every_cell_at_once_equals_the_session_loop(
    seed: int, shape: tuple[int, int], gone: float, threshold: float, retest: float | None
) -> None:
    """Long series take every (session, client) cell at once: the same ruptures, repairs
    and drops as the session-by-session loop, missing sessions included."""
    from bordin.measures import ruptures

    rng = np.random.default_rng(seed)
    values = np.round(rng.uniform(1, 7, shape) * 4) / 4
    values[rng.random(shape) < gone] = np.nan
    present = ~np.isnan(values)
    last = np.where(present.any(axis=1), shape[1] - np.argmax(present[:, ::-1], axis=1), 0)
    ids = pl.Series("client_id", [f"c{i}" for i in range(shape[0])])
    matrix = SeriesMatrix(ids, values, last.astype(np.int64))
    tables = []
    for loop_sessions in (10_000, 1):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ruptures, "LOOP_SESSIONS", loop_sessions)
            tables.append(detect(matrix, threshold=threshold, retest=retest))
    assert tables[0].equals(tables[1])
