"""Tests for matching clients to therapists by measured results (bordin.measures.matching)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, special, stats

from bordin.measures.matching import (
    M_MAX,
    EffectsModel,
    TherapistEstimate,
    estimate_effects,
    fit_prior,
    marginal_log_likelihood,
    posterior,
    prob_greater,
    shortlist,
)

AREAS = ("anxiety", "depression", "relationships", "trauma")
IDS = tuple(f"t{i:02d}" for i in range(12))


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
    therapist's clients fall in the four areas at random.
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
        }
    )
    return frame, truth, strong


# ---------------------------------------------------------------------------- hand-worked


def test_posterior_mean_is_the_conjugate_formula() -> None:
    # Prior Beta(2, 3), 7 of 10 improved: posterior Beta(9, 6), mean (2 + 7) / (2 + 3 + 10).
    mean, lower, upper = posterior(7, 10, 2.0, 3.0)
    assert mean == pytest.approx(9 / 15)
    # The same as a weighted average of the raw rate and the prior mean, w = n / (M + n).
    w = 10 / (5 + 10)
    assert mean == pytest.approx(w * 0.7 + (1 - w) * 0.4)
    assert lower < mean < upper


def test_posterior_interval_by_hand() -> None:
    # Beta(1, 1) prior and 0 of 1: posterior Beta(1, 2), CDF 1 - (1 - x)^2, so the q-quantile is
    # 1 - sqrt(1 - q): 90% interval [1 - sqrt(0.95), 1 - sqrt(0.05)] = [0.02532, 0.77639].
    mean, lower, upper = posterior(0, 1, 1.0, 1.0, credibility=0.9)
    assert mean == pytest.approx(1 / 3)
    assert lower == pytest.approx(1 - math.sqrt(0.95))
    assert upper == pytest.approx(1 - math.sqrt(0.05))


def test_prob_greater_by_hand() -> None:
    # X ~ Beta(2, 1) (density 2x), Y uniform: P(X > Y) = integral of 2x * x = 2/3.
    assert prob_greater(2, 1, 1, 1) == pytest.approx(2 / 3, abs=1e-6)
    assert prob_greater(3.5, 4.2, 3.5, 4.2) == pytest.approx(0.5, abs=1e-9)
    # X ~ Beta(1, 2), Y ~ Beta(2, 1): P(X > Y) = 1/6 (E[(1 - Y)^2] = 2 * B(2, 3) = 1/6).
    assert prob_greater(1, 2, 2, 1) == pytest.approx(1 / 6, abs=1e-6)


def test_estimate_uses_fitted_prior_exactly() -> None:
    counts = {
        ("a", "dep"): (18, 20),
        ("b", "dep"): (10, 20),
        ("c", "dep"): (8, 20),
        ("d", "dep"): (11, 20),
        ("e", "dep"): (4, 8),
        ("f", "dep"): (9, 20),
    }
    model = estimate_effects(frame_from_counts(counts))
    prior = model.area("dep")
    for (t, _), (k, n) in counts.items():
        e = model.get(t, "dep")
        assert e.estimate == pytest.approx((prior.alpha + k) / (prior.prior_strength + n))
        assert e.raw_rate == pytest.approx(k / n)
    assert prior.raw_rate == pytest.approx(60 / 108)


def test_fit_prior_matches_a_reference_optimiser() -> None:
    """The marginal MLE agrees with scipy's own beta-binomial and a derivative-free search."""
    k = np.array([18, 10, 8, 11, 4, 9, 15, 2], dtype=float)
    n = np.array([20, 20, 20, 20, 8, 20, 18, 12], dtype=float)
    mu, m = fit_prior(k, n)

    def reference(theta: np.ndarray) -> float:
        a = special.expit(theta[0]) * math.exp(theta[1])
        b = (1 - special.expit(theta[0])) * math.exp(theta[1])
        return -float(stats.betabinom.logpmf(k, n, a, b).sum())

    ref = optimize.minimize(
        reference,
        [0.0, 1.0],
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 5000},
    )
    assert mu == pytest.approx(float(special.expit(ref.x[0])), abs=1e-5)
    assert m == pytest.approx(math.exp(ref.x[1]), rel=1e-4)
    # Our likelihood differs from scipy's only by the binomial coefficients.
    const = float(
        np.sum(special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1))
    )
    assert marginal_log_likelihood(mu, m, k, n) + const == pytest.approx(
        -reference(np.array([special.logit(mu), math.log(m)]))
    )


def test_no_spread_pools_completely() -> None:
    # Every therapist 5 of 10: the counts are less spread than chance, M goes to its bound and
    # every estimate is the pooled rate.
    counts = {(t, "dep"): (5, 10) for t in "abcdef"}
    model = estimate_effects(frame_from_counts(counts))
    assert model.area("dep").prior_strength == pytest.approx(M_MAX)
    assert all(e.estimate == pytest.approx(0.5) for e in model.estimates)
    s = shortlist(model, problem_area="dep", eligible_therapists=list("abcdef"))
    assert not s.available
    assert "overlap" in s.reason


