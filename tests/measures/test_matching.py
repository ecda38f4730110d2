"""Tests for matching clients to therapists by measured results (bordin.measures.matching)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from bordin.measures.matching import (
    EffectsModel,
    TherapistEstimate,
    Validation,
    blup,
    estimate_effects,
    held_out_correlation,
    match,
    mixture_quantiles,
    residual_variance,
    shortlist,
    simulate_clinic,
    simulate_offer_rate,
    split_by_period,
    validate,
)

AREAS = ("anxiety", "depression", "relationships", "trauma")
IDS = tuple(f"t{i:02d}" for i in range(12))
#: A held-out check that passed, for tests of the other rules of the shortlist.
CHECKED = Validation(True, "Checked.")


def frame_from_counts(counts: dict[tuple[str, str], tuple[int, int]]) -> pl.DataFrame:
    """One row per episode from {(therapist, area): (improved, episodes)}."""
    rows = [(t, a, i < k) for (t, a), (k, n) in counts.items() for i in range(n)]
    return pl.DataFrame(
        {
            "therapist_id": [r[0] for r in rows],
            "problem_area": [r[1] for r in rows],
            "reliable_improvement": [r[2] for r in rows],
        },
        schema={
            "therapist_id": pl.String,
            "problem_area": pl.String,
            "reliable_improvement": pl.Boolean,
        },
    )


def planted(
    seed: int, per_therapist: int
) -> tuple[pl.DataFrame, dict[tuple[str, str], float], set[tuple[str, str]]]:
    """12 therapists x 4 areas; every therapist strong in one area, half of them in two.

    True rate: logit p = -0.3 + general_j + 1.6 * strong_ja, general_j ~ N(0, 0.2); each
    therapist's clients fall in the four areas at random, ending on random days of two years.
    """
    rng = np.random.default_rng(seed)
    strong = {(IDS[i], AREAS[i % 4]) for i in range(12)}
    strong |= {(IDS[i], AREAS[(i + 1) % 4]) for i in range(0, 12, 2)}
    general = rng.normal(0.0, 0.2, 12)
    truth = {
        (t, a): float(special.expit(-0.3 + general[i] + (1.6 if (t, a) in strong else 0.0)))
        for i, t in enumerate(IDS)
        for a in AREAS
    }
    therapist = np.repeat(IDS, per_therapist)
    area = np.array(AREAS)[rng.integers(0, 4, therapist.size)]
    p = np.array([truth[(t, a)] for t, a in zip(therapist, area, strict=True)])
    frame = pl.DataFrame(
        {
            "therapist_id": therapist,
            "problem_area": area,
            "reliable_improvement": rng.random(therapist.size) < p,
            "change": rng.normal(0.8, 0.6, therapist.size) + 0.8 * (p - 0.5),
            "alliance": np.clip(rng.normal(7.5, 1.0, therapist.size), 0, 10),
            "ended": rng.integers(0, 730, therapist.size),
        }
    )
    return frame, truth, strong


# ---------------------------------------------------------------------------- hand-worked


def test_blup_one_area_by_hand() -> None:
    """Raudenbush & Bryk (2002, eq. 3.56-3.62) for one area, the SDs fixed.

    Two therapists, 4 episodes each, rates 0.75 and 0.25, sigma^2 = 0.25, tau = 0.3:
    V = 0.25 / 4 = 0.0625, lambda = 0.09 / (0.09 + 0.0625) = 0.590164, mu_hat = 0.5 (balanced),
    theta_1 = 0.5 + lambda * 0.25 = 0.647541, Var(mu_hat) = (0.09 + 0.0625) / 2 = 0.07625 and
    PEV = tau^2 (1 - lambda) + (1 - lambda)^2 Var(mu_hat) = 0.036885 + 0.012807 = 0.049692:
    the second term is the uncertainty of mu, which plug-in empirical Bayes leaves out.
    """
    parts = blup(
        np.array([[4.0], [4.0]]), np.array([[0.75], [0.25]]), 0.25, np.array([0.3]), np.zeros(1)
    )
    lam = 0.09 / 0.1525
    assert parts["beta"][0, 0] == pytest.approx(0.5)
    assert parts["p"][0, 0, 0] == pytest.approx(0.07625)
    assert parts["theta"][0, :, 0] == pytest.approx([0.5 + lam * 0.25, 0.5 - lam * 0.25])
    pev = 0.09 * (1 - lam) + (1 - lam) ** 2 * 0.07625
    assert parts["pev"][0, :, 0] == pytest.approx([pev, pev])
    assert pev == pytest.approx(0.049692, abs=1e-6)


def test_blup_borrows_from_other_areas_by_hand() -> None:
    """A therapist with no episodes in an area is predicted at mu_a + u_j.

    Therapist 0: 10 episodes in area 0 at rate 0.9; therapists 1 and 2: 10 in each area at
    0.5. With tau_v = 0 the model is a therapist intercept plus area means; with tau_u = 0.2,
    sigma^2 = 0.2: the prediction of therapist 0 in area 1 is beta_1 + u_0, and u_0 is the
    same shift as in area 0.
    """
    n = np.array([[10.0, 0.0], [10.0, 10.0], [10.0, 10.0]])
    ybar = np.array([[0.9, 0.0], [0.5, 0.5], [0.5, 0.5]])
    parts = blup(n, ybar, 0.2, np.array([0.2]), np.zeros(1))
    theta, beta = parts["theta"][0], parts["beta"][0]
    u0 = theta[0, 0] - beta[0]
    assert u0 > 0
    assert theta[0, 1] == pytest.approx(beta[1] + u0)
    # Its uncertainty is larger where it has no episodes.
    assert parts["pev"][0, 0, 1] > parts["pev"][0, 0, 0]
    # With no shared therapist effect nothing is borrowed: the area mean.
    alone = blup(n, ybar, 0.2, np.zeros(1), np.array([0.2]))
    assert alone["theta"][0, 0, 1] == pytest.approx(alone["beta"][0, 1])


def test_residual_variance_and_mixture_quantiles_by_hand() -> None:
    # Cells 2/4 and 1/4: (4 * 0.25 + 4 * 0.1875) / (8 - 2) = 1.75 / 6.
    assert residual_variance(np.array([4.0, 4.0]), np.array([0.5, 0.25])) == pytest.approx(1.75 / 6)
    # A 50:50 mixture of N(-1, 1) and N(1, 1) has median 0 and is symmetric.
    q = mixture_quantiles(
        np.array([0.5, 0.5]), np.array([[-1.0], [1.0]]), np.ones((2, 1)), [0.05, 0.5, 0.95]
    )[:, 0]
    assert q[1] == pytest.approx(0.0, abs=1e-9)
    assert q[0] == pytest.approx(-q[2], abs=1e-9)
    cdf = 0.5 * stats.norm.cdf(q[2], -1, 1) + 0.5 * stats.norm.cdf(q[2], 1, 1)
    assert cdf == pytest.approx(0.95, abs=1e-9)


def test_blup_matches_statsmodels_mixedlm() -> None:
    """At MixedLM's REML variance components, our GLS means and BLUPs are MixedLM's.

    The episode-level model ``y ~ 0 + C(area)`` with a random therapist intercept and a
    therapist-by-area variance component is the model of the module; given the variances, the
    cell means are sufficient, so the two must agree to numerical precision.
    """
    import statsmodels.formula.api as smf

    frame = simulate_clinic(3, therapists=10, episodes=30, areas=3, general_sd=0.6, area_sd=0.4)
    data = frame.with_columns(pl.col("reliable_improvement").cast(pl.Float64).alias("y"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = smf.mixedlm(
            "y ~ 0 + C(problem_area)",
            data.to_pandas(),
            groups="therapist_id",
            re_formula="1",
            vc_formula={"area": "0 + C(problem_area)"},
        ).fit(reml=True)
    therapists = sorted(data.get_column("therapist_id").unique().to_list())
    areas = sorted(data.get_column("problem_area").unique().to_list())
    cells = data.group_by("therapist_id", "problem_area").agg(pl.len(), pl.col("y").mean())
    n, ybar = np.zeros((10, 3)), np.zeros((10, 3))
    for t, a, count, mean in cells.iter_rows():
        n[therapists.index(t), areas.index(a)] = count
        ybar[therapists.index(t), areas.index(a)] = mean
    tau_u = np.sqrt([float(fitted.cov_re.iloc[0, 0])])
    tau_v = np.sqrt([float(fitted.vcomp[0])])
    parts = blup(n, ybar, float(fitted.scale), tau_u, tau_v)
    assert parts["beta"][0] == pytest.approx(np.asarray(fitted.fe_params), abs=1e-6)
    for j, t in enumerate(therapists):
        effects = fitted.random_effects[t]
        for a, area in enumerate(areas):
            predicted = effects.iloc[0] + effects[f"area[C(problem_area)[{area}]]"]
            assert parts["theta"][0, j, a] - parts["beta"][0, a] == pytest.approx(
                predicted, abs=1e-6
            )
    # The covariance of the area means is MixedLM's covariance of its fixed effects.
    assert parts["p"][0] * 1.0 == pytest.approx(
        np.asarray(fitted.cov_params().iloc[:3, :3]), rel=0.05
    )


def test_estimate_is_the_grid_mixture() -> None:
    counts = {
        ("a", "dep"): (18, 20),
        ("b", "dep"): (10, 20),
        ("c", "dep"): (8, 20),
        ("d", "dep"): (11, 20),
        ("e", "dep"): (4, 8),
        ("f", "dep"): (9, 20),
    }
    model = estimate_effects(frame_from_counts(counts))
    fit = model.fit
    assert fit is not None
    assert fit.weights.sum() == pytest.approx(1.0)
    for j, t in enumerate(fit.therapists):
        e = model.get(t, "dep")
        assert e.estimate == pytest.approx(float(fit.weights @ fit.theta[:, j, 0]))
        k, n = counts[(t, "dep")]
        assert e.raw_rate == pytest.approx(k / n)
        assert e.lower < e.estimate < e.upper
    assert model.area("dep").raw_rate == pytest.approx(60 / 108)


def test_intervals_include_the_uncertainty_of_mu_and_the_spread() -> None:
    """Wider than plug-in empirical Bayes at the posterior mode (mu and tau taken as known)."""
    frame, _, _ = planted(seed=5, per_therapist=40)
    model = estimate_effects(frame.drop("ended"))
    fit = model.fit
    assert fit is not None
    mode = int(np.argmax(fit.weights))
    plug_in_var = fit.pev[mode] - np.einsum("tab,ab,tab->ta", fit.h[mode], fit.p[mode], fit.h[mode])
    widths = np.array([[model.get(t, a).sd for a in fit.areas] for t in fit.therapists])
    assert np.mean(widths**2) > np.mean(plug_in_var)
    assert all(s.pooled_se > 0 for s in model.areas)


def test_no_spread_gives_no_list() -> None:
    counts = {(t, "dep"): (5, 10) for t in "abcdef"}
    model = estimate_effects(frame_from_counts(counts))
    estimates = [e.estimate for e in model.estimates]
    assert max(estimates) - min(estimates) < 1e-9
    s = shortlist(model, problem_area="dep", eligible_therapists=list("abcdef"), validation=CHECKED)
    assert not s.available
    assert "overlap" in s.reason


# ---------------------------------------------------------------------------- planted strengths


@pytest.fixture(scope="module")
def planted_model() -> tuple[EffectsModel, dict[tuple[str, str], float], set[tuple[str, str]]]:
    frame, truth, strong = planted(seed=2026, per_therapist=80)
    return estimate_effects(frame.drop("ended")), truth, strong


def test_recovers_planted_strengths(
    planted_model: tuple[EffectsModel, dict[tuple[str, str], float], set[tuple[str, str]]],
) -> None:
    model, truth, strong = planted_model
    tops = []
    for area in AREAS:
        s = shortlist(model, problem_area=area, eligible_therapists=IDS, validation=CHECKED)
        if s.available:
            tops.append((s.candidates[0].therapist_id, area) in strong)
            assert len(s.candidates) == 3
            values = [c.estimate for c in s.candidates]
            assert values == sorted(values, reverse=True)
    assert sum(tops) >= 3
    estimates = [model.get(t, a).estimate for t, a in truth]
    rho = stats.spearmanr(estimates, list(truth.values())).statistic
    assert rho > 0.7
    # Shrinkage improves on the raw rates (mean squared error against the truth).
    raw = np.array([model.get(t, a).raw_rate or 0.0 for t, a in truth])
    est, true = np.array(estimates), np.array(list(truth.values()))
    assert np.mean((est - true) ** 2) < np.mean((raw - true) ** 2)
    # The 90% intervals cover the true rates about as often as they say.
    covered = [model.get(t, a).lower <= p <= model.get(t, a).upper for (t, a), p in truth.items()]
    assert np.mean(covered) >= 0.8


def test_planted_clinic_passes_the_held_out_check() -> None:
    frame, _, strong = planted(seed=2026, per_therapist=80)
    _, validation, result = match(frame, problem_area="anxiety", eligible_therapists=IDS)
    assert validation.passed, validation.reason
    assert validation.correlation is not None and validation.correlation > 0
    assert validation.n_earlier + validation.n_later == frame.height
    assert result.available, result.reason
    assert (result.candidates[0].therapist_id, "anxiety") in strong
    assert "predicted later clients' results" in result.reason
    assert validation.code == "passed" and result.code == "ranked"
    assert result.params["n_area"] > 0 and result.params["p_best"] >= 0.8


# ---------------------------------------------------------------------------- held-out check


def test_held_out_correlation_is_the_within_area_correlation() -> None:
    """Against numpy on the episodes, centred within each area."""
    areas = np.array([0, 0, 0, 1, 1])
    predicted = np.array([0.3, 0.6, 0.5, 0.2, 0.7])
    n = np.array([4.0, 5.0, 3.0, 6.0, 2.0])
    k = np.array([1.0, 4.0, 1.0, 2.0, 2.0])
    r, p = held_out_correlation(areas, predicted, n, k, permutations=199)
    e, y = [], []
    for a in (0, 1):
        idx = np.flatnonzero(areas == a)
        pe = np.concatenate([[predicted[i]] * int(n[i]) for i in idx])
        ye = np.concatenate([[1.0] * int(k[i]) + [0.0] * int(n[i] - k[i]) for i in idx])
        e.append(pe - pe.mean())
        y.append(ye - ye.mean())
    assert r == pytest.approx(np.corrcoef(np.concatenate(e), np.concatenate(y))[0, 1])
    assert 0 < p <= 1
    # The same data twice: the same p (a fixed seed).
    assert held_out_correlation(areas, predicted, n, k, permutations=199) == (r, p)


def test_split_by_period() -> None:
    frame = frame_from_counts({("a", "dep"): (3, 6)}).with_columns(
        pl.Series("ended", [5, 1, 3, 3, 2, 9])
    )
    split = split_by_period(frame)
    assert split is not None
    earlier, later = split
    # Sorted ends 1 2 3 3 5 9; the cut is the 4th (index 3): 3, and ties go to the later half.
    assert sorted(earlier.get_column("ended").to_list()) == [1, 2]
    assert sorted(later.get_column("ended").to_list()) == [3, 3, 5, 9]
    assert split_by_period(frame.with_columns(pl.lit(1).alias("ended"))) is None
    assert split_by_period(frame.drop("ended")) is None


def test_validate_declines_without_dates_or_overlap() -> None:
    frame = frame_from_counts({("a", "dep"): (3, 6), ("b", "dep"): (2, 6)})
    assert "no episode end dates" in validate(frame).reason
    assert validate(frame).code == "no_dates"
    same_day = frame.with_columns(pl.lit(7).alias("ended"))
    assert "same time" in validate(same_day).reason and validate(same_day).code == "same_end"
    # a saw clients only early, b only late: nobody to compare across periods.
    apart = frame.with_columns(pl.Series("ended", [1] * 6 + [9] * 6))
    result = validate(apart)
    assert not result.passed and "Too few therapists" in result.reason
    assert result.code == "too_few_cells"


def test_null_clinics_rarely_get_a_list() -> None:
    """No true differences: a list is a false offer. 200 clinics per size are in the docs."""
    assert simulate_offer_rate(20, therapists=8, episodes=30, areas=2, permutations=199) <= 0.1


def test_planted_differences_usually_get_a_list() -> None:
    rate = simulate_offer_rate(
        10, therapists=12, episodes=40, areas=2, general_sd=0.5, area_sd=0.5, permutations=199
    )
    assert rate >= 0.7


# ---------------------------------------------------------------------------- declining


def test_declines_with_five_clients_in_total() -> None:
    model = estimate_effects(frame_from_counts({("a", "dep"): (2, 3), ("b", "dep"): (1, 2)}))
    s = shortlist(model, problem_area="dep", eligible_therapists=["a", "b"], validation=CHECKED)
    assert not s.available
    assert s.candidates == ()
    assert "5 finished episodes" in s.reason


def test_declines_thin_area_and_thin_therapists() -> None:
    counts = {(t, "dep"): (1, 2) for t in IDS} | {(t, "anx"): (5, 10) for t in IDS[:3]}
    model = estimate_effects(frame_from_counts(counts))
    # 24 depression episodes but nobody with 3: no track record.
    s = shortlist(model, problem_area="dep", eligible_therapists=IDS, validation=CHECKED)
    assert not s.available
    assert "at least 3" in s.reason
    # An area the service has never seen.
    s = shortlist(model, problem_area="eating", eligible_therapists=IDS, validation=CHECKED)
    assert not s.available
    assert "Only 0 finished episodes" in s.reason
    # Only one eligible therapist with data: nothing to compare, listed as is.
    s = shortlist(
        model,
        problem_area="anx",
        eligible_therapists=["t00", "t05"],
        min_clients_area=20,
        validation=CHECKED,
    )
    assert not s.available
    assert [c.therapist_id for c in s.candidates] == ["t00"]
    assert "not ranked" in s.reason  # t05 has no anxiety episodes


def test_failed_check_lists_unranked_alphabetically() -> None:
    frame, _, _ = planted(seed=2026, per_therapist=80)
    model = estimate_effects(frame.drop("ended"))
    failed = Validation(False, "The check failed.")
    s = shortlist(model, problem_area="anxiety", eligible_therapists=IDS[::-1], validation=failed)
    assert not s.available
    assert s.reason.startswith("The check failed.")
    assert [c.therapist_id for c in s.candidates] == sorted(IDS)
    # The outcome as a code and figures, for callers that word it themselves (the web app).
    assert s.code == "not_validated" and s.waiting == 0
    assert s.params == {"min_therapist_clients": 3, "n_ranked": len(IDS)}


def test_overlap_lists_unranked_alphabetically() -> None:
    counts = {("c", "dep"): (12, 20), ("a", "dep"): (10, 20), ("b", "dep"): (11, 20)}
    model = estimate_effects(frame_from_counts(counts))
    s = shortlist(
        model, problem_area="dep", eligible_therapists=["c", "b", "a"], validation=CHECKED
    )
    assert not s.available
    assert [c.therapist_id for c in s.candidates] == ["a", "b", "c"]
    assert s.code == "overlap" and s.params["needed_p"] == 0.8
    assert 0.5 < s.params["p_best"] < 0.8 and s.params["n_ranked"] == 3


# ---------------------------------------------------------------------------- fairness


def test_refuses_columns_other_than_outcomes() -> None:
    frame = frame_from_counts({("a", "dep"): (5, 10)})
    for column, value in [
        ("therapist_gender", "f"),
        ("shared_lived_experience", True),
        ("client_ethnicity", "x"),
    ]:
        with pytest.raises(ValueError, match="refused"):
            estimate_effects(frame.with_columns(pl.lit(value).alias(column)))


def test_identifiers_are_ignored() -> None:
    frame, _, _ = planted(seed=7, per_therapist=20)
    frame = frame.drop("ended")
    with_ids = frame.with_columns(pl.Series("client_id", np.arange(frame.height)[::-1]))
    assert estimate_effects(frame).estimates == estimate_effects(with_ids).estimates


def test_bad_input() -> None:
    frame = frame_from_counts({("a", "dep"): (5, 10)})
    with pytest.raises(ValueError, match="missing"):
        estimate_effects(frame.drop("problem_area"))
    with pytest.raises(ValueError, match="true/false"):
        estimate_effects(frame.with_columns(pl.lit(2).alias("reliable_improvement")))
    with pytest.raises(ValueError, match="0-10"):
        estimate_effects(frame.with_columns(pl.lit(11.0).alias("alliance")))
    with pytest.raises(ValueError, match="credibility"):
        estimate_effects(frame, credibility=1.0)
    with pytest.raises(ValueError, match="ended"):
        estimate_effects(frame.with_columns(pl.lit("soon").alias("ended")))


def test_means_and_case_mix_adjustment() -> None:
    frame, _, _ = planted(seed=3, per_therapist=30)
    frame = frame.drop("ended")
    model = estimate_effects(frame)
    e = model.get("t00", "anxiety")
    part = frame.filter((pl.col("therapist_id") == "t00") & (pl.col("problem_area") == "anxiety"))
    assert e.mean_change == pytest.approx(part.get_column("change").mean())
    assert e.mean_alliance == pytest.approx(part.get_column("alliance").mean())
    assert not model.adjusted_for_intake
    rng = np.random.default_rng(1)
    severity = rng.normal(15, 4, frame.height) + 6.0 * (
        frame.get_column("therapist_id").to_numpy() == "t00"
    )
    adjusted = estimate_effects(frame.with_columns(pl.Series("intake_severity", severity)))
    assert adjusted.adjusted_for_intake
    # Severity here is unrelated to outcome, so adjustment keeps the area's total count of
    # improvements (up to clipping counts into [0, n]).
    for area in AREAS:
        raw = sum((x.raw_rate or 0) * x.n_clients for x in model.for_area(area).values())
        adj = sum((x.adjusted_rate or 0) * x.n_clients for x in adjusted.for_area(area).values())
        assert adj == pytest.approx(raw, abs=0.01)
    # Therapist t00 gets the hardest clients, and severe clients improve less often.
    worse = frame.with_columns(
        pl.Series("intake_severity", severity),
        (pl.col("reliable_improvement") & pl.lit(pl.Series(severity < 19))).alias(
            "reliable_improvement"
        ),
    )
    raw_model = estimate_effects(worse.drop("intake_severity"))
    adj_model = estimate_effects(worse)
    for area in AREAS:
        assert adj_model.get("t00", area).adjusted_rate > raw_model.get("t00", area).raw_rate


# ---------------------------------------------------------------------------- properties


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(0, 12), min_size=2, max_size=8),
    st.integers(4, 12),
)
def test_balanced_estimate_between_raw_and_grand_mean(successes: list[int], n: int) -> None:
    """One area, equal caseloads: the estimate lies between the raw rate and the grand mean."""
    counts = {(f"t{i}", "dep"): (min(k, n), n) for i, k in enumerate(successes)}
    model = estimate_effects(frame_from_counts(counts))
    grand = model.area("dep").raw_rate
    assert model.area("dep").pooled_rate == pytest.approx(grand)
    for e in model.estimates:
        assert e.raw_rate is not None
        assert min(e.raw_rate, grand) - 1e-9 <= e.estimate <= max(e.raw_rate, grand) + 1e-9
        assert 0 <= e.lower <= e.upper <= 1


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(1, 30), min_size=2, max_size=6),
    st.integers(0, 5),
    st.integers(1, 40),
    st.floats(0.0, 0.5),
    st.floats(0.0, 0.5),
    st.floats(0.05, 0.3),
)
def test_prediction_error_falls_with_more_episodes(
    sizes: list[int], which: int, extra: int, tau_u: float, tau_v: float, sigma2: float
) -> None:
    """More episodes in a cell never widen that cell's prediction interval (SDs held fixed)."""
    rng = np.random.default_rng(len(sizes))
    n = np.array(sizes, dtype=np.float64).reshape(-1, 1) * np.ones((1, 2))
    ybar = rng.random(n.shape)
    j = which % len(sizes)
    more = n.copy()
    more[j, 0] += extra
    before = blup(n, ybar, sigma2, np.array([tau_u]), np.array([tau_v]))["pev"][0, j, 0]
    after = blup(more, ybar, sigma2, np.array([tau_u]), np.array([tau_v]))["pev"][0, j, 0]
    assert after <= before + 1e-12


