"""Tests for the mixed-effects growth model of expected trajectories (bordin.measures.growth)."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bordin.measures import batch, growth, trajectories
from bordin.measures.instruments import builtin_registry
from bordin.measures.longdata import check_long
from bordin.measures.series import SeriesMatrix
from bordin.measures.synth import synthesize

Z90 = NormalDist().inv_cdf(0.9)


def hand_model(
    *,
    lower_is_better: bool = True,
    scale: tuple[float, float] = (0.0, 27.0),
    coef: tuple[float, float, float, float] = (10.0, 0.5, -2.0, 0.0),
    re_cov: tuple[float, float, float] = (4.0, 1.0, 1.0),
    sigma2: float = 5.0,
) -> growth.GrowthModel:
    return growth.GrowthModel(
        coef=coef,
        coef_cov=(0.0,) * 16,
        re_cov=re_cov,
        sigma2=sigma2,
        centre=(20.0, 0.0),
        lower_is_better=lower_is_better,
        scale_min=scale[0],
        scale_max=scale[1],
        quantile=0.9,
        n_reference_clients=500,
        n_fit_clients=500,
        n_fit_sessions=5000,
    )


def simulate(seed: int, n: int, s_max: int = 16) -> SeriesMatrix:
    """Planted growth model: y = 1 + 0.9*y1 + (-0.2*y1 + u1)*ln s + u0 + e, with drop-out."""
    rng = np.random.default_rng(seed)
    intake = rng.normal(18.0, 4.0, n)
    t = np.log(np.arange(1, s_max + 1))[None, :]
    u0 = rng.normal(0.0, 2.0, n)[:, None]
    u1 = rng.normal(0.0, 1.0, n)[:, None]
    y = 1 + 0.9 * intake[:, None] + (-0.2 * intake[:, None] + u1) * t + u0
    y = y + rng.normal(0.0, 2.0, (n, s_max))
    y[:, 0] = intake
    last = rng.integers(3, s_max + 1, n)
    y[np.arange(s_max)[None, :] >= last[:, None]] = np.nan
    return SeriesMatrix(pl.Series("client_id", np.arange(n)), y, last)


# --- hand-worked cases ---------------------------------------------------------------------


def test_mean_and_prediction_sd_by_hand() -> None:
    model = hand_model()
    # intake 22 (c = 2), session 1 (d = 0): mean 10 + 0.5*2 = 11; var 4 + 5 = 9, sd 3.
    assert float(model.expected(22.0, 1)) == pytest.approx(11.0)
    assert float(model.edge(22.0, 1)) == pytest.approx(11.0 + 3.0 * Z90)
    # session e (d = 1): mean 11 - 2 = 9; var 4 + 2*1 + 1 + 5 = 12.
    mean, sd = model._moments(22.0, math.e)
    assert float(mean) == pytest.approx(9.0)
    assert float(sd) == pytest.approx(math.sqrt(12.0))
    low, high = model.interval(22.0, 1, level=0.9)
    z95 = NormalDist().inv_cdf(0.95)
    assert (float(low), float(high)) == pytest.approx((11 - 3 * z95, 11 + 3 * z95))


def test_fixed_effect_uncertainty_adds_to_the_variance() -> None:
    model = hand_model()
    cov = np.zeros((4, 4))
    cov[1, 1] = 0.25  # var(b1)
    wider = growth.GrowthModel(**{**model.__dict__, "coef_cov": tuple(cov.ravel())})
    # at c = 2: x' V x = 4 * 0.25 = 1, so var 9 + 1 = 10.
    assert float(wider._moments(22.0, 1)[1]) == pytest.approx(math.sqrt(10.0))


def test_bounds_are_clipped_to_the_scale() -> None:
    model = hand_model(scale=(0.0, 12.0))
    assert float(model.edge(22.0, 1)) == 12.0  # 11 + 3.84 clipped
    higher = hand_model(lower_is_better=False, scale=(9.0, 27.0))
    assert float(higher.edge(22.0, 1)) == 9.0  # 11 - 3.84 clipped
    assert float(hand_model(scale=(12.0, 27.0)).expected(22.0, 1)) == 12.0


def test_evaluate_flags_scores_beyond_the_edge_with_the_trajectory_columns() -> None:
    model = hand_model()
    # intake 22: edge at session 2 (d = ln 2) is mean + z*sd.
    edge2 = float(model.edge(22.0, 2))
    values = np.array([[22.0, edge2 + 0.01, np.nan, 5.0], [np.nan, 30.0, 30.0, 30.0]])
    matrix = SeriesMatrix(pl.Series("client_id", ["a", "b"]), values, np.array([4, 4]))
    table = model.evaluate(matrix)
    ols_columns = ["client_id", "session", "score", "expected", "upper", "status"]
    assert table.columns == ols_columns
    assert table.get_column("session").to_list() == [2, 4]  # b has no intake
    assert table.get_column("status").to_list() == [trajectories.NOT_ON_TRACK, "on_track"]
    assert table.get_column("upper")[0] == pytest.approx(edge2)
    points = trajectories.evaluate_scores(model, [22.0, edge2 - 0.01])
    assert [p.status for p in points] == ["on_track"]


def test_higher_is_better_flags_scores_below_the_edge() -> None:
    model = hand_model(lower_is_better=False)
    edge = float(model.edge(22.0, 3))
    assert edge < float(model.expected(22.0, 3))
    points = trajectories.evaluate_scores(model, [22.0, None, edge - 0.01])
    assert [p.status for p in points] == [trajectories.NOT_ON_TRACK]


def test_refuses_a_reference_below_the_minimum() -> None:
    small = simulate(1, growth.MIN_REFERENCE_CLIENTS - 1)
    with pytest.raises(ValueError, match=f"need at least {growth.MIN_REFERENCE_CLIENTS}"):
        growth.fit(small, lower_is_better=True, scale_min=0, scale_max=63)


def test_refuses_a_reference_that_cannot_identify_the_model() -> None:
    values = np.tile([10.0, 9.0], (300, 1))
    matrix = SeriesMatrix(pl.Series("client_id", np.arange(300)), values, np.full(300, 2))
    with pytest.raises(ValueError, match="cannot identify"):
        growth.fit(matrix, lower_is_better=True, scale_min=0, scale_max=27)


# --- planted simulation --------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted() -> tuple[growth.GrowthModel, SeriesMatrix]:
    reference = simulate(7, 600)
    model = growth.fit(reference, lower_is_better=True, scale_min=0, scale_max=63)
    return model, simulate(8, 2000)


def test_planted_variance_components_are_recovered(
    planted: tuple[growth.GrowthModel, SeriesMatrix],
) -> None:
    model, _ = planted
    assert model.sigma2 == pytest.approx(4.0, rel=0.1)
    # u1 has SD 1 on ln(s) and u0 SD 2 at ln(s) = 0; the model centres d = ln(s) - m_t.
    assert model.re_cov[2] == pytest.approx(1.0, rel=0.25)
    b3 = model.coef[3]
    assert b3 == pytest.approx(-0.2, abs=0.05)
    assert model.n_fit_clients == 600


def test_out_of_sample_interval_covers_its_level_and_flags_its_share(
    planted: tuple[growth.GrowthModel, SeriesMatrix],
) -> None:
    model, new = planted
    judged = growth.judge(model, new, fit_clients=600)
    assert judged.covered is not None
    assert 0.87 < judged.covered / judged.sessions < 0.93
    assert 0.08 < judged.flagged_sessions / judged.sessions < 0.12
    # A client off track stays off track: many more clients than 10% are flagged once.
    assert judged.flagged_clients / judged.clients > 0.15


def test_calibration_fits_on_one_half_and_judges_the_other() -> None:
    reference = simulate(9, 900)
    cal = growth.calibration(reference, lower_is_better=True, scale_min=0, scale_max=63)
    assert cal.fit_clients == 450
    assert cal.clients == 450
    assert 0.07 < cal.flagged_sessions / cal.sessions < 0.13
    assert cal.covered is not None and 0.86 < cal.covered / cal.sessions < 0.94


def test_a_large_reference_is_sampled_with_a_fixed_seed() -> None:
    reference = simulate(3, 500)
    kw = {"lower_is_better": True, "scale_min": 0, "scale_max": 63}
    long = growth.to_long(reference)
    a = growth.fit_long(long, max_clients=300, **kw)
    b = growth.fit_long(long, max_clients=300, **kw)
    assert a == b
    assert (a.n_reference_clients, a.n_fit_clients) == (500, 300)


# --- properties ----------------------------------------------------------------------------

params = st.tuples(
    st.floats(-5, 30),
    st.floats(-1, 2),
    st.floats(-5, 5),
    st.floats(-0.5, 0.5),
)


@settings(max_examples=60, deadline=None)
@given(
    coef=params,
    lower=st.booleans(),
    intake=st.floats(0, 27),
    session=st.integers(1, 80),
    tau=st.tuples(st.floats(0, 20), st.floats(-1, 1), st.floats(0, 10)),
)
def test_every_bound_lies_within_the_scale(
    coef: tuple[float, float, float, float],
    lower: bool,
    intake: float,
    session: int,
    tau: tuple[float, float, float],
) -> None:
    t00, rho, t11 = tau
    re_cov = (t00, rho * math.sqrt(t00 * t11), t11)  # a valid covariance
    model = hand_model(coef=coef, re_cov=re_cov, lower_is_better=lower)
    values = [
        float(model.expected(intake, session)),
        float(model.edge(intake, session)),
        *(float(v) for v in model.interval(intake, session)),
    ]
    assert all(0.0 <= v <= 27.0 for v in values)


@settings(max_examples=60, deadline=None)
@given(
    intake=st.floats(0, 27),
    session=st.integers(1, 60),
    levels=st.tuples(st.floats(0.05, 0.98), st.floats(0.05, 0.98)),
)
def test_the_interval_widens_with_its_level(
    intake: float, session: int, levels: tuple[float, float]
) -> None:
    model = hand_model(scale=(-1000.0, 1000.0))
    lo_level, hi_level = sorted(levels)
    low_a, high_a = model.interval(intake, session, lo_level)
    low_b, high_b = model.interval(intake, session, hi_level)
    assert float(low_b) <= float(low_a) and float(high_a) <= float(high_b)
    mean = float(model.expected(intake, session))
    assert float(low_a) <= mean <= float(high_a)


@settings(max_examples=60, deadline=None)
@given(intakes=st.tuples(st.floats(0, 27), st.floats(0, 27)), session=st.integers(1, 60))
def test_expectation_is_monotone_in_intake(intakes: tuple[float, float], session: int) -> None:
    # b1 > 0 and b3 = 0: a higher intake never predicts a lower score.
    model = hand_model(coef=(10.0, 0.7, -2.0, 0.0))
    a, b = sorted(intakes)
    assert float(model.expected(a, session)) <= float(model.expected(b, session))


@settings(max_examples=40, deadline=None)
@given(sessions=st.tuples(st.integers(2, 200), st.integers(2, 200)))
def test_long_treatments_are_modelled_continuously(sessions: tuple[int, int]) -> None:
    # with a positive slope variance the prediction SD grows with every later session: no
    # "13+" band lumps sessions 13 and 200 together.
    model = hand_model(re_cov=(4.0, 0.0, 1.0))
    a, b = sorted(sessions)
    sd_a, sd_b = model._moments(20.0, a)[1], model._moments(20.0, b)[1]
    assert float(sd_a) <= float(sd_b)
    if a < b:
        assert float(sd_a) < float(sd_b)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.floats(0, 27), min_size=2, max_size=12), st.booleans())
def test_a_session_is_flagged_exactly_when_it_is_beyond_upper(
    scores: list[float], lower: bool
) -> None:
    model = hand_model(lower_is_better=lower)
    for p in trajectories.evaluate_scores(model, scores):
        worse = p.score - p.upper if lower else p.upper - p.score
        assert (p.status == trajectories.NOT_ON_TRACK) == (round(worse, 9) > 0)


# --- wiring --------------------------------------------------------------------------------


def _synth(n: int) -> pl.DataFrame:
    raw = synthesize(n, seed=11).with_columns(pl.col("client_id").cast(pl.String))
    return check_long(raw, builtin_registry(), source="synth")


def test_analyze_uses_the_growth_model_when_asked_and_the_reference_is_large() -> None:
    data = _synth(260)
    results = batch.analyze(data, builtin_registry(), trajectory_model="growth")
    row = results.summary["trajectories"]["phq9"]
    assert "growth" in str(row["model"]["method"])
    assert row["model"]["min_reference_clients"] == growth.MIN_REFERENCE_CLIENTS
    table = results.tables["trajectories"]
    assert table.columns == batch.SCHEMAS["trajectories"]
    assert table.get_column("upper").max() <= 27  # type: ignore[operator]
    assert 0.05 < row["not_on_track_share"] < 0.15
    # the per-client alarm rate, with its interval, is well above the per-session one
    assert row["clients"] == 260
    assert row["clients_not_on_track_share"] > 1.5 * row["not_on_track_share"]
    low, high = row["clients_not_on_track_share_ci"]
    assert low < row["clients_not_on_track_share"] < high


def test_analyze_falls_back_to_least_squares_below_the_minimum() -> None:
    results = batch.analyze(_synth(60), builtin_registry(), trajectory_model="growth")
    row = results.summary["trajectories"]["phq9"]
    assert "Finch" in str(row["model"]["method"]) and "growth" not in row["model"]["method"]
    assert "need at least 200" in row["note"] and "least-squares" in row["note"]


def test_a_partitioned_run_without_rows_says_why_it_used_least_squares() -> None:
    data = _synth(60).filter(pl.col("measure") == "phq9")
    inputs = trajectories.fit_inputs(data.drop("measure"))
    plan = batch.plan_from_parts(
        builtin_registry(),
        present=("phq9",),
        fit_counts={"phq9": inputs},
        trajectory_model="growth",
    )
    assert isinstance(plan.models["phq9"], trajectories.TrajectoryModel)
    assert "--reference" in plan.model_notes["phq9"]["note"]


def test_an_unknown_trajectory_model_is_refused() -> None:
    with pytest.raises(ValueError, match="ols or growth"):
        batch.analyze(_synth(20), builtin_registry(), trajectory_model="quadratic")