# ---------------------------------------------------------------------------- planted strengths


@pytest.fixture(scope="module")
def planted_model() -> tuple[EffectsModel, dict[tuple[str, str], float], set[tuple[str, str]]]:
    frame, truth, strong = planted(seed=2026, per_therapist=80)
    return estimate_effects(frame), truth, strong


def test_recovers_planted_strengths(
    planted_model: tuple[EffectsModel, dict[tuple[str, str], float], set[tuple[str, str]]],
) -> None:
    model, truth, strong = planted_model
    tops = []
    for area in AREAS:
        s = shortlist(model, problem_area=area, eligible_therapists=IDS)
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


def test_cross_check_against_statsmodels_mixed_glm(
    planted_model: tuple[EffectsModel, dict[tuple[str, str], float], set[tuple[str, str]]],
) -> None:
    """A logistic random-intercept model (variational Bayes) orders therapists the same way."""
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    model, _, _ = planted_model
    frame, _, _ = planted(seed=2026, per_therapist=80)
    for area in AREAS:
        part = frame.filter(pl.col("problem_area") == area)
        codes = part.get_column("therapist_id").rank("dense").cast(pl.Int64).to_numpy() - 1
        groups = sorted(part.get_column("therapist_id").unique().to_list())
        exog_vc = np.zeros((part.height, len(groups)))
        exog_vc[np.arange(part.height), codes] = 1.0
        glmm = BinomialBayesMixedGLM(
            part.get_column("reliable_improvement").cast(pl.Float64).to_numpy(),
            np.ones((part.height, 1)),
            exog_vc,
            np.zeros(len(groups), dtype=int),
            vcp_p=1.0,
        ).fit_vb()
        ours = [model.get(t, area).estimate for t in groups]
        rho = stats.spearmanr(ours, glmm.vc_mean).statistic
        assert rho > 0.9, area


# ---------------------------------------------------------------------------- declining


def test_declines_with_five_clients_in_total() -> None:
    model = estimate_effects(frame_from_counts({("a", "dep"): (2, 3), ("b", "dep"): (1, 2)}))
    s = shortlist(model, problem_area="dep", eligible_therapists=["a", "b"])
    assert not s.available
    assert s.candidates == ()
    assert "5 finished episodes" in s.reason


def test_declines_thin_area_and_thin_therapists() -> None:
    counts = {(t, "dep"): (1, 2) for t in IDS} | {(t, "anx"): (5, 10) for t in IDS[:3]}
    model = estimate_effects(frame_from_counts(counts))
    # 24 depression episodes but nobody with 3: no track record.
    s = shortlist(model, problem_area="dep", eligible_therapists=IDS)
    assert not s.available
    assert "at least 3" in s.reason
    # An area the service has never seen.
    s = shortlist(model, problem_area="eating", eligible_therapists=IDS)
    assert not s.available
    assert "Only 0 finished episodes" in s.reason
    # Only one eligible therapist with data: nothing to compare, listed as is.
    s = shortlist(
        model, problem_area="anx", eligible_therapists=["t00", "t05"], min_clients_area=20
    )
    assert not s.available
    assert [c.therapist_id for c in s.candidates] == ["t00"]
    assert "not ranked" in s.reason  # t05 has no anxiety episodes


def test_overlap_lists_unranked_alphabetically() -> None:
    counts = {("c", "dep"): (12, 20), ("a", "dep"): (10, 20), ("b", "dep"): (11, 20)}
    model = estimate_effects(frame_from_counts(counts))
    s = shortlist(model, problem_area="dep", eligible_therapists=["c", "b", "a"])
    assert not s.available
    assert [c.therapist_id for c in s.candidates] == ["a", "b", "c"]


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


def test_means_and_case_mix_adjustment() -> None:
    frame, _, _ = planted(seed=3, per_therapist=30)
    model = estimate_effects(frame)
    e = model.get("t00", "anxiety")
    part = frame.filter((pl.col("therapist_id") == "t00") & (pl.col("problem_area") == "anxiety"))
    assert e.mean_change == pytest.approx(part.get_column("change").mean())
    assert e.mean_alliance == pytest.approx(part.get_column("alliance").mean())
    assert not model.adjusted_for_intake
    # Therapist t00 gets the hardest clients, and severe clients improve less often.
    rng = np.random.default_rng(1)
    severity = rng.normal(15, 4, frame.height) + 6.0 * (
        frame.get_column("therapist_id").to_numpy() == "t00"
    )
    adjusted = estimate_effects(frame.with_columns(pl.Series("intake_severity", severity)))
    assert adjusted.adjusted_for_intake
    # Severity here is unrelated to outcome, so adjustment moves rates only a little and keeps
    # the area's total count of improvements (up to clipping counts into [0, n]).
    for area in AREAS:
        raw = sum((x.raw_rate or 0) * x.n_clients for x in model.for_area(area).values())
        adj = sum((x.adjusted_rate or 0) * x.n_clients for x in adjusted.for_area(area).values())
        assert adj == pytest.approx(raw, abs=0.01)  # exact but for clipping to [0, n]
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
    if not counts:
        counts[("t0", "dep")] = (1, 2)
    return counts


