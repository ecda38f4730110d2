"""Tests for expected trajectories and not-on-track signals (bordin.measures.trajectories)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bordin.measures.series import SeriesMatrix
from bordin.measures.trajectories import (
    BANDS,
    NOT_ON_TRACK,
    ON_TRACK,
    FitCounts,
    TrajectoryModel,
    compress,
    evaluate_scores,
    fit,
    fit_counts,
    fit_prepared,
    merge_counts,
    quantile_of_counts,
    session_band,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
TRUE_COEF = (2.0, 0.8, 1.5, -0.3)


def make_matrix(values: np.ndarray, ids: list[str] | np.ndarray | None = None) -> SeriesMatrix:
    values = np.asarray(values, dtype=np.float64)
    n, n_sessions = values.shape
    present = ~np.isnan(values)
    last = np.zeros(n, dtype=np.int64)
    if n_sessions:
        last = np.where(present.any(axis=1), n_sessions - present[:, ::-1].argmax(axis=1), 0)
    client_ids = pl.Series("client_id", np.arange(n) if ids is None else ids)
    return SeriesMatrix(client_ids=client_ids, values=values, last_session=last)


def simulate(rng: np.random.Generator, n: int, n_sessions: int = 20) -> np.ndarray:
    """Log-linear recovery with client-level random intercepts and slopes, noise, drop-out and
    missed sessions (lower is better, a BDI-like 0-63 range)."""
    intake = rng.normal(26.0, 7.0, n)
    log_s = np.log(np.arange(1, n_sessions + 1))
    intercept = rng.normal(0.0, 2.0, n)[:, None]
    slope = rng.normal(0.0, 1.0, n)[:, None]
    values = (
        1.0
        + 0.9 * intake[:, None]
        + intercept
        + (0.5 - 0.25 * intake[:, None] + slope) * log_s
        + rng.normal(0.0, 3.0, (n, n_sessions))
    )
    values[:, 0] = intake
    last = rng.integers(3, n_sessions + 1, n)
    values[np.arange(n_sessions)[None, :] >= last[:, None]] = np.nan
    missed = rng.random((n, n_sessions)) < 0.15
    missed[:, 0] = False
    values[missed] = np.nan
    return values


@pytest.fixture(scope="module")
def population() -> np.ndarray:
    return simulate(np.random.default_rng(20010401), 4000)


@pytest.fixture(scope="module")
def reference_model(population: np.ndarray) -> TrajectoryModel:
    return fit(make_matrix(population[:2000]), lower_is_better=True)


def flagged(table: pl.DataFrame) -> np.ndarray:
    return (table["status"] == NOT_ON_TRACK).to_numpy()


# --- hand-worked cases ---------------------------------------------------------------------


def test_noise_free_data_recovers_the_coefficients_and_flags_nothing() -> None:
    rng = np.random.default_rng(1)
    n, n_sessions = 60, 15
    intake = rng.integers(10, 41, n).astype(np.float64)
    b0, b1, b2, b3 = TRUE_COEF
    log_s = np.log(np.arange(1, n_sessions + 1))
    values = b0 + b1 * intake[:, None] + (b2 + b3 * intake[:, None]) * log_s
    values[:, 0] = intake
    missing = rng.random((n, n_sessions)) < 0.3
    missing[:, 0] = False
    values[missing] = np.nan
    model = fit(make_matrix(values), lower_is_better=True, min_band_size=5)
    np.testing.assert_allclose(model.coef, TRUE_COEF, rtol=0, atol=1e-8)
    # Every residual is zero up to rounding error, so no session is worse than expected.
    table = model.evaluate(make_matrix(values))
    assert table.height == int((~missing[:, 1:]).sum())
    assert set(table["status"].to_list()) == {ON_TRACK}
    np.testing.assert_allclose(table["expected"].to_numpy(), table["score"].to_numpy(), atol=1e-9)


def test_session_band_mapping() -> None:
    labels = [BANDS[b] for b in session_band(np.array([2, 3, 7, 8, 9, 12, 13, 40]))]
    assert labels == ["2", "3", "7", "8", "9-12", "9-12", "13+", "13+"]
    assert BANDS == ("2", "3", "4", "5", "6", "7", "8", "9-12", "13+")
    assert session_band(np.arange(2, 9)).tolist() == list(range(7))
    with pytest.raises(ValueError, match="session 2"):
        session_band(np.array([1, 2]))


@pytest.mark.parametrize("lower_is_better", [True, False])
def test_worse_direction_depends_on_the_scale(
    population: np.ndarray, lower_is_better: bool
) -> None:
    model = fit(make_matrix(population[:2000]), lower_is_better=lower_is_better)
    intake = 25.0
    expected = float(model.expected(intake, 5))
    q = model.band_quantiles[int(session_band(np.array([5]))[0])]
    assert q > 0
    above = evaluate_scores(model, [intake, None, None, None, expected + 3 * q])
    below = evaluate_scores(model, [intake, None, None, None, expected - 3 * q])
    assert above[0].session == below[0].session == 5
    assert above[0].expected == pytest.approx(expected)
    if lower_is_better:
        # Far above expected on a lower-is-better scale is worse than expected.
        assert (above[0].status, below[0].status) == (NOT_ON_TRACK, ON_TRACK)
        assert above[0].upper == pytest.approx(expected + q)
    else:
        # Far below expected on a higher-is-better scale is worse than expected.
        assert (above[0].status, below[0].status) == (ON_TRACK, NOT_ON_TRACK)
        assert above[0].upper == pytest.approx(expected - q)


@pytest.mark.parametrize("lower_is_better", [True, False])
def test_status_agrees_with_the_upper_boundary(
    population: np.ndarray, lower_is_better: bool
) -> None:
    model = fit(make_matrix(population[:2000]), lower_is_better=lower_is_better)
    table = model.evaluate(make_matrix(population[2000:]))
    score, upper = table["score"].to_numpy(), table["upper"].to_numpy()
    beyond = score > upper if lower_is_better else score < upper
    clear = np.abs(score - upper) > 1e-6
    np.testing.assert_array_equal(flagged(table)[clear], beyond[clear])
    np.testing.assert_allclose(
        table["upper"] - table["expected"],
        np.array(model.band_quantiles)[session_band(table["session"].to_numpy())]
        * (1 if lower_is_better else -1),
        atol=1e-9,
    )


def test_small_bands_fall_back_to_the_pooled_quantile() -> None:
    rng = np.random.default_rng(7)
    values = simulate(rng, 300, n_sessions=12)
    longer = simulate(rng, 5, n_sessions=16)
    longer[:, 1:] = np.nan
    longer[:, 13:] = 20.0  # 5 clients x 3 sessions = 15 residuals in band 13+
    wide = np.full((300, 16), np.nan)
    wide[:, :12] = values
    model = fit(make_matrix(np.vstack([wide, longer])), lower_is_better=True)
    assert model.band_sizes[BANDS.index("13+")] == 15
    assert model.band_pooled == (False,) * 8 + (True,)
    assert model.band_quantiles[-1] == model.pooled_quantile
    assert model.band_quantiles[0] != model.pooled_quantile
    summary = model.to_dict()
    json.dumps(summary)  # JSON-ready
    assert summary["bands"][-1] == {  # type: ignore[index]
        "band": "13+",
        "n": 15,
        "quantile": model.pooled_quantile,
        "pooled": True,
    }
    assert summary["coef"] == dict(zip(["b0", "b1", "b2", "b3"], model.coef, strict=True))
    relaxed = fit(make_matrix(np.vstack([wide, longer])), lower_is_better=True, min_band_size=15)
    assert relaxed.band_pooled[-1] is False


def test_a_band_without_reference_data_uses_the_pooled_quantile() -> None:
    model = fit(make_matrix(simulate(np.random.default_rng(3), 200, 6)), lower_is_better=True)
    assert model.band_sizes[-3:] == (0, 0, 0)
    assert model.band_quantiles[-3:] == (model.pooled_quantile,) * 3
    # Later sessions can still be evaluated.
    points = evaluate_scores(model, [30.0] + [None] * 18 + [30.0])
    assert points[0].session == 20
    assert points[0].upper == pytest.approx(points[0].expected + model.pooled_quantile)


def test_fit_rejects_too_little_or_unidentifiable_data() -> None:
    values = simulate(np.random.default_rng(5), 9, 10)
    with pytest.raises(ValueError, match="at least 10 clients"):
        fit(make_matrix(values), lower_is_better=True)
    # Intake present but no later score does not count.
    values = simulate(np.random.default_rng(5), 30, 10)
    values[:9, 1] = 20.0
    values[9:, 1:] = np.nan
    with pytest.raises(ValueError, match="got 9"):
        fit(make_matrix(values), lower_is_better=True)
    # Later scores present but no intake does not count either.
    values = simulate(np.random.default_rng(5), 30, 10)
    values[:9, 1] = 20.0
    values[9:, 0] = np.nan
    with pytest.raises(ValueError, match="got 9"):
        fit(make_matrix(values), lower_is_better=True)
    with pytest.raises(ValueError, match="at least 10 clients"):
        fit(make_matrix(np.empty((0, 0))), lower_is_better=True)
    # Only session 2 after intake: ln(s) is constant, b2 and b3 are not identifiable.
    only_two = simulate(np.random.default_rng(5), 50, 10)
    only_two[:, 2:] = np.nan
    with pytest.raises(ValueError, match="cannot identify"):
        fit(make_matrix(only_two), lower_is_better=True)
    same_intake = simulate(np.random.default_rng(5), 50, 10)
    same_intake[:, 0] = 20.0
    with pytest.raises(ValueError, match="cannot identify"):
        fit(make_matrix(same_intake), lower_is_better=True)
    good = make_matrix(simulate(np.random.default_rng(5), 50, 10))
    for q in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="quantile"):
            fit(good, lower_is_better=True, quantile=q)
    with pytest.raises(ValueError, match="min_band_size"):
        fit(good, lower_is_better=True, min_band_size=0)


# --- evaluate: shape of the output ---------------------------------------------------------


def test_evaluate_output_columns_rows_and_order(reference_model: TrajectoryModel) -> None:
    values = np.array(
        [
            [20.0, 18.0, np.nan, 15.0],  # b: sessions 2 and 4
            [np.nan, 30.0, 25.0, 20.0],  # c: no intake -> no rows
            [25.0, np.nan, np.nan, np.nan],  # a: intake only -> no rows
            [35.0, 40.0, 41.0, np.nan],  # d: sessions 2 and 3
        ]
    )
    table = reference_model.evaluate(make_matrix(values, ids=["b", "c", "a", "d"]))
    assert table.columns == ["client_id", "session", "score", "expected", "upper", "status"]
    assert table.dtypes == [pl.String, pl.Int64, pl.Float64, pl.Float64, pl.Float64, pl.String]
    # client_ids were not sorted here: the output still is.
    assert table.select("client_id", "session").rows() == [("b", 2), ("b", 4), ("d", 2), ("d", 3)]
    assert table["score"].to_list() == [18.0, 15.0, 40.0, 41.0]
    expected = reference_model.expected(np.array([20.0, 20.0, 35.0, 35.0]), np.array([2, 4, 2, 3]))
    np.testing.assert_array_equal(table["expected"].to_numpy(), expected)
    assert table["status"].to_list()[2:] == [NOT_ON_TRACK, NOT_ON_TRACK]

    numeric = reference_model.evaluate(make_matrix(values, ids=np.array([4, 7, 1, 9])))
    assert numeric["client_id"].dtype == pl.Int64
    assert numeric["client_id"].to_list() == [4, 4, 9, 9]


def test_evaluate_degenerate_inputs(reference_model: TrajectoryModel) -> None:
    empty = reference_model.evaluate(make_matrix(np.empty((0, 0)), ids=np.array([], dtype=int)))
    assert empty.height == 0
    assert empty.columns == ["client_id", "session", "score", "expected", "upper", "status"]
    intake_only = reference_model.evaluate(make_matrix(np.array([[20.0]])))
    assert intake_only.height == 0
    assert evaluate_scores(reference_model, []) == []
    assert evaluate_scores(reference_model, [None, 10.0, 12.0]) == []


def test_evaluate_scores_goes_through_evaluate(reference_model: TrajectoryModel) -> None:
    scores = [27.0, 25.0, None, 30.0, 14.0]
    points = evaluate_scores(reference_model, scores)
    table = reference_model.evaluate(SeriesMatrix.from_scores(scores))
    assert [(p.session, p.score, p.expected, p.upper, p.status) for p in points] == table.select(
        "session", "score", "expected", "upper", "status"
    ).rows()
    assert [p.session for p in points] == [2, 4, 5]


def test_expected_broadcasts(reference_model: TrajectoryModel) -> None:
    b0, b1, b2, b3 = reference_model.coef
    grid = reference_model.expected(np.array([[10.0], [30.0]]), np.array([1, 4, 16]))
    assert grid.shape == (2, 3)
    assert grid[1, 2] == pytest.approx(b0 + b1 * 30 + (b2 + b3 * 30) * math.log(16))
    # At session 1, ln(1) = 0: the expectation is the intake regression b0 + b1 * y1.
    assert grid[0, 0] == pytest.approx(b0 + b1 * 10)
    with pytest.raises(ValueError, match="from 1"):
        reference_model.expected(10.0, 0)


# --- honest coverage -----------------------------------------------------------------------


def test_coverage_on_new_clients_from_the_same_population(
    population: np.ndarray, reference_model: TrajectoryModel
) -> None:
    # Across 100 simulated populations like this one the flagged share had mean 0.100 and
    # SD 0.006 (per band SD about 0.01): the tolerances are about 2.5 and 4 SDs.
    table = reference_model.evaluate(make_matrix(population[2000:]))
    assert table.height > 15_000
    share = flagged(table).mean()
    assert abs(share - 0.10) <= 0.015, share
    # Early and late sessions alike, not just on average.
    bands = session_band(table["session"].to_numpy())
    for k in range(len(BANDS)):
        assert abs(flagged(table)[bands == k].mean() - 0.10) <= 0.04, BANDS[k]


def test_coverage_on_the_reference_itself(
    population: np.ndarray, reference_model: TrajectoryModel
) -> None:
    table = reference_model.evaluate(make_matrix(population[:2000]))
    assert table.height == reference_model.n_reference_sessions
    assert abs(flagged(table).mean() - 0.10) <= 0.002
    bands = session_band(table["session"].to_numpy())
    for k, n in enumerate(reference_model.band_sizes):
        share = flagged(table)[bands == k].mean()
        assert 0.10 - 1 / n - 1e-12 <= share <= 0.10 + 1 / n + 1e-12


@pytest.mark.parametrize("q", [0.8, 0.95])
def test_other_quantiles_give_their_own_coverage(population: np.ndarray, q: float) -> None:
    model = fit(make_matrix(population[:2000]), lower_is_better=True, quantile=q)
    share = flagged(model.evaluate(make_matrix(population[2000:]))).mean()
    assert abs(share - (1 - q)) <= 0.015


# --- real, irregular data ------------------------------------------------------------------


def test_enrichd_bdi_sanity() -> None:
    path = DATA / "enrichd_bdi_long.csv"
    if not path.exists():
        pytest.skip(f"{path} not available")
    frame = pl.read_csv(path).filter(pl.col("measure") == "bdi")
    matrix = SeriesMatrix.from_long(frame)
    model = fit(matrix, lower_is_better=True)
    _, b1, _, b3 = model.coef
    # Higher intake, steeper improvement; the level tracks the intake without exceeding it.
    assert -1.0 < b3 < 0.0
    assert 0.5 < b1 < 1.1
    assert model.expected(30.0, 12)[()] < 30.0 * 0.8
    assert model.n_reference_clients == frame["client_id"].n_unique()
    table = model.evaluate(matrix)
    assert table.height == model.n_reference_sessions
    assert abs(flagged(table).mean() - 0.10) <= 0.01
    assert table["client_id"].dtype == frame["client_id"].dtype


# --- properties ----------------------------------------------------------------------------


@st.composite
def score_matrices(draw: st.DrawFn) -> np.ndarray:
    """Small integer-valued matrices; negative draws become missing sessions."""
    n = draw(st.integers(12, 30))
    n_sessions = draw(st.integers(3, 16))
    # Mostly every cell drawn on its own; sometimes Hypothesis' default fill, which gives
    # repetitive, tie-heavy data (the hard case for a quantile rule).
    fill = draw(st.sampled_from([st.nothing(), st.nothing(), st.nothing(), None]))
    raw = draw(arrays(np.int64, (n, n_sessions), elements=st.integers(-12, 40), fill=fill))
    values = raw.astype(np.float64)
    values[raw < 0] = np.nan
    return values


def try_fit(values: np.ndarray, **kwargs: object) -> TrajectoryModel:
    try:
        return fit(make_matrix(values), min_band_size=5, **kwargs)  # type: ignore[arg-type]
    except ValueError:
        assume(False)
        raise


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(values=score_matrices(), q=st.sampled_from([0.75, 0.9]), lower=st.booleans())
def test_in_sample_flags_never_exceed_the_nominal_share_per_band(
    values: np.ndarray, q: float, lower: bool
) -> None:
    model = try_fit(values, lower_is_better=lower, quantile=q)
    table = model.evaluate(make_matrix(values))
    assert table.height == model.n_reference_sessions
    bands = session_band(table["session"].to_numpy())
    for k, (n, pooled) in enumerate(zip(model.band_sizes, model.band_pooled, strict=True)):
        if n and not pooled:
            assert flagged(table)[bands == k].mean() <= (1 - q) + 1 / n + 1e-12


@PROPERTY
@given(values=score_matrices(), c=st.integers(-50, 50), lower=st.booleans())
def test_adding_a_constant_to_every_score_leaves_flags_unchanged(
    values: np.ndarray, c: int, lower: bool
) -> None:
    model = try_fit(values, lower_is_better=lower)
    shifted = try_fit(values + c, lower_is_better=lower)
    b0, b1, b2, b3 = model.coef
    # The intake shifts too: y + c = (b0 + c(1 - b1)) + b1 (y1 + c) + (b2 - c b3 + b3 (y1 + c)) ln s
    np.testing.assert_allclose(
        shifted.coef, (b0 + c * (1 - b1), b1, b2 - c * b3, b3), rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(shifted.band_quantiles, model.band_quantiles, atol=1e-6)
    before = model.evaluate(make_matrix(values))
    after = shifted.evaluate(make_matrix(values + c))
    assert after["status"].to_list() == before["status"].to_list()
    np.testing.assert_allclose(after["expected"] - c, before["expected"], atol=1e-6)


@PROPERTY
@given(values=score_matrices(), c=st.integers(-50, 50))
def test_shifting_later_scores_only_shifts_b0(values: np.ndarray, c: int) -> None:
    model = try_fit(values, lower_is_better=True)
    later = values.copy()
    later[:, 1:] += c
    shifted = try_fit(later, lower_is_better=True)
    np.testing.assert_allclose(shifted.coef, np.add(model.coef, (c, 0, 0, 0)), rtol=1e-6, atol=1e-6)
    after = shifted.evaluate(make_matrix(later))["status"].to_list()
    assert after == model.evaluate(make_matrix(values))["status"].to_list()


@PROPERTY
@given(values=score_matrices())
def test_flipping_the_scale_flips_the_model_not_the_flags(values: np.ndarray) -> None:
    lower = try_fit(values, lower_is_better=True)
    higher = try_fit(-values, lower_is_better=False)
    b0, b1, b2, b3 = lower.coef
    # -y = -b0 + b1 (-y1) + (-b2 + b3 (-y1)) ln s: the intake flips sign too.
    np.testing.assert_allclose(higher.coef, (-b0, b1, -b2, b3), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(higher.band_quantiles, lower.band_quantiles, atol=1e-9)
    a = lower.evaluate(make_matrix(values))
    b = higher.evaluate(make_matrix(-values))
    assert a["status"].to_list() == b["status"].to_list()
    np.testing.assert_allclose(b["upper"], -a["upper"], atol=1e-9)


@PROPERTY
@given(reference=score_matrices(), target=score_matrices(), lower=st.booleans())
def test_matrix_evaluation_equals_one_client_at_a_time(
    reference: np.ndarray, target: np.ndarray, lower: bool
) -> None:
    model = try_fit(reference, lower_is_better=lower)
    ids = [f"c{i:03d}" for i in range(target.shape[0])]
    whole = model.evaluate(make_matrix(target, ids=ids))
    pieces = [model.evaluate(make_matrix(target[i : i + 1], ids=[ids[i]])) for i in range(len(ids))]
    assert whole.equals(pl.concat(pieces))
    for i, row in enumerate(target):
        points = evaluate_scores(model, [None if np.isnan(v) else float(v) for v in row])
        mine = whole.filter(pl.col("client_id") == ids[i]).drop("client_id").rows()
        assert [(p.session, p.score, p.expected, p.upper, p.status) for p in points] == mine


# --- counted triples (fit_counts) ----------------------------------------------------------


def _saturated_rows() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sessions 2 and 3 × intakes 10 and 20: four design points, so the four coefficients fit
    each cell's mean exactly and the residuals are the scores minus their cell's mean."""
    cells = {
        (2, 10.0): [5, 5, 8],  # mean 6: residuals -1, -1, 2
        (2, 20.0): [12, 12, 12, 16],  # mean 13: -1, -1, -1, 3
        (3, 10.0): [4, 6],  # mean 5: -1, 1
        (3, 20.0): [10, 10, 10, 10],  # mean 10: 0 four times
    }
    rows = [(s, y1, float(y)) for (s, y1), ys in cells.items() for y in ys]
    session, y1, score = (np.array(c) for c in zip(*rows, strict=True))
    return session.astype(np.int64), y1, score