cell = st.tuples(st.integers(0, 25), st.integers(0, 25)).map(lambda kn: (min(kn), max(kn)))


@st.composite
def clinic(draw: st.DrawFn) -> dict[tuple[str, str], tuple[int, int]]:
    n_therapists = draw(st.integers(2, 8))
    areas = draw(st.sampled_from([("dep",), ("dep", "anx")]))
    counts = {}
    for i in range(n_therapists):
        for a in areas:
            k, n = draw(cell)
            if n:
                counts[(f"t{i}", a)] = (k, n)
    if not any(a == "dep" for _, a in counts):
        counts[("t0", "dep")] = (1, 2)
    return counts


@settings(max_examples=25, deadline=None)
@given(clinic(), st.randoms(use_true_random=False))
def test_relabelling_permutes_the_output(
    counts: dict[tuple[str, str], tuple[int, int]], rnd: object
) -> None:
    therapists = sorted({t for t, _ in counts})
    shuffled = list(therapists)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    rename = dict(zip(therapists, (f"x{s}" for s in shuffled), strict=True))
    frame = frame_from_counts(counts)
    renamed = frame.with_columns(pl.col("therapist_id").replace_strict(rename))
    a, b = (
        estimate_effects(frame),
        estimate_effects(renamed.sample(fraction=1.0, shuffle=True, seed=1)),
    )
    for e in a.estimates:
        f = b.get(rename[e.therapist_id], e.problem_area)
        assert (f.n_clients, f.raw_rate) == (e.n_clients, e.raw_rate)
        assert f.estimate == pytest.approx(e.estimate, abs=1e-7)
        assert (f.lower, f.upper) == pytest.approx((e.lower, e.upper), abs=1e-7)
    for area in {a for _, a in counts}:
        s1 = shortlist(
            a,
            problem_area=area,
            eligible_therapists=therapists,
            min_clients_area=1,
            validation=CHECKED,
        )
        s2 = shortlist(
            b,
            problem_area=area,
            eligible_therapists=list(rename.values()),
            min_clients_area=1,
            validation=CHECKED,
        )
        assert s1.available == s2.available
        key = [(round(c.estimate, 6), c.n_clients) for c in s1.candidates]
        if s1.available:
            assert key == [(round(c.estimate, 6), c.n_clients) for c in s2.candidates]