@settings(max_examples=40, deadline=None)
@given(clinic())
def test_estimates_between_raw_and_pooled(counts: dict[tuple[str, str], tuple[int, int]]) -> None:
    model = estimate_effects(frame_from_counts(counts), credibility=0.9)
    for e in model.estimates:
        pooled = model.area(e.problem_area).pooled_rate
        # The mean of a very skewed Beta can fall outside its equal-tailed interval, so only
        # the bounds are checked here.
        assert 0 <= e.lower <= e.upper <= 1
        assert 0 <= e.estimate <= 1
        raw = pooled if e.raw_rate is None else e.raw_rate
        assert min(raw, pooled) - 1e-12 <= e.estimate <= max(raw, pooled) + 1e-12


@given(
    st.floats(0.05, 0.95),
    st.floats(1.0, 200.0),
    st.integers(1, 30),
    st.integers(2, 5),
    st.floats(0.0, 1.0),
)
def test_more_data_narrows_the_interval(
    mu: float, m: float, n: int, factor: int, where: float
) -> None:
    """Multiplying a therapist's counts keeps the rate and narrows the interval.

    This holds when the raw rate is on the same side of 1/2 as the pooled rate and at least as
    far from it (then the posterior mean moves away from 1/2 as data accrue). It is *not* true in
    general: a surprising rate near 1/2 pulls the estimate towards the middle, where rates are
    most variable (prior Beta(0.1, 9.9), 1 of 2 and then 2 of 4 widens the interval).
    """
    k = round(where * n)
    rate = k / n
    if not ((rate - 0.5) * (mu - 0.5) >= 0 and abs(rate - 0.5) >= abs(mu - 0.5)):
        rate_side = 1.0 if mu >= 0.5 else 0.0
        k = round(rate_side * n)
    a, b = mu * m, (1 - mu) * m
    _, lo1, hi1 = posterior(k, n, a, b)
    _, lo2, hi2 = posterior(k * factor, n * factor, a, b)
    assert hi2 - lo2 < hi1 - lo1


def test_more_data_can_widen_far_from_the_middle() -> None:
    """The counter-example from the docstring above, kept so the caveat stays true."""
    _, lo1, hi1 = posterior(1, 2, 0.1, 9.9)
    _, lo2, hi2 = posterior(2, 4, 0.1, 9.9)
    assert hi2 - lo2 > hi1 - lo1


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
        assert f.estimate == pytest.approx(e.estimate, abs=1e-9)
        assert (f.lower, f.upper) == pytest.approx((e.lower, e.upper), abs=1e-9)
    for area in {a for _, a in counts}:
        s1 = shortlist(a, problem_area=area, eligible_therapists=therapists, min_clients_area=1)
        s2 = shortlist(
            b, problem_area=area, eligible_therapists=list(rename.values()), min_clients_area=1
        )
        assert s1.available == s2.available
        key = [(round(c.estimate, 6), c.n_clients) for c in s1.candidates]
        if s1.available:
            assert key == [(round(c.estimate, 6), c.n_clients) for c in s2.candidates]


@settings(max_examples=25, deadline=None)
@given(clinic(), st.integers(0, 25), st.integers(1, 25), st.integers(0, 7))
def test_ineligible_therapists_never_change_the_ranking(
    counts: dict[tuple[str, str], tuple[int, int]], k: int, n: int, drop: int
) -> None:
    model = estimate_effects(frame_from_counts(counts))
    therapists = sorted({t for t, _ in counts})
    eligible = [t for i, t in enumerate(therapists) if i != drop % len(therapists)]
    ineligible = [t for t in therapists if t not in eligible]
    prior = model.area("dep")
    k = min(k, n)
    mean, lower, upper = posterior(k, n, prior.alpha, prior.beta)
    outsider = TherapistEstimate(
        "zz",
        "dep",
        n,
        k / n,
        mean,
        lower,
        upper,
        None,
        None,
        k / n,
        prior.alpha + k,
        prior.beta + n - k,
    )
    # Whatever the ineligible therapists' results (the dropped one, a newcomer, an unknown id),
    # the eligible therapists' list is the same.
    bigger = dataclasses.replace(model, estimates=(*model.estimates, outsider))
    smaller = dataclasses.replace(
        model, estimates=tuple(e for e in model.estimates if e.therapist_id not in ineligible)
    )
    lists = [
        shortlist(m, problem_area="dep", eligible_therapists=eligible, min_clients_area=1)
        for m in (model, bigger, smaller)
    ]
    assert lists[0] == lists[1] == lists[2]
    assert all(c.therapist_id in eligible for c in lists[0].candidates)
