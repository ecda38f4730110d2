"""Tests for :mod:`bordin.measures.sudden_gains`.

Three kinds of evidence: the R package suddengains' own output on its example data set
(``sgdata``), hand-worked series, and Hypothesis properties that compare the vectorised
implementation with a deliberately plain per-client loop (the oracle below).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from bordin.measures.series import SeriesMatrix
from bordin.measures.sudden_gains import (
    SuddenChange,
    critical_value,
    identify,
    identify_scores,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

Score = int | None
Event = tuple[str, int]  # (kind, pregain_session)


# --------------------------------------------------------------------------------------------
# Oracle: the rule written as a straightforward loop over one client's sessions.
# --------------------------------------------------------------------------------------------


def oracle(
    scores: list[Score],
    *,
    cutoff: float,
    lower_is_better: bool,
    crit2_pct: float = 0.25,
    alpha: float = 0.05,
) -> set[Event]:
    x = {k + 1: float(v) for k, v in enumerate(scores) if v is not None}
    if not x:
        return set()
    last = max(x)
    found: set[Event] = set()
    for s in range(2, last - 1):  # s = 2 .. N - 2
        if s not in x or s + 1 not in x:
            continue
        pre = [x[k] for k in range(max(1, s - 2), s + 1) if k in x]
        post = [x[k] for k in range(s + 1, min(last, s + 3) + 1) if k in x]
        if len(pre) < 2 or len(post) < 2:
            continue
        df = len(pre) + len(post) - 2
        pooled = math.sqrt(
            (
                (len(pre) - 1) * statistics.variance(pre)
                + (len(post) - 1) * statistics.variance(post)
            )
            / df
        )
        threshold = round(float(stats.t.ppf(1 - alpha / 2, df)) * pooled, 9)
        drop = round(x[s] - x[s + 1], 9)
        mean_drop = round(statistics.mean(pre) - statistics.mean(post), 9)
        relative = round(crit2_pct * x[s], 9)
        is_drop = drop >= cutoff and drop >= relative and mean_drop > threshold
        is_rise = -drop >= cutoff and -drop >= relative and -mean_drop > threshold
        if is_drop:
            found.add(("gain" if lower_is_better else "loss", s))
        if is_rise:
            found.add(("loss" if lower_is_better else "gain", s))
    return found


def events(
    scores: list[Score],
    *,
    cutoff: float,
    lower_is_better: bool,
    kinds: tuple[str, ...] = ("gain", "loss"),
    crit2_pct: float = 0.25,
    alpha: float = 0.05,
) -> set[Event]:
    changes = identify_scores(
        scores,
        cutoff=cutoff,
        lower_is_better=lower_is_better,
        kinds=kinds,
        crit2_pct=crit2_pct,
        alpha=alpha,
    )
    return {(c.kind, c.pregain_session) for c in changes}


def matrix_of(series: list[list[Score]]) -> SeriesMatrix:
    width = max((len(s) for s in series), default=0)
    values = np.full((len(series), width), np.nan)
    last = np.zeros(len(series), dtype=np.int64)
    for i, row in enumerate(series):
        for j, v in enumerate(row):
            if v is not None:
                values[i, j] = v
                last[i] = j + 1
    ids = pl.Series("client_id", [f"c{i:03d}" for i in range(len(series))])
    return SeriesMatrix(client_ids=ids, values=values, last_session=last)


# --------------------------------------------------------------------------------------------
# Reference data: suddengains' result on sgdata (BDI, cut-off 7, 25 %).
# --------------------------------------------------------------------------------------------


def test_reproduces_suddengains_on_sgdata() -> None:
    long = pl.read_csv(DATA / "sgdata_long.csv").filter(pl.col("measure") == "bdi")
    expected = pl.read_csv(DATA / "sgdata_bdi_sudden_changes_expected.csv").with_columns(
        pl.col("client_id").cast(pl.Int64), pl.col("pregain_session").cast(pl.Int64)
    )
    matrix = SeriesMatrix.from_long(long.with_columns(pl.col("client_id").cast(pl.Int64)))
    result = identify(matrix, cutoff=7, lower_is_better=True)

    got = set(result.select("kind", "client_id", "pregain_session").rows())
    want = set(expected.select("kind", "client_id", "pregain_session").rows())
    assert got == want
    assert result.filter(pl.col("kind") == "gain").height == 24
    assert result.filter(pl.col("kind") == "loss").height == 3
    # Sorted by client, pre-gain session, kind.
    assert result.equals(result.sort(["client_id", "pregain_session", "kind"]))
    # The hard-coded critical values of older suddengains releases are the t quantiles.
    assert [round(critical_value(a, b), 3) for a, b in [(3, 3), (2, 3), (3, 2), (2, 2)]] == [
        2.776,
        3.182,
        3.182,
        4.303,
    ]


def test_sgdata_matches_oracle_row_by_row() -> None:
    long = pl.read_csv(DATA / "sgdata_long.csv").filter(pl.col("measure") == "bdi")
    matrix = SeriesMatrix.from_long(long)
    result = identify(matrix, cutoff=7, lower_is_better=True)
    for i, cid in enumerate(matrix.client_ids.to_list()):
        row = [None if math.isnan(v) else int(v) for v in matrix.values[i]]
        got = set(
            result.filter(pl.col("client_id") == cid).select("kind", "pregain_session").rows()
        )
        assert got == oracle(row, cutoff=7, lower_is_better=True), cid


# --------------------------------------------------------------------------------------------
# Hand-worked cases.
# --------------------------------------------------------------------------------------------


def test_textbook_gain() -> None:
    # s=3: 29 -> 18 drops 11 >= 7 and >= 0.25 * 29; pre 30,31,29 (mean 30, sd 1), post 18,17,16
    # (mean 17, sd 1): pooled sd 1 and 30 - 17 = 13 > 2.776.
    assert identify_scores([30, 31, 29, 18, 17, 16], cutoff=7, lower_is_better=True) == [
        SuddenChange(
            kind="gain",
            pregain_session=3,
            postgain_session=4,
            pregain_score=29.0,
            postgain_score=18.0,
            magnitude=11.0,
        )
    ]


def test_criterion_1_alone_fails() -> None:
    # Drop of 6: criterion 2 (6 >= 3) and 3 (flat windows) pass; criterion 1 decides.
    series: list[Score] = [12, 12, 12, 6, 6, 6]
    assert events(series, cutoff=7, lower_is_better=True) == set()
    assert events(series, cutoff=6, lower_is_better=True) == {("gain", 3)}  # >= is inclusive


def test_criterion_2_alone_fails() -> None:
    # Drop of 8 from 40 is 20 %, short of 25 %; criteria 1 and 3 pass.
    series: list[Score] = [40, 40, 40, 32, 32, 32]
    assert events(series, cutoff=7, lower_is_better=True) == set()
    assert events(series, cutoff=7, lower_is_better=True, crit2_pct=0.2) == {("gain", 3)}


def test_criterion_3_alone_fails() -> None:
    # 30 -> 20 passes criteria 1 and 2 but the windows fluctuate as much as the drop.
    series: list[Score] = [20, 40, 30, 20, 40, 30]
    assert 30 - 20 >= 7 and 30 - 20 >= 0.25 * 30
    assert events(series, cutoff=7, lower_is_better=True) == set()
    # Calm windows around the same drop: a gain.
    assert events([30, 31, 30, 20, 21, 20], cutoff=7, lower_is_better=True) == {("gain", 3)}


def test_complete_windows_use_2_776() -> None:
    # pre 32,24,28 (mean 28), post 16,12,20 (mean 16), pooled sd 4: 12 / 4 = 3.0, which passes
    # 2.776 but would fail 3.182.
    assert events([32, 24, 28, 16, 12, 20], cutoff=7, lower_is_better=True) == {("gain", 3)}


def test_missing_pre_score_raises_critical_value_to_3_182() -> None:
    # pre 30,24 (session 1 missing), post 14,20,14: (27 - 16) / sqrt(14) = 2.94 is above 2.776
    # but below the adjusted 3.182, so no gain; a looser alpha lowers the bar and it becomes one.
    series: list[Score] = [None, 30, 24, 14, 20, 14]
    assert events(series, cutoff=7, lower_is_better=True) == set()
    assert oracle(series, cutoff=7, lower_is_better=True, alpha=0.1) == {("gain", 3)}
    assert events(series, cutoff=7, lower_is_better=True, alpha=0.1) == {("gain", 3)}


def test_missing_post_score_raises_critical_value_to_3_182() -> None:
    # pre 32,24,28, post 10,_,18: (28 - 14) / sd = 3.03, between 2.776 and 3.182.
    assert events([32, 24, 28, 10, None, 18], cutoff=7, lower_is_better=True) == set()


def test_two_plus_two_uses_4_303() -> None:
    # pre 32,24, post 8,_,12: ratio 4.02, between 3.182 and 4.303: no gain.
    assert events([None, 32, 24, 8, None, 12], cutoff=7, lower_is_better=True) == set()
    # pre 30,28, post 10,_,12: ratio 18, a gain despite two missing scores.
    assert events([None, 30, 28, 10, None, 12], cutoff=7, lower_is_better=True) == {("gain", 3)}


def test_fewer_than_two_scores_in_a_window() -> None:
    # Only one pre-gain score (sessions 1 and 2 missing).
    assert events([None, None, 30, 18, 17, 16], cutoff=7, lower_is_better=True) == set()
    # Only one post-gain score (sessions 5 and 6 missing, session 7 is outside the window).
    assert events([30, 31, 29, 18, None, None, 17], cutoff=7, lower_is_better=True) == set()


def test_both_interval_scores_must_be_present() -> None:
    assert events([30, 31, 29, None, 17, 16, 16], cutoff=7, lower_is_better=True) == set()


def test_session_1_is_never_a_pregain_session() -> None:
    # The largest drop is 1 -> 2; it is not examined (identify_sg_1to2 = FALSE).
    assert events([40, 18, 17, 16, 17], cutoff=7, lower_is_better=True) == set()


def test_last_interval_is_never_examined() -> None:
    # N = 6, so s runs to 4; the drop 5 -> 6 has a one-score post window.
    assert events([30, 31, 29, 30, 31, 10], cutoff=7, lower_is_better=True) == set()


def test_higher_is_better_flips_direction() -> None:
    rise: list[Score] = [12, 11, 13, 25, 24, 26]
    assert events(rise, cutoff=7, lower_is_better=False) == {("gain", 3)}
    assert events(rise, cutoff=7, lower_is_better=True) == {("loss", 3)}
    drop: list[Score] = [30, 31, 29, 18, 17, 16]
    assert events(drop, cutoff=7, lower_is_better=False) == {("loss", 3)}


def test_loss() -> None:
    # 10 -> 22 rises 12 >= 7 and >= 0.25 * 10; windows 10,11,10 and 22,21,23.
    (loss,) = identify_scores([10, 11, 10, 22, 21, 23], cutoff=7, lower_is_better=True)
    assert loss == SuddenChange("loss", 3, 4, 10.0, 22.0, 12.0)
    assert (
        identify_scores([10, 11, 10, 22, 21, 23], cutoff=7, lower_is_better=True, kinds=("gain",))
        == []
    )


def test_floating_point_noise_does_not_decide() -> None:
    # 10.2 - 3.2 == 6.999999999999999 in binary floating point; it counts as 7.
    assert 10.2 - 3.2 < 7
    (gain,) = identify_scores([10.2, 10.2, 10.2, 3.2, 3.2, 3.2], cutoff=7, lower_is_better=True)
    assert (gain.kind, gain.pregain_session, gain.magnitude) == ("gain", 3, 7.0)


def test_kinds_filter_and_validation() -> None:
    series: list[Score] = [30, 31, 29, 18, 17, 16, 27, 28, 27]
    assert events(series, cutoff=7, lower_is_better=True) == {("gain", 3), ("loss", 6)}
    assert events(series, cutoff=7, lower_is_better=True, kinds=("loss",)) == {("loss", 6)}
    assert events(series, cutoff=7, lower_is_better=True, kinds=()) == set()
    with pytest.raises(ValueError, match="kinds"):
        identify_scores(series, cutoff=7, lower_is_better=True, kinds=("gains",))
    with pytest.raises(ValueError, match="kinds"):
        identify_scores(series, cutoff=7, lower_is_better=True, kinds="gain")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cutoff"):
        identify_scores(series, cutoff=0, lower_is_better=True)
    with pytest.raises(ValueError, match="alpha"):
        identify_scores(series, cutoff=7, lower_is_better=True, alpha=1.5)
    with pytest.raises(ValueError, match="crit2_pct"):
        identify_scores(series, cutoff=7, lower_is_better=True, crit2_pct=-0.1)


SCHEMA = {
    "kind": pl.String,
    "pregain_session": pl.Int64,
    "postgain_session": pl.Int64,
    "pregain_score": pl.Float64,
    "postgain_score": pl.Float64,
    "magnitude": pl.Float64,
}
COLUMNS = [
    "kind",
    "client_id",
    "pregain_session",
    "postgain_session",
    "pregain_score",
    "postgain_score",
    "magnitude",
]


@pytest.mark.parametrize("ids", [["a", "b"], [3, 1]])
def test_schema_and_client_id_dtype(ids: list[object]) -> None:
    frame = pl.DataFrame(
        {
            "client_id": [ids[0]] * 6 + [ids[1]] * 3,
            "session": [1, 2, 3, 4, 5, 6, 1, 2, 3],
            "score": [30, 31, 29, 18, 17, 16, 5, 5, 5],
        }
    )
    matrix = SeriesMatrix.from_long(frame)
    result = identify(matrix, cutoff=7, lower_is_better=True)
    assert result.columns == COLUMNS
    assert result.schema["client_id"] == matrix.client_ids.dtype
    assert all(result.schema[name] == dtype for name, dtype in SCHEMA.items())
    assert result.rows() == [("gain", ids[0], 3, 4, 29.0, 18.0, 11.0)]
    none = identify(matrix, cutoff=50, lower_is_better=True)
    assert none.height == 0
    assert none.schema == result.schema


def test_empty_inputs() -> None:
    empty_long = pl.DataFrame(
        {"client_id": [], "session": [], "score": []},
        schema={"client_id": pl.String, "session": pl.Int64, "score": pl.Float64},
    )
    result = identify(SeriesMatrix.from_long(empty_long), cutoff=7, lower_is_better=True)
    assert result.height == 0
    assert result.columns == COLUMNS
    assert result.schema["client_id"] == pl.String
    assert all(result.schema[name] == dtype for name, dtype in SCHEMA.items())
    assert identify_scores([], cutoff=7, lower_is_better=True) == []
    assert identify_scores([None, None], cutoff=7, lower_is_better=True) == []
    assert identify_scores([30, 10, 5], cutoff=7, lower_is_better=True) == []


# --------------------------------------------------------------------------------------------
# Hypothesis properties.
# --------------------------------------------------------------------------------------------


@st.composite
def series_strategy(draw: st.DrawFn, max_len: int = 14) -> list[Score]:
    """Plateaus and jumps (so sudden changes actually occur), with missing sessions."""
    start = draw(st.integers(0, 60))
    steps = draw(
        st.lists(st.one_of(st.integers(-2, 2), st.integers(-20, 20)), max_size=max_len - 1)
    )
    levels = np.clip(start + np.cumsum([0, *steps]), 0, 63).tolist()
    gone = draw(
        st.lists(
            st.sampled_from([False, False, False, True]), min_size=len(levels), max_size=len(levels)
        )
    )
    return [None if g else int(v) for v, g in zip(levels, gone, strict=True)]


CUTOFF = st.sampled_from([3, 5, 7, 9.5])
PCT = st.sampled_from([0.0, 0.25, 0.4])


@settings(max_examples=200, deadline=None)
@given(series=series_strategy(), cutoff=CUTOFF, pct=PCT, lower=st.booleans())
def test_one_client_matches_oracle(
    series: list[Score], cutoff: float, pct: float, lower: bool
) -> None:
    got = events(series, cutoff=cutoff, lower_is_better=lower, crit2_pct=pct)
    assert got == oracle(series, cutoff=cutoff, lower_is_better=lower, crit2_pct=pct)


@settings(max_examples=100, deadline=None)
@given(
    many=st.lists(series_strategy(), min_size=1, max_size=12),
    cutoff=CUTOFF,
    lower=st.booleans(),
)
def test_matrix_equals_row_by_row(many: list[list[Score]], cutoff: float, lower: bool) -> None:
    matrix = matrix_of(many)
    result = identify(matrix, cutoff=cutoff, lower_is_better=lower)
    for i, row in enumerate(many):
        cid = f"c{i:03d}"
        mine = result.filter(pl.col("client_id") == cid)
        assert set(mine.select("kind", "pregain_session").rows()) == oracle(
            row, cutoff=cutoff, lower_is_better=lower
        )
        single = identify_scores(row, cutoff=cutoff, lower_is_better=lower)
        assert [SuddenChange(*r) for r in mine.drop("client_id").rows()] == single
    assert result.equals(result.sort(["client_id", "pregain_session", "kind"]))


@settings(max_examples=200, deadline=None)
@given(series=series_strategy(), cutoff=CUTOFF, pct=PCT, lower=st.booleans())
def test_invariants_of_every_event(
    series: list[Score], cutoff: float, pct: float, lower: bool
) -> None:
    changes = identify_scores(series, cutoff=cutoff, lower_is_better=lower, crit2_pct=pct)
    last = max((k + 1 for k, v in enumerate(series) if v is not None), default=0)
    intervals = [c.pregain_session for c in changes]
    assert len(intervals) == len(set(intervals))  # a gain and a loss never share an interval
    for c in changes:
        assert 2 <= c.pregain_session <= last - 2
        assert c.postgain_session == c.pregain_session + 1
        assert c.pregain_score == series[c.pregain_session - 1]
        assert c.postgain_score == series[c.postgain_session - 1]
        assert c.magnitude == abs(c.postgain_score - c.pregain_score)
        assert c.magnitude >= cutoff
        assert c.magnitude >= pct * c.pregain_score
        decreased = c.postgain_score < c.pregain_score
        assert (c.kind == "gain") == (decreased == lower)


@settings(max_examples=200, deadline=None)
@given(series=series_strategy(), cutoff=CUTOFF, pct=PCT)
def test_direction_flag_swaps_gains_and_losses(
    series: list[Score], cutoff: float, pct: float
) -> None:
    swap = {"gain": "loss", "loss": "gain"}
    lower = events(series, cutoff=cutoff, lower_is_better=True, crit2_pct=pct)
    higher = events(series, cutoff=cutoff, lower_is_better=False, crit2_pct=pct)
    assert higher == {(swap[kind], s) for kind, s in lower}


@settings(max_examples=200, deadline=None)
@given(series=series_strategy(), cutoff=CUTOFF)
def test_reflection_symmetry_without_criterion_2(series: list[Score], cutoff: float) -> None:
    # Criterion 2 is relative to the pre-gain score, which reflection changes; without it,
    # reflecting a lower-is-better series into a higher-is-better one keeps every event.
    reflected = [None if v is None else 63 - v for v in series]
    assert events(series, cutoff=cutoff, lower_is_better=True, crit2_pct=0) == events(
        reflected, cutoff=cutoff, lower_is_better=False, crit2_pct=0
    )


@settings(max_examples=200, deadline=None)
@given(series=series_strategy(), cutoff=CUTOFF, shift=st.integers(0, 40), lower=st.booleans())
def test_shifting_scores(series: list[Score], cutoff: float, shift: int, lower: bool) -> None:
    shifted = [None if v is None else v + shift for v in series]
    # Criteria 1 and 3 only see differences: without criterion 2 a shift changes nothing.
    assert events(series, cutoff=cutoff, lower_is_better=lower, crit2_pct=0) == events(
        shifted, cutoff=cutoff, lower_is_better=lower, crit2_pct=0
    )
    # Criterion 2 grows with the pre-gain score, so shifting upwards can only remove events.
    assert events(shifted, cutoff=cutoff, lower_is_better=lower) <= events(
        series, cutoff=cutoff, lower_is_better=lower
    )


def test_built_in_t_quantiles_are_scipys() -> None:
    from scipy import special

    from bordin.measures import sudden_gains

    for df, value in sudden_gains.T_975.items():
        assert value == float(special.stdtrit(df, 0.975)), df
    assert sudden_gains.critical_value(2, 2, alpha=0.1) == float(special.stdtrit(2, 0.95))


@settings(max_examples=100, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 6), st.integers(4, 12)),
    seed=st.integers(0, 2**32 - 1),
    gone=st.floats(0.0, 0.6),
)
def test_window_of_cells_adds_as_the_window_of_columns(
    shape: tuple[int, int], seed: int, gone: float
) -> None:
    """The long-series path's window statistics are the session loop's, to the last bit
    (real-valued scores with gaps, windows cut by either edge of the matrix)."""
    from bordin.measures.sudden_gains import WINDOW, _window, _window_rows

    rng = np.random.default_rng(seed)
    values = rng.normal(10, 7, shape)
    values[rng.random(shape) < gone] = np.nan
    by_session = np.ascontiguousarray(values.T)
    rows = np.arange(shape[0], dtype=np.int64)
    for c in range(1, shape[1] - 2):
        cols = np.full(shape[0], c, dtype=np.int64)
        for start, end in ((max(0, c - WINDOW + 1), c + 1), (c + 1, c + 1 + WINDOW)):
            expected = _window(by_session[start:end])
            got = _window_rows(values, rows, cols - (c - start), cols + (end - c))
            for a, b in zip(expected, got, strict=True):
                assert np.array_equal(a, b, equal_nan=True)


@settings(max_examples=100, deadline=None)
@given(
    many=st.lists(series_strategy(max_len=40), min_size=1, max_size=8),
    cutoff=CUTOFF,
    pct=PCT,
    lower=st.booleans(),
)
def test_long_series_path_equals_the_session_loop(
    many: list[list[Score]], cutoff: float, pct: float, lower: bool
) -> None:
    """Series longer than LOOP_SESSIONS take every candidate cell at once: the same table as
    the session-by-session loop."""
    from bordin.measures import sudden_gains

    matrix = matrix_of(many)
    results = []
    for loop_sessions in (10_000, 3):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sudden_gains, "LOOP_SESSIONS", loop_sessions)
            results.append(identify(matrix, cutoff=cutoff, lower_is_better=lower, crit2_pct=pct))
    assert results[0].equals(results[1])