@settings(max_examples=25, deadline=None)
@given(clinic(), st.floats(0.0, 1.0), st.integers(1, 25), st.integers(0, 7))
def test_ineligible_therapists_never_change_the_ranking(
    counts: dict[tuple[str, str], tuple[int, int]], rate: float, n: int, drop: int
) -> None:
    model = estimate_effects(frame_from_counts(counts))
    therapists = sorted({t for t, _ in counts})
    eligible = [t for i, t in enumerate(therapists) if i != drop % len(therapists)]
    ineligible = [t for t in therapists if t not in eligible]
    outsider = TherapistEstimate("zz", "dep", n, rate, rate, 0.0, 1.0, None, None, rate, 0.1)
    # Whatever the ineligible therapists' results (the dropped one, a newcomer, an unknown id),
    # the eligible therapists' list is the same.
    bigger = dataclasses.replace(model, estimates=(*model.estimates, outsider))
    smaller = dataclasses.replace(
        model, estimates=tuple(e for e in model.estimates if e.therapist_id not in ineligible)
    )
    lists = [
        shortlist(
            m,
            problem_area="dep",
            eligible_therapists=eligible,
            min_clients_area=1,
            validation=CHECKED,
        )
        for m in (model, bigger, smaller)
    ]
    assert lists[0] == lists[1] == lists[2]
    assert all(c.therapist_id in eligible for c in lists[0].candidates)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),
            st.integers(0, 10).map(lambda x: x / 10),
            st.integers(1, 12),
            st.floats(0, 1),
        ),
        min_size=2,
        max_size=12,
    ),
    st.floats(0.1, 10.0),
    st.floats(-1.0, 1.0),
)
def test_held_out_correlation_is_a_correlation(
    cells: list[tuple[int, float, int, float]], scale: float, shift: float
) -> None:
    """r lies in [-1, 1], p in (0, 1], and neither changes when the estimates are rescaled."""
    areas = np.array([c[0] for c in cells], dtype=np.int64)
    predicted = np.array([c[1] for c in cells])
    n = np.array([c[2] for c in cells], dtype=np.float64)
    k = np.round(n * np.array([c[3] for c in cells]))
    r, p = held_out_correlation(areas, predicted, n, k, permutations=99)
    assert 0 < p <= 1
    if np.isnan(r):
        return
    assert -1 - 1e-9 <= r <= 1 + 1e-9
    r2, p2 = held_out_correlation(areas, predicted * scale + shift, n, k, permutations=99)
    assert r2 == pytest.approx(r, abs=1e-9)
    assert p2 == pytest.approx(p)