def test_fit_counts_hand_worked() -> None:
    session, y1, score = _saturated_rows()
    s, a, y, n = compress(session, y1, score)
    assert list(zip(s.tolist(), a.tolist(), y.tolist(), n.tolist(), strict=True)) == [
        (2, 10.0, 5.0, 2),
        (2, 10.0, 8.0, 1),
        (2, 20.0, 12.0, 3),
        (2, 20.0, 16.0, 1),
        (3, 10.0, 4.0, 1),
        (3, 10.0, 6.0, 1),
        (3, 20.0, 10.0, 4),
    ]
    model = fit_counts(s, a, y, n, 10, lower_is_better=True, min_band_size=5)
    # Cell means 6, 13 (session 2) and 5, 10 (session 3) at intakes 10, 20: with
    # r = ln 2 / ln 1.5, b3 = -0.2 / ln 1.5, b2 = 1 / ln 1.5, b1 = 0.7 + 0.2 r, b0 = -1 - r.
    r = math.log(2) / math.log(1.5)
    expected = (-1 - r, 0.7 + 0.2 * r, 1 / math.log(1.5), -0.2 / math.log(1.5))
    np.testing.assert_allclose(model.coef, expected, rtol=1e-12)
    # Band "2": -1 five times, 2, 3; h = 6 * 0.9 = 5.4, so 2 + 0.4 * (3 - 2) = 2.4.
    # Band "3": -1, 0 four times, 1; h = 5 * 0.9 = 4.5, so 0 + 0.5 * (1 - 0) = 0.5.
    # Pooled: -1 six times, 0 four times, 1, 2, 3; h = 12 * 0.9 = 10.8: 1 + 0.8 = 1.8.
    assert model.band_sizes == (7, 6, 0, 0, 0, 0, 0, 0, 0)
    assert model.n_reference_sessions == 13 and model.n_reference_clients == 10
    assert model.band_pooled == (False, False, *(True,) * 7)
    np.testing.assert_allclose(model.band_quantiles, [2.4, 0.5, *(1.8,) * 7], atol=1e-12)
    assert model.pooled_quantile == pytest.approx(1.8, abs=1e-12)
    # The rows themselves, in any order, give this very model.
    order = np.random.default_rng(7).permutation(session.size)
    rows = fit_prepared(
        session[order], y1[order], score[order], 10, lower_is_better=True, min_band_size=5
    )
    assert rows == model


def test_quantile_of_counts_hand_worked() -> None:
    values, counts = np.array([4.0, 0.0, 1.0]), np.array([2, 5, 3])  # 0 ×5, 1 ×3, 4 ×2
    assert quantile_of_counts(values, counts, 0.5) == 0.5  # h = 4.5: between x_4 = 0, x_5 = 1
    assert quantile_of_counts(values, counts, 0.75) == 1.0  # h = 6.75: x_6 = x_7 = 1
    assert quantile_of_counts(values, counts, 0.8) == pytest.approx(1.6)  # h = 7.2: 1 + 0.2 * 3
    assert quantile_of_counts(values, counts, 0.9) == 4.0  # h = 8.1: x_8 = x_9 = 4
    assert quantile_of_counts(np.array([7.5]), np.array([1]), 0.9) == 7.5
    ones = np.array([3.0, -1.0, 2.5, 0.25])  # every count 1: the values are the rows
    assert quantile_of_counts(ones, np.ones(4, dtype=np.int64), 0.9) == np.quantile(ones, 0.9)


def test_fit_counts_rejects_what_fit_rejects() -> None:
    session, y1, score = _saturated_rows()
    s, a, y, n = compress(session, y1, score)
    with pytest.raises(ValueError, match=r"at least 10 clients.*got 9"):
        fit_counts(s, a, y, n, 9, lower_is_better=True)
    with pytest.raises(ValueError, match="quantile"):
        fit_counts(s, a, y, n, 10, lower_is_better=True, quantile=1.0)
    with pytest.raises(ValueError, match="min_band_size"):
        fit_counts(s, a, y, n, 10, lower_is_better=True, min_band_size=0)
    two = s == 2
    with pytest.raises(ValueError, match="cannot identify"):
        fit_counts(s[two], a[two], y[two], n[two], 10, lower_is_better=True)
    with pytest.raises(ValueError, match="sorted"):
        fit_counts(s[::-1], a[::-1], y[::-1], n[::-1], 10, lower_is_better=True)
    with pytest.raises(ValueError, match="counts >= 1"):
        fit_counts(s, a, y, n * 0, 10, lower_is_better=True)


@st.composite
def fit_rows(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Later scores with their session and intake: integer scores (many repeated triples) or
    scores with decimals (few)."""
    n = draw(st.integers(8, 120))
    session = np.array(draw(st.lists(st.integers(2, 16), min_size=n, max_size=n)))
    intake = np.array(draw(st.lists(st.integers(0, 27), min_size=n, max_size=n)), float)
    fine = draw(st.booleans())
    step = st.floats(-5, 30, allow_nan=False) if fine else st.integers(0, 27).map(float)
    score = np.array(draw(st.lists(step, min_size=n, max_size=n)))
    assume(np.unique(session).size >= 2 and np.unique(intake).size >= 2)
    return session.astype(np.int64), intake, score


def _worse_rows(
    model: TrajectoryModel, session: np.ndarray, y1: np.ndarray, y: np.ndarray
) -> np.ndarray:
    b0, b1, b2, b3 = model.coef
    log_s = np.array([math.log(s) for s in range(1, 17)])[session - 1]
    expected = b0 + b1 * y1 + (b2 + b3 * y1) * log_s
    return y - expected if model.lower_is_better else expected - y


@settings(max_examples=150, deadline=None)
@given(rows=fit_rows(), lower=st.booleans(), q=st.sampled_from([0.5, 0.75, 0.9, 0.95]))
def test_fit_counts_is_least_squares_and_quantiles_on_the_rows(
    rows: tuple[np.ndarray, np.ndarray, np.ndarray], lower: bool, q: float
) -> None:
    """The weighted fit on the counted triples is the ordinary fit on the rows they stand for
    (coefficients to rounding), and the band quantiles are exactly ``np.quantile`` of the rows'
    residuals under those coefficients."""
    session, y1, score = rows
    try:
        model = fit_counts(
            *compress(session, y1, score), 10, lower_is_better=lower, quantile=q, min_band_size=3
        )
    except ValueError:
        assume(False)
        raise
    log_s = np.log(session.astype(np.float64))
    design = np.column_stack([np.ones(session.size), y1, log_s, y1 * log_s])
    ols, *_ = np.linalg.lstsq(design, score, rcond=None)
    scale = max(1.0, float(np.abs(ols).max()))
    np.testing.assert_allclose(model.coef, ols, rtol=1e-9, atol=1e-9 * scale)
    worse = _worse_rows(model, session, y1, score)
    band = session_band(session)
    pooled = float(np.quantile(worse, q))
    assert model.pooled_quantile == pooled
    for k in range(len(BANDS)):
        here = worse[band == k]
        assert model.band_sizes[k] == here.size
        want = float(np.quantile(here, q)) if here.size >= 3 else pooled
        assert model.band_quantiles[k] == want


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=12),
    data=st.data(),
    q=st.floats(0.001, 0.999),
)
def test_quantile_of_counts_is_np_quantile_of_the_expanded_values(
    values: list[float], data: st.DataObject, q: float
) -> None:
    counts = data.draw(st.lists(st.integers(1, 40), min_size=len(values), max_size=len(values)))
    expanded = np.repeat(np.array(values), counts)
    assert quantile_of_counts(np.array(values), np.array(counts), q) == np.quantile(expanded, q)


@settings(max_examples=100, deadline=None)
@given(rows=fit_rows(), seed=st.integers(0, 2**32 - 1), lower=st.booleans())
def test_the_model_depends_only_on_the_multiset_of_rows(
    rows: tuple[np.ndarray, np.ndarray, np.ndarray], seed: int, lower: bool
) -> None:
    session, y1, score = rows
    order = np.random.default_rng(seed).permutation(session.size)
    try:
        model = fit_prepared(session, y1, score, 10, lower_is_better=lower, min_band_size=3)
    except ValueError as exc:
        with pytest.raises(ValueError, match=str(exc)[:30]):
            fit_prepared(session[order], y1[order], score[order], 10, lower_is_better=lower)
        return
    shuffled = fit_prepared(
        session[order], y1[order], score[order], 10, lower_is_better=lower, min_band_size=3
    )
    assert shuffled == model
    # Splitting the rows in two and merging their counts gives the same triples, too.
    cut = session.size // 2
    halves = [
        FitCounts(*compress(session[p], y1[p], score[p]), 5) for p in (order[:cut], order[cut:])
    ]
    merged = merge_counts(halves)
    assert fit_counts(*merged, lower_is_better=lower, min_band_size=3) == model


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.tuples(st.integers(1, 25), st.integers(2, 40)),
    gone=st.floats(0.0, 0.5),
    negative_zero=st.booleans(),
    text_ids=st.booleans(),
    lower=st.booleans(),
    chunk=st.sampled_from([1, 7, 1 << 20]),
)
def test_keyed_csv_is_the_csv_writer_byte_for_byte(
    seed: int,
    shape: tuple[int, int],
    gone: float,
    negative_zero: bool,
    text_ids: bool,
    lower: bool,
    chunk: int,
) -> None:
    """Trajectory rows written from their tail keys (each distinct key's columns formatted
    once) are the bytes Polars' CSV writer gives for the same rows, -0.0 scores included."""
    import io

    from bordin.measures import batch
    from bordin.measures.trajectories import BANDS, TAIL_KEY, TrajectoryModel

    rng = np.random.default_rng(seed)
    values = rng.integers(0, 28, shape).astype(np.float64)
    values[rng.random(shape) < gone] = np.nan
    if negative_zero:
        values[values == 0] = -0.0
    present = ~np.isnan(values)
    last = np.where(present.any(axis=1), shape[1] - np.argmax(present[:, ::-1], axis=1), 0)
    ids = [f"c{i}" for i in range(shape[0])] if text_ids else list(range(shape[0]))
    matrix = SeriesMatrix(pl.Series("client_id", ids), values, last.astype(np.int64))
    model = TrajectoryModel(
        coef=tuple(float(x) for x in rng.normal(0, 3, 4)),  # type: ignore[arg-type]
        band_quantiles=tuple(float(x) for x in rng.random(len(BANDS)) * 6),
        lower_is_better=lower,
        quantile=0.9,
        n_reference_clients=100,
        n_reference_sessions=1000,
    )
    keyed = model.evaluate(matrix, tail_range=(0, 27))
    assert keyed.drop(TAIL_KEY).equals(model.evaluate(matrix))
    table = keyed.with_columns(pl.lit("phq9").alias("measure")).select(
        *batch.SCHEMAS["trajectories"], TAIL_KEY
    )
    out = io.BytesIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(batch, "KEYED_ROWS", chunk)
        written = batch.write_keyed_csv(table, out, "phq9")
    assert written == (table.height > 0)
    plain = table.drop(TAIL_KEY).write_csv(include_header=False, quote_style="never")
    assert out.getvalue() == (plain.encode() if written else b"")


def test_scores_that_are_not_whole_numbers_are_not_keyed() -> None:
    from bordin.measures import batch
    from bordin.measures.trajectories import BANDS, TAIL_KEY, TrajectoryModel

    values = np.array([[10.0, 9.5, 8.0], [12.0, 11.0, 10.0]])
    matrix = SeriesMatrix(pl.Series("client_id", [1, 2]), values, np.array([3, 3]))
    model = TrajectoryModel((1.0, 0.9, -0.5, 0.0), (2.0,) * len(BANDS), True, 0.9, 10, 100)
    keyed = model.evaluate(matrix, tail_range=(0, 27))
    assert keyed.get_column(TAIL_KEY).to_list() == [-1] * keyed.height
    table = keyed.with_columns(pl.lit("phq9").alias("measure"))
    assert not batch.write_keyed_csv(table, None, "phq9")  # type: ignore[arg-type]
