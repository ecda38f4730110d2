"""Matching clients to therapists by measured results: a multilevel model, held-out checks.

Background. Therapists differ in how well their clients do, and the differences are not only
general: a therapist can be effective with depression and average with, say, substance misuse
(Kraus, Castonguay, Boswell et al. 2011, 2016). Constantino, Boswell, Coyne, Swales and Kraus
(2021) used such domain-specific track records from routine outcome data to match new clients
to therapists in a randomised trial; matched clients improved more than clients assigned as
usual. This module computes the track records from a clinic's own data and turns them into a
short list for one new client, but only after checking on the clinic's own data that its
rankings predict later clients' results. It never looks at who the therapist *is* (gender,
ethnicity, personal or lived experience): only at how their finished clients did.

Model. Episode ``i`` of therapist ``j`` in problem area ``a`` ends in reliable improvement
(``y = 1``) or not (``y = 0``). The rate scale is modelled directly (a linear multilevel model,
Raudenbush & Bryk 2002, ch. 3 and 12), with a general therapist effect shared by all areas and
a therapist-by-area deviation (the structure Kraus et al. 2016 studied):

* ``y_ija = mu_a + u_j + v_ja + e_ija``, ``u_j ~ N(0, tau_u^2)``, ``v_ja ~ N(0, tau_v^2)``,
  ``e ~ N(0, sigma^2)``. ``mu_a`` is the area's reference rate and
  ``theta_ja = mu_a + u_j + v_ja`` the therapist's true rate in the area. (The earlier
  beta-binomial version had the pooled rate ``mu`` and the prior strength ``M``, the spread
  between therapists, both plugged in as known; here they are ``mu_a`` and ``tau_u, tau_v``.)
  Because ``u_j`` is shared, a therapist's estimate in a thin area borrows from their results
  in the other areas; a therapist with no episodes in an area gets ``mu_a + u_j`` predicted.
* ``sigma^2`` is the pooled within-cell variance, ``sum_c n_c r_c (1 - r_c) / (N - C)``; given
  it, the cell means ``ybar_ja ~ N(theta_ja, sigma^2 / n_ja)`` carry all the information (the
  "V-known" form, Raudenbush & Bryk 2002, ch. 7).
* Given ``(tau_u, tau_v)``, ``mu`` has the generalised least squares estimate and ``theta`` its
  best linear unbiased prediction (BLUP), with prediction error variance
  ``Var(theta) - c' S^-1 c + h' (X' S^-1 X)^-1 h``, ``h = x - X' S^-1 c`` (Henderson 1975;
  Searle, Casella & McCulloch 1992, sec. 7.4): the last term is the uncertainty of ``mu``, so
  ``mu`` is treated as estimated, not known.
* ``tau_u`` and ``tau_v`` are treated as estimated too: they get a uniform prior on
  ``[0, 0.5]`` (Gelman 2006) and their posterior is evaluated on a 25 x 25 grid from the
  restricted likelihood (Harville 1974; the flat prior on ``mu`` integrated out, as in Gelman
  et al. 2013, sec. 5.4). Each therapist's posterior is the grid-weighted mixture of the
  normal predictions: ``estimate`` is its mean, ``lower``/``upper`` its equal-tailed
  ``credibility`` quantiles (clipped to ``[0, 1]``). Empirical Bayes that plugs in point
  estimates of ``mu`` and the spread gives intervals that are too narrow (Morris 1983).

Case mix. When the optional ``intake_severity`` column is given, the counts are indirectly
standardised: a logistic regression of reliable improvement on problem area and intake severity
gives each episode an expected probability ``q_i``, and ``k_j`` is replaced by
``k_j - sum_i q_i + n_j * mean_area(q)``, clipped to ``[0, n_j]`` (the count the therapist would
have had with the area's average case mix).

Held-out check (:func:`validate`). After Kraus et al. (2016), who classified therapists from
their earlier clients and showed the classification predicted their later clients' outcomes,
the episodes are split by the date they ended (``ended``): the model is fitted on the earlier
half, and each later episode gets its therapist's earlier estimate in its area. The statistic
is the within-area correlation between that estimate and the later outcome; its one-sided
p-value comes from permuting the earlier estimates among the therapists of each area (a
permutation test, exact in size whatever the number of therapists; Good 2005). A list is offered
only when the correlation is positive with ``p < 0.05``.

Ranking (:func:`shortlist`): eligible therapists with enough episodes are ordered by posterior
mean (ties: lower bound, then more episodes, then therapist id). The list is withheld when the
held-out check fails, when the data are too thin, or when the first therapist beats the middle
one with posterior probability below ``min_prob_above_median`` (0.8); then the therapists are
listed unranked. When therapists truly do not differ, a list is offered in 1.0-4.5% of
simulated clinics (200 clinics for each of four sizes, :func:`simulate_offer_rate`; see
``docs/matching.md``); the earlier rule (plug-in empirical Bayes, mu and M taken as known)
offered one in 11-17%. With planted differences (logit SDs 0.5) it offers one in 45-99%.

Sources
-------
* Constantino, M. J., Boswell, J. F., Coyne, A. E., Swales, T. P., & Kraus, D. R. (2021).
  Effect of matching therapists to patients vs assignment as usual on adult psychotherapy
  outcomes: A randomized clinical trial. *JAMA Psychiatry*, 78(9), 960-969.
* Kraus, D. R., Castonguay, L., Boswell, J. F., Nordberg, S. S., & Hayes, J. A. (2011).
  Therapist effectiveness: Implications for accountability and patient care. *Psychotherapy
  Research*, 21(3), 267-276.
* Kraus, D. R., Bentley, J. H., Alexander, P. C., Boswell, J. F., Constantino, M. J., Baxter,
  E. E., & Castonguay, L. G. (2016). Predicting therapist effectiveness from their own practice-
  based evidence. *Journal of Consulting and Clinical Psychology*, 84(6), 473-483.
* Raudenbush, S. W., & Bryk, A. S. (2002). *Hierarchical Linear Models* (2nd ed.). Sage.
* Henderson, C. R. (1975). Best linear unbiased estimation and prediction under a selection
  model. *Biometrics*, 31(2), 423-447.
* Searle, S. R., Casella, G., & McCulloch, C. E. (1992). *Variance Components*. Wiley.
* Harville, D. A. (1974). Bayesian inference for variance components using only error
  contrasts. *Biometrika*, 61(2), 383-385.
* Gelman, A. (2006). Prior distributions for variance parameters in hierarchical models.
  *Bayesian Analysis*, 1(3), 515-534.
* Gelman, A., Carlin, J. B., Stern, H. S., Dunson, D. B., Vehtari, A., & Rubin, D. B. (2013).
  *Bayesian Data Analysis* (3rd ed.). CRC Press.
* Morris, C. N. (1983). Parametric empirical Bayes inference: Theory and applications.
  *Journal of the American Statistical Association*, 78(381), 47-55.
* Good, P. (2005). *Permutation, Parametric, and Bootstrap Tests of Hypotheses* (3rd ed.).
  Springer.

Example
-------
>>> import polars as pl
>>> counts = {"a": (18, 20), "b": (10, 20), "c": (8, 20), "d": (11, 20), "e": (4, 8),
...           "f": (9, 20)}  # therapist: (reliably improved, finished episodes)
>>> rows = [(t, i < k) for t, (k, n) in counts.items() for i in range(n)]
>>> frame = pl.DataFrame({"therapist_id": [t for t, _ in rows],
...                       "problem_area": ["depression"] * len(rows),
...                       "reliable_improvement": [r for _, r in rows]})
>>> model = estimate_effects(frame)
>>> area = model.area("depression")
>>> round(area.raw_rate, 3), round(area.pooled_rate, 3), round(area.pooled_se, 3)
(0.556, 0.553, 0.1)
>>> a = model.get("a", "depression")
>>> a.raw_rate, round(a.estimate, 3), round(a.lower, 2), round(a.upper, 2)
(0.9, 0.788, 0.59, 0.98)
>>> no_check = validate(frame)  # no 'ended' column: rankings cannot be checked
>>> no_check.passed, no_check.reason[:38]
(False, 'The data have no episode end dates, so')
>>> s = shortlist(model, problem_area="depression", eligible_therapists=list("abcdef"),
...               validation=no_check)
>>> s.available, [c.therapist_id for c in s.candidates]  # unranked, alphabetically
(False, ['a', 'b', 'c', 'd', 'e', 'f'])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy import special

FloatArray = npt.NDArray[np.float64]

#: The between-therapist SDs (general and by area, on the rate scale) get a uniform prior on
#: ``[0, TAU_MAX]``, evaluated at the midpoints of ``GRID`` equal bins.
TAU_MAX = 0.5
GRID = 25
#: Grid points whose posterior weight is below this share of the largest are dropped.
WEIGHT_FLOOR = 1e-9
#: Smallest residual variance used (a clinic where every cell is all-or-none).
SIGMA2_MIN = 0.01
#: Estimates are rounded to this many decimals before they are compared for ranking.
ROUND = 9
#: Held-out check: permutations and the one-sided level.
PERMUTATIONS = 2000
ALPHA = 0.05

REQUIRED_COLUMNS = ("therapist_id", "problem_area", "reliable_improvement")
OPTIONAL_COLUMNS = ("change", "alliance", "intake_severity")
#: When each episode ended (a date, a datetime or a number that orders them): the held-out
#: check fits on the earlier half and tests on the later half.
PERIOD_COLUMN = "ended"
#: Identifiers that may travel with the data; their values are never used.
IDENTIFIER_COLUMNS = ("client_id", "episode_id")


@dataclass(frozen=True)
class TherapistEstimate:
    """One therapist's results in one problem area.

    ``raw_rate`` is the observed share of reliably improved clients, ``estimate`` the posterior
    mean of the therapist's true rate and ``lower``/``upper`` its credible interval, which
    includes the uncertainty of the area's reference rate and of the between-therapist spread;
    ``sd`` is the posterior SD. ``adjusted_rate`` is the observed rate after case-mix adjustment
    (equal to ``raw_rate`` without ``intake_severity``). ``mean_change`` and ``mean_alliance``
    are plain means, shown but never ranked.
    """

    therapist_id: str
    problem_area: str
    n_clients: int
    raw_rate: float | None
    estimate: float
    lower: float
    upper: float
    mean_change: float | None
    mean_alliance: float | None
    adjusted_rate: float | None = None
    sd: float = 0.0


@dataclass(frozen=True)
class AreaSummary:
    """One problem area: its observed rate and the posterior of its reference rate ``mu_a``."""

    problem_area: str
    n_episodes: int
    n_therapists: int
    raw_rate: float
    pooled_rate: float
    pooled_se: float


@dataclass(frozen=True)
class Fit:
    """The grid posterior behind an :class:`EffectsModel` (arrays indexed grid x therapist x area).

    ``theta``/``pev``: BLUP and prediction error variance of every therapist-area rate at each
    grid point; ``h``: the vectors ``x - X' S^-1 c`` whose products with ``p`` (the covariance of
    the area means) give the covariance of two therapists' prediction errors.
    """

    therapists: tuple[str, ...]
    areas: tuple[str, ...]
    weights: FloatArray
    theta: FloatArray
    pev: FloatArray
    h: FloatArray
    p: FloatArray

    def prob_greater(self, first: str, second: str, area: str) -> float:
        """Posterior ``P(theta_first > theta_second)`` in ``area`` (two different therapists)."""
        i, k = self.therapists.index(first), self.therapists.index(second)
        a = self.areas.index(area)
        diff = self.theta[:, i, a] - self.theta[:, k, a]
        cov = np.einsum("gb,gbc,gc->g", self.h[:, i, a], self.p, self.h[:, k, a])
        var = np.maximum(self.pev[:, i, a] + self.pev[:, k, a] - 2.0 * cov, 1e-15)
        return float(np.sum(self.weights * special.ndtr(diff / np.sqrt(var))))


@dataclass(frozen=True)
class EffectsModel:
    """Every therapist x problem-area estimate, with the areas' reference rates."""

    estimates: tuple[TherapistEstimate, ...]
    areas: tuple[AreaSummary, ...]
    n_episodes: int
    credibility: float
    min_clients_total: int
    adjusted_for_intake: bool
    #: Posterior means of the general and the area-specific between-therapist SDs, and the
    #: residual SD (rate scale).
    general_sd: float = 0.0
    area_sd: float = 0.0
    residual_sd: float = 0.0
    fit: Fit | None = field(default=None, compare=False, repr=False)

    def area(self, problem_area: str) -> AreaSummary:
        for summary in self.areas:
            if summary.problem_area == problem_area:
                return summary
        raise KeyError(problem_area)

    def for_area(self, problem_area: str) -> dict[str, TherapistEstimate]:
        """Estimates of one area keyed by therapist id."""
        return {e.therapist_id: e for e in self.estimates if e.problem_area == problem_area}

    def get(self, therapist_id: str, problem_area: str) -> TherapistEstimate:
        for e in self.estimates:
            if e.therapist_id == therapist_id and e.problem_area == problem_area:
                return e
        raise KeyError((therapist_id, problem_area))

    def to_frame(self) -> pl.DataFrame:
        """One row per therapist and area, for supervision views and exports."""
        fields = [
            "therapist_id",
            "problem_area",
            "n_clients",
            "raw_rate",
            "adjusted_rate",
            "estimate",
            "lower",
            "upper",
            "mean_change",
            "mean_alliance",
        ]
        schema = {
            "therapist_id": pl.String,
            "problem_area": pl.String,
            "n_clients": pl.Int64,
            **{f: pl.Float64 for f in fields[3:]},
        }
        rows = [{f: getattr(e, f) for f in fields} for e in self.estimates]
        return pl.DataFrame(rows, schema=schema, orient="row")


@dataclass(frozen=True)
class Validation:
    """The held-out check of :func:`validate`; ``passed`` is what :func:`shortlist` needs."""

    passed: bool
    reason: str
    correlation: float | None = None
    p_value: float | None = None
    n_earlier: int = 0
    n_later: int = 0
    n_cells: int = 0
    #: Which outcome ``reason`` describes, for callers that word it themselves (the web app
    #: translates it): ``no_dates``, ``same_end``, ``too_few_cells``, ``no_separation``,
    #: ``passed`` or ``not_predictive``; the figures are the fields above and ``alpha``.
    code: str = ""
    alpha: float = ALPHA


@dataclass(frozen=True)
class Candidate:
    """One therapist on a shortlist; ``prob_above_median`` is ``P(theta_this > theta_middle)``."""

    therapist_id: str
    estimate: float
    lower: float
    upper: float
    n_clients: int
    meets_preferences: bool
    notes: tuple[str, ...]
    prob_above_median: float = 0.5


@dataclass(frozen=True)
class Shortlist:
    """The result of :func:`shortlist`; ``candidates`` are ranked only when ``available``."""

    available: bool
    reason: str
    candidates: tuple[Candidate, ...]
    #: Which outcome ``reason`` describes (``too_few_total``, ``too_few_area``, ``none_ready``,
    #: ``one_ready``, ``not_validated``, ``overlap`` or ``ranked``) and its figures, for callers
    #: that word it themselves (the web app translates it). ``waiting`` eligible therapists have
    #: fewer than ``params["min_therapist_clients"]`` episodes in the area and are not ranked.
    code: str = ""
    params: Mapping[str, float] = field(default_factory=dict)
    waiting: int = 0


# --------------------------------------------------------------------------------------------
# The multilevel model on a grid of the between-therapist SDs


def tau_grid(points: int = GRID, tau_max: float = TAU_MAX) -> FloatArray:
    """Midpoints of ``points`` equal bins of ``[0, tau_max]`` (the uniform prior's support)."""
    return (np.arange(points, dtype=np.float64) + 0.5) * tau_max / points


def residual_variance(n: FloatArray, ybar: FloatArray) -> float:
    """Pooled within-cell variance of a 0/1 outcome, ``sum n r (1 - r) / (N - C)``.

    ``n`` and ``ybar`` are the cells' episode counts and rates (cells without episodes have
    ``n = 0``). Falls back to ``p (1 - p)`` of the whole data when there are no within-cell
    degrees of freedom, and never goes below :data:`SIGMA2_MIN`.

    >>> residual_variance(np.array([4.0, 4.0]), np.array([0.5, 0.25]))  # (1 + 0.75) / (8 - 2)
    0.2916666666666667
    """
    cells = int((n > 0).sum())
    total = float(n.sum())
    if total - cells >= 1:
        value = float(np.sum(n * ybar * (1.0 - ybar)) / (total - cells))
    else:
        rate = float(np.sum(n * ybar) / total) if total else 0.5
        value = rate * (1.0 - rate)
    return max(value, SIGMA2_MIN)


def blup(
    n: FloatArray,
    ybar: FloatArray,
    sigma2: float,
    tau_u: FloatArray,
    tau_v: FloatArray,
    *,
    predictions: bool = True,
) -> dict[str, FloatArray]:
    """GLS area means, BLUPs and their prediction error variances at each ``(tau_u, tau_v)``.

    ``n`` and ``ybar`` are ``therapists x areas`` (``n = 0`` where a therapist has no episodes
    in an area); ``tau_u``/``tau_v`` are equal-length vectors of grid points. The covariance of
    one therapist's cell means is ``S_j = D_j + tau_u^2 11'`` with
    ``D_j = diag(tau_v^2 + sigma^2 / n_ja)``, inverted in closed form (Sherman-Morrison):
    ``S_j^-1 = D^-1 - s_j D^-1 11' D^-1``, ``s_j = tau_u^2 / (1 + tau_u^2 sum_a 1/d_ja)``.
    Returns ``beta`` (G x A), ``p = (X' S^-1 X)^-1`` (G x A x A), ``theta`` and ``pev``
    (G x T x A), ``h`` (G x T x A x A) and ``loglik``, the restricted log likelihood
    ``-1/2 [log|S| + log|X' S^-1 X| + r' S^-1 r]`` (Harville 1974), up to a constant. With
    ``predictions=False`` only ``beta``, ``p`` and ``loglik`` are computed.
    """
    tu2 = (tau_u**2)[:, None, None]
    tv2 = (tau_v**2)[:, None, None]
    seen = n > 0
    d = tv2 + sigma2 / np.where(seen, n, 1.0)[None]
    w = np.where(seen[None], 1.0 / d, 0.0)  # G x T x A
    big_w = w.sum(axis=2)  # G x T
    s = tu2[:, :, 0] / (1.0 + tu2[:, :, 0] * big_w)  # G x T
    areas = n.shape[1]
    xsx = np.einsum("gta,ab->gab", w, np.eye(areas)) - np.einsum("gt,gta,gtb->gab", s, w, w)
    wy = w * ybar[None]
    xsy = wy.sum(axis=1) - np.einsum("gt,gta->ga", s * wy.sum(axis=2), w)
    p = np.linalg.inv(xsx)
    beta = np.einsum("gab,gb->ga", p, xsy)
    r = np.where(seen[None], ybar[None] - beta[:, None, :], 0.0)
    wr = w * r
    q = wr - s[:, :, None] * w * wr.sum(axis=2)[:, :, None]  # S^-1 r, per therapist
    rsr = np.sum(wr * r, axis=(1, 2)) - np.sum(s * wr.sum(axis=2) ** 2, axis=1)
    logdet = np.sum(np.where(seen[None], np.log(d), 0.0), axis=(1, 2)) + np.sum(
        np.log1p(tu2[:, :, 0] * big_w), axis=1
    )
    _, logdet_xsx = np.linalg.slogdet(xsx)
    loglik = -0.5 * (logdet + logdet_xsx + rsr)
    if not predictions:
        return {"beta": beta, "p": p, "loglik": loglik}
    # theta_ja = beta_a + u_j + v_ja: c = Cov(cell means of j, theta_ja) = tau_u^2 1 + tau_v^2 e_a.
    theta = beta[:, None, :] + tu2 * q.sum(axis=2)[:, :, None] + tv2 * q
    # z = S^-1 c for every target area a (last axis b runs over j's cells).
    ones_part = (tu2 * w * (1.0 - s[:, :, None] * big_w[:, :, None]))[:, :, None, :]
    eye = np.eye(areas)[None, None]
    own = tv2[..., None] * (
        w[:, :, :, None] * eye - s[:, :, None, None] * w[..., None] * w[:, :, None, :]
    )
    z = ones_part + own  # G x T x A(target) x A(cell)
    czc = tu2 * z.sum(axis=3) + tv2 * np.einsum("gtaa->gta", z)
    h = eye - z
    pev = tu2 + tv2 - czc + np.einsum("gtab,gbc,gtac->gta", h, p, h)
    return {
        "beta": beta,
        "p": p,
        "theta": theta,
        "pev": np.maximum(pev, 0.0),
        "h": h,
        "loglik": loglik,
    }


def mixture_quantiles(
    weights: FloatArray, means: FloatArray, sds: FloatArray, probs: Sequence[float]
) -> FloatArray:
    """Quantiles of normal mixtures, one mixture per column of ``means``/``sds`` (G x K).

    Bisection on the mixture CDF ``sum_g w_g Phi((x - m_g) / s_g)`` to ``1e-10``.

    >>> float(mixture_quantiles(np.array([1.0]), np.array([[0.0]]), np.array([[1.0]]),
    ...                         [0.975])[0, 0].round(4))
    1.96
    """
    sds = np.maximum(sds, 1e-12)
    lo = np.min(means - 10 * sds, axis=0)
    hi = np.max(means + 10 * sds, axis=0)
    out = np.empty((len(probs), means.shape[1]))
    for i, target in enumerate(probs):
        a, b = lo.copy(), hi.copy()
        for _ in range(60):
            mid = (a + b) / 2
            cdf = np.sum(weights[:, None] * special.ndtr((mid[None] - means) / sds), axis=0)
            below = cdf < target
            a = np.where(below, mid, a)
            b = np.where(below, b, mid)
            if np.max(b - a) < 1e-10:
                break
        out[i] = (a + b) / 2
    return out


def fit_grid(
    n: FloatArray, ybar: FloatArray, sigma2: float, points: int = GRID
) -> tuple[FloatArray, FloatArray, dict[str, FloatArray]]:
    """Posterior weights over the ``(tau_u, tau_v)`` grid and the :func:`blup` results there.

    With a uniform prior on each SD and the flat prior on the area means integrated out, the
    posterior of the SDs is proportional to the restricted likelihood (Harville 1974; Gelman
    et al. 2013, sec. 5.4). Grid points with negligible weight are dropped. With a single area
    only the total SD is identified and the grid runs over it alone.
    """
    grid = tau_grid(points)
    if n.shape[1] == 1:
        # One area: the general and the area-specific effect cannot be told apart, so the
        # uniform prior goes on their total (tau_v = 0) rather than on each.
        tau_u, tau_v = grid, np.zeros(points)
    else:
        tau_u, tau_v = np.repeat(grid, points), np.tile(grid, points)
    # The likelihood on the whole grid first (cheap), the predictions where it matters.
    ll = blup(n, ybar, sigma2, tau_u, tau_v, predictions=False)["loglik"]
    weights = np.exp(ll - ll.max())
    keep = weights >= WEIGHT_FLOOR
    weights = weights[keep] / weights[keep].sum()
    parts = blup(n, ybar, sigma2, tau_u[keep], tau_v[keep])
    return weights, np.stack([tau_u[keep], tau_v[keep]], axis=1), parts


def estimate_effects(
    outcomes: pl.DataFrame, *, min_clients_total: int = 30, credibility: float = 0.9
) -> EffectsModel:
    """Therapist-by-area reliable-improvement rates from the multilevel model (module docstring).

    ``outcomes`` has one row per finished episode: ``therapist_id``, ``problem_area``,
    ``reliable_improvement`` (bool) and optionally ``change`` (improvement-positive change,
    ideally standardised as change / intake SD so that areas with different measures compare;
    only averaged, never ranked), ``alliance`` (the client's mean 0-10 alliance rating),
    ``intake_severity`` (used for case-mix adjustment), ``ended`` (when the episode ended; used
    by :func:`validate`, not here) and the identifiers ``client_id`` / ``episode_id`` (ignored).
    Any other column is refused, so that nothing about therapists or clients other than outcomes
    can enter. Every therapist seen in the data gets an estimate in every area seen (borrowed
    from their other areas when they have no clients there). With fewer than
    ``min_clients_total`` episodes the model is still fitted, but :func:`shortlist` declines.
    """
    _check(outcomes, credibility)
    data = outcomes.with_columns(
        pl.col("therapist_id").cast(pl.String),
        pl.col("problem_area").cast(pl.String),
        pl.col("reliable_improvement").cast(pl.Float64).alias("_y"),
    )
    adjusted = "intake_severity" in data.columns and data.height > 0
    if adjusted:
        q = _expected_probabilities(
            data.get_column("problem_area"),
            data.get_column("intake_severity").cast(pl.Float64).to_numpy(),
            data.get_column("_y").to_numpy(),
        )
        data = data.with_columns(pl.Series("_q", q))
    else:
        data = data.with_columns(pl.col("_y").alias("_q"))
    cells = data.group_by("problem_area", "therapist_id").agg(
        pl.len().alias("n"),
        pl.col("_y").sum().alias("k"),
        pl.col("_q").sum().alias("expected"),
        (pl.col("change").cast(pl.Float64).mean() if "change" in data.columns else pl.lit(None))
        .cast(pl.Float64)
        .alias("mean_change"),
        (pl.col("alliance").cast(pl.Float64).mean() if "alliance" in data.columns else pl.lit(None))
        .cast(pl.Float64)
        .alias("mean_alliance"),
    )
    therapists = sorted(data.get_column("therapist_id").unique().to_list())
    area_names = sorted(data.get_column("problem_area").unique().to_list())
    if not therapists:
        raise ValueError("no episodes to estimate from")
    lookup = {(r["problem_area"], r["therapist_id"]): r for r in cells.iter_rows(named=True)}
    shape = (len(therapists), len(area_names))
    n, k, expected = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for (area, therapist), counts in lookup.items():
        j, a = therapists.index(therapist), area_names.index(area)
        n[j, a], k[j, a], expected[j, a] = counts["n"], counts["k"], counts["expected"]
    area_n = n.sum(axis=0)
    if adjusted:
        # Indirect standardisation: the count with the area's average case mix.
        area_q = expected.sum(axis=0) / area_n
        k_adj = np.clip(k - expected + n * area_q[None], 0.0, n)
    else:
        k_adj = k
    safe_n = np.where(n > 0, n, 1.0)
    ybar = np.where(n > 0, k_adj / safe_n, 0.0)
    sigma2 = residual_variance(n, np.where(n > 0, k / safe_n, 0.0))
    weights, taus, parts = fit_grid(n, ybar, sigma2)

    theta, pev = parts["theta"], parts["pev"]
    g, t, a = theta.shape
    mean = np.einsum("g,gta->ta", weights, theta)
    var = np.einsum("g,gta->ta", weights, pev + theta**2) - mean**2
    tail = (1.0 - credibility) / 2.0
    bounds = mixture_quantiles(
        weights, theta.reshape(g, t * a), np.sqrt(pev).reshape(g, t * a), [tail, 1.0 - tail]
    ).reshape(2, t, a)
    beta, p = parts["beta"], parts["p"]
    beta_mean = weights @ beta
    beta_var = weights @ (np.einsum("gaa->ga", p) + beta**2) - beta_mean**2

    estimates: list[TherapistEstimate] = []
    summaries: list[AreaSummary] = []
    for ai, area in enumerate(area_names):
        summaries.append(
            AreaSummary(
                problem_area=area,
                n_episodes=int(area_n[ai]),
                n_therapists=int((n[:, ai] > 0).sum()),
                raw_rate=float(k[:, ai].sum() / area_n[ai]),
                pooled_rate=float(beta_mean[ai]),
                pooled_se=math.sqrt(max(float(beta_var[ai]), 0.0)),
            )
        )
        for ti, therapist in enumerate(therapists):
            row = lookup.get((area, therapist))
            n_j = n[ti, ai]
            estimates.append(
                TherapistEstimate(
                    therapist_id=therapist,
                    problem_area=area,
                    n_clients=int(n_j),
                    raw_rate=float(k[ti, ai] / n_j) if n_j else None,
                    estimate=float(np.clip(mean[ti, ai], 0.0, 1.0)),
                    lower=float(np.clip(bounds[0, ti, ai], 0.0, 1.0)),
                    upper=float(np.clip(bounds[1, ti, ai], 0.0, 1.0)),
                    mean_change=row["mean_change"] if row else None,
                    mean_alliance=row["mean_alliance"] if row else None,
                    adjusted_rate=float(k_adj[ti, ai] / n_j) if n_j else None,
                    sd=math.sqrt(max(float(var[ti, ai]), 0.0)),
                )
            )
    return EffectsModel(
        estimates=tuple(estimates),
        areas=tuple(summaries),
        n_episodes=data.height,
        credibility=credibility,
        min_clients_total=min_clients_total,
        adjusted_for_intake=adjusted,
        general_sd=float(weights @ taus[:, 0]),
        area_sd=float(weights @ taus[:, 1]),
        residual_sd=math.sqrt(sigma2),
        fit=Fit(
            therapists=tuple(therapists),
            areas=tuple(area_names),
            weights=weights,
            theta=theta,
            pev=pev,
            h=parts["h"],
            p=p,
        ),
    )


# --------------------------------------------------------------------------------------------
# The held-out check (after Kraus et al. 2016)


def split_by_period(outcomes: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """Earlier and later episodes: later are those that ended on or after the median end.

    The cut is the end of the episode at position ``N // 2`` in date order, so ties at the cut
    all go to the later period. ``None`` when there is no ``ended`` column or no earlier period.
    """
    if PERIOD_COLUMN not in outcomes.columns or outcomes.height < 2:
        return None
    ordered = outcomes.sort(PERIOD_COLUMN)
    cut = ordered.get_column(PERIOD_COLUMN)[outcomes.height // 2]
    earlier = ordered.filter(pl.col(PERIOD_COLUMN) < cut)
    later = ordered.filter(pl.col(PERIOD_COLUMN) >= cut)
    if earlier.height == 0:
        return None
    return earlier, later


def held_out_correlation(
    areas: npt.NDArray[np.int64],
    predicted: FloatArray,
    n_later: FloatArray,
    k_later: FloatArray,
    permutations: int = PERMUTATIONS,
    seed: int = 0,
) -> tuple[float, float]:
    """Within-area correlation of earlier estimates with later outcomes, and its permutation p.

    One entry per therapist-area cell with later episodes: the area code, the cell's estimate
    from the earlier period and its later count of episodes and of reliable improvements. The
    correlation is taken over later episodes after centring the estimate and the outcome within
    each area (episode-weighted): ``r = sum_c (e_c - m_a) S_c / sqrt(sum_c n_c (e_c - m_a)^2 *
    sum_i (y_i - ybar_a)^2)``, ``S_c = k_c - n_c ybar_a``. The one-sided p-value is
    ``(1 + #{r_perm >= r}) / (1 + B)`` over ``B`` random permutations of the estimates among the
    cells of each area (Good 2005). Returns ``(nan, 1.0)`` when nothing varies.

    >>> r, p = held_out_correlation(np.array([0, 0]), np.array([0.2, 0.8]),
    ...                             np.array([2.0, 2.0]), np.array([0.0, 2.0]), permutations=99)
    >>> round(r, 6), p >= 0.3  # two cells can only be ordered two ways
    (1.0, True)
    """
    rng = np.random.default_rng(seed)
    ybar = np.zeros_like(predicted)
    ss_y = 0.0
    perms = np.tile(predicted, (permutations + 1, 1))
    for code in np.unique(areas):
        idx = np.flatnonzero(areas == code)
        rate = k_later[idx].sum() / n_later[idx].sum()
        ybar[idx] = rate
        ss_y += float(
            np.sum(k_later[idx] * (1 - rate) ** 2 + (n_later[idx] - k_later[idx]) * rate**2)
        )
        order = np.argsort(rng.random((permutations, idx.size)), axis=1)
        perms[1:, idx] = predicted[idx][order]
    s = k_later - n_later * ybar
    centred = perms.copy()
    for code in np.unique(areas):
        idx = np.flatnonzero(areas == code)
        m = (perms[:, idx] * n_later[idx]).sum(axis=1) / n_later[idx].sum()
        centred[:, idx] = perms[:, idx] - m[:, None]
    ss_e = (centred**2 * n_later).sum(axis=1)
    if ss_y <= 0 or ss_e[0] <= 1e-15:
        return math.nan, 1.0
    r = (centred * s).sum(axis=1) / np.sqrt(np.maximum(ss_e, 1e-300) * ss_y)
    p = (1.0 + float(np.sum(r[1:] >= r[0] - 1e-12))) / (1.0 + permutations)
    return float(r[0]), p


def _p_text(p: float) -> str:
    """``p = 0.012``, or ``p < 0.001`` below that.

    >>> _p_text(0.0004), _p_text(0.0123)
    ('p < 0.001', 'p = 0.012')
    """
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def validate(
    outcomes: pl.DataFrame,
    *,
    alpha: float = ALPHA,
    permutations: int = PERMUTATIONS,
    seed: int = 0,
) -> Validation:
    """Do rankings from the earlier half of the episodes predict the later half's results?

    Splits the episodes at the median ``ended`` (:func:`split_by_period`), fits
    :func:`estimate_effects` to the earlier ones, and correlates each later episode's outcome
    with its therapist's earlier estimate in its area (:func:`held_out_correlation`). Passes
    when the correlation is positive with one-sided permutation ``p < alpha`` (after Kraus et al.
    2016). The reason is written for a clinic lead.
    """
    split = split_by_period(outcomes)
    if split is None:
        why = (
            "The data have no episode end dates, so "
            if PERIOD_COLUMN not in outcomes.columns
            else "All episodes ended at the same time, so "
        )
        return Validation(
            False,
            why + "there is no way to check that rankings from earlier clients predict later "
            "clients' results. No ranked list is offered.",
            code="no_dates" if PERIOD_COLUMN not in outcomes.columns else "same_end",
        )
    earlier, later = split
    model = estimate_effects(earlier.drop(PERIOD_COLUMN))
    later_cells = (
        later.with_columns(
            pl.col("therapist_id").cast(pl.String), pl.col("problem_area").cast(pl.String)
        )
        .group_by("problem_area", "therapist_id")
        .agg(pl.len().alias("n"), pl.col("reliable_improvement").cast(pl.Float64).sum().alias("k"))
        .sort("problem_area", "therapist_id")
    )
    known_areas = [s.problem_area for s in model.areas]
    known = {(e.therapist_id, e.problem_area): e.estimate for e in model.estimates}
    rows = [
        (
            known_areas.index(r["problem_area"]),
            known[(r["therapist_id"], r["problem_area"])],
            r["n"],
            r["k"],
        )
        for r in later_cells.iter_rows(named=True)
        if (r["therapist_id"], r["problem_area"]) in known
    ]
    n_cells = len(rows)
    counts = {"n_earlier": earlier.height, "n_later": later.height, "n_cells": n_cells}
    if n_cells < 2:
        return Validation(
            False,
            "Too few therapists saw clients in both the earlier and the later period to check "
            "that rankings predict later results. No ranked list is offered.",
            **counts,
            code="too_few_cells",
        )
    r, p = held_out_correlation(
        np.array([x[0] for x in rows], dtype=np.int64),
        np.array([x[1] for x in rows], dtype=np.float64),
        np.array([x[2] for x in rows], dtype=np.float64),
        np.array([x[3] for x in rows], dtype=np.float64),
        permutations=permutations,
        seed=seed,
    )
    what = (
        f"Checked on the clinic's own data: therapists were ranked on the {earlier.height} "
        f"earlier episodes and compared with the {later.height} later ones"
    )
    if math.isnan(r):
        return Validation(
            False,
            what + ", but the earlier rankings did not separate the therapists. No ranked list "
            "is offered.",
            None,
            p,
            **counts,
            code="no_separation",
        )
    passed = r > 0 and p < alpha
    verdict = (
        f"; the earlier ranking predicted later clients' results (correlation {r:.2f}, "
        f"{_p_text(p)})."
        if passed
        else f"; the earlier ranking did not reliably predict later clients' results "
        f"(correlation {r:.2f}, p = {p:.2f}; p below {alpha:.2f} is needed). Therapists' results "
        "here may differ by chance, so no ranked list is offered."
    )
    code = "passed" if passed else "not_predictive"
    return Validation(passed, what + verdict, r, p, **counts, code=code, alpha=alpha)


# --------------------------------------------------------------------------------------------
# The shortlist


def _rank_key(e: TherapistEstimate) -> tuple[float, float, int, str]:
    return (-round(e.estimate, ROUND), -round(e.lower, ROUND), -e.n_clients, e.therapist_id)


def _notes(e: TherapistEstimate, model: EffectsModel) -> tuple[str, ...]:
    notes = [f"based on {e.n_clients} finished episodes in this area"]
    if e.raw_rate is not None:
        notes.append(f"{round(100 * e.raw_rate)}% reliably improved (before pooling)")
    if model.adjusted_for_intake and e.adjusted_rate is not None:
        notes.append(f"{round(100 * e.adjusted_rate)}% after adjusting for intake severity")
    if e.upper - e.lower > 0.3:
        notes.append("few episodes: the interval is wide")
    if e.mean_alliance is not None:
        notes.append(f"mean client-rated alliance {e.mean_alliance:.1f} of 10 (not ranked)")
    return tuple(notes)


def _candidate(e: TherapistEstimate, model: EffectsModel, p: float) -> Candidate:
    return Candidate(
        therapist_id=e.therapist_id,
        estimate=e.estimate,
        lower=e.lower,
        upper=e.upper,
        n_clients=e.n_clients,
        meets_preferences=True,
        notes=_notes(e, model),
        prob_above_median=p,
    )


def shortlist(
    model: EffectsModel,
    *,
    problem_area: str,
    eligible_therapists: Sequence[str],
    validation: Validation,
    top: int = 3,
    min_clients_area: int = 20,
    min_therapist_clients: int = 3,
    min_prob_above_median: float = 0.8,
) -> Shortlist:
    """Rank the eligible therapists for a new client in ``problem_area``.

    ``eligible_therapists`` must already be filtered by the client's practical preferences
    (format, times, language, therapist characteristics the client asked for); the ranking
    itself uses only the outcome estimates. ``validation`` is the clinic's held-out check
    (:func:`validate`); without a passed check no ranked list is offered. Declines
    (``available=False``) with a plain reason when the clinic has fewer than
    ``model.min_clients_total`` episodes, the area fewer than ``min_clients_area``, fewer than
    two eligible therapists have ``min_therapist_clients`` episodes in the area, the held-out
    check failed, or the first-ranked therapist beats the middle one (the therapist at position
    ``m // 2`` of the ``m`` ranked, counting from 0) with posterior probability below
    ``min_prob_above_median``. In the last three cases the therapists with enough data are
    listed unranked, in order of their id.
    """
    if top < 1:
        raise ValueError("top must be at least 1")
    if model.n_episodes < model.min_clients_total:
        return Shortlist(
            False,
            f"The service has {model.n_episodes} finished episodes with an outcome; matching "
            f"needs at least {model.min_clients_total} before it can say anything useful. "
            "Allocate as usual.",
            (),
            "too_few_total",
            {"n": model.n_episodes, "needed": model.min_clients_total},
        )
    area_names = [a.problem_area for a in model.areas]
    area_n = model.area(problem_area).n_episodes if problem_area in area_names else 0
    if area_n < min_clients_area:
        return Shortlist(
            False,
            f"Only {area_n} finished episodes in '{problem_area}' so far; at least "
            f"{min_clients_area} are needed to compare therapists in this area. "
            "Allocate as usual.",
            (),
            "too_few_area",
            {"n": area_n, "needed": min_clients_area},
        )
    in_area = model.for_area(problem_area)
    eligible = sorted(set(eligible_therapists))
    ready = [in_area[t] for t in eligible if t in in_area]
    ready = [e for e in ready if e.n_clients >= min_therapist_clients]
    waiting = [t for t in eligible if t not in {e.therapist_id for e in ready}]
    waiting_note = (
        f" {len(waiting)} eligible therapist(s) have fewer than {min_therapist_clients} "
        f"finished episodes in this area and are not ranked; that says nothing about their "
        "skill, only that there is not enough data yet."
        if waiting
        else ""
    )
    if not ready:
        return Shortlist(
            False,
            f"None of the {len(eligible)} eligible therapists has at least "
            f"{min_therapist_clients} finished episodes in '{problem_area}', so there is no "
            "track record to go on. Allocate as usual.",
            (),
            "none_ready",
            {"n_eligible": len(eligible), "needed": min_therapist_clients},
        )
    ranked = sorted(ready, key=_rank_key)
    middle = ranked[len(ranked) // 2]
    fit = model.fit
    if fit is None:
        raise ValueError("the model carries no fit (build it with estimate_effects)")
    probs = {
        e.therapist_id: 0.5
        if e is middle
        else fit.prob_greater(e.therapist_id, middle.therapist_id, problem_area)
        for e in ranked
    }
    p_best = probs[ranked[0].therapist_id]
    unranked = tuple(_candidate(e, model, probs[e.therapist_id]) for e in ready)
    base = {"min_therapist_clients": min_therapist_clients, "n_ranked": len(ranked)}
    if len(ranked) < 2:
        why = (
            f"Only one eligible therapist has at least {min_therapist_clients} finished "
            f"episodes in '{problem_area}', so there is nothing to compare."
        )
        return Shortlist(False, why + waiting_note, unranked, "one_ready", base, len(waiting))
    if not validation.passed:
        why = (
            f"{validation.reason} The {len(ranked)} eligible therapists with enough data are "
            "listed unranked, alphabetically; any of them is a reasonable choice."
        )
        return Shortlist(False, why + waiting_note, unranked, "not_validated", base, len(waiting))
    if p_best < min_prob_above_median:
        why = (
            f"The results of the {len(ranked)} eligible therapists in '{problem_area}' "
            "overlap too much to rank them: the strongest is ahead of the middle one with "
            f"probability {p_best:.2f} (at least {min_prob_above_median:.2f} is needed). "
            "They are listed unranked, alphabetically; any of them is a reasonable choice."
        )
        params = {**base, "p_best": p_best, "needed_p": min_prob_above_median}
        return Shortlist(False, why + waiting_note, unranked, "overlap", params, len(waiting))
    chosen = tuple(_candidate(e, model, probs[e.therapist_id]) for e in ranked[:top])
    reason = (
        f"Ranked by reliable improvement in '{problem_area}' ({area_n} finished episodes in "
        f"the service). The first-ranked therapist does better than the middle eligible "
        f"therapist with probability {p_best:.2f}. {validation.reason} Intervals show the "
        "uncertainty; this is a starting point for a conversation, and the client chooses."
        + waiting_note
    )
    params = {**base, "n_area": area_n, "p_best": p_best}
    return Shortlist(True, reason, chosen, "ranked", params, len(waiting))


def match(
    outcomes: pl.DataFrame,
    *,
    problem_area: str,
    eligible_therapists: Sequence[str],
    permutations: int = PERMUTATIONS,
    seed: int = 0,
    **options: int | float,
) -> tuple[EffectsModel, Validation, Shortlist]:
    """:func:`estimate_effects` on all episodes, :func:`validate`, then :func:`shortlist`.

    ``permutations`` and ``seed`` go to :func:`validate`, ``options`` to :func:`shortlist`
    (``top``, ``min_clients_area``, ...).
    """
    model = estimate_effects(outcomes.drop(PERIOD_COLUMN, strict=False))
    validation = validate(outcomes, permutations=permutations, seed=seed)
    result = shortlist(
        model,
        problem_area=problem_area,
        eligible_therapists=eligible_therapists,
        validation=validation,
        **options,  # type: ignore[arg-type]
    )
    return model, validation, result


# --------------------------------------------------------------------------------------------
# Simulation: how often is a list offered?


def simulate_clinic(
    seed: int,
    *,
    therapists: int = 12,
    episodes: int = 40,
    areas: int = 2,
    general_sd: float = 0.0,
    area_sd: float = 0.0,
    base_rate: float = 0.5,
) -> pl.DataFrame:
    """One planted clinic: ``logit p_ja = logit(base_rate) + g_j + d_ja``.

    ``g_j ~ N(0, general_sd)`` and ``d_ja ~ N(0, area_sd)`` on the logit scale; each therapist
    has ``episodes`` finished episodes in random areas, ending on random days of two years.
    With both SDs 0 the therapists truly do not differ.
    """
    rng = np.random.default_rng(seed)
    general = rng.normal(0.0, general_sd, therapists)
    specific = rng.normal(0.0, area_sd, (therapists, areas))
    who = np.repeat(np.arange(therapists), episodes)
    where = rng.integers(0, areas, who.size)
    p = special.expit(special.logit(base_rate) + general[who] + specific[who, where])
    return pl.DataFrame(
        {
            "therapist_id": [f"t{j:02d}" for j in who],
            "problem_area": [f"area{a}" for a in where],
            "reliable_improvement": rng.random(who.size) < p,
            PERIOD_COLUMN: rng.integers(0, 730, who.size),
        }
    )


def simulate_offer_rate(
    simulations: int = 200,
    *,
    seed: int = 0,
    permutations: int = 500,
    **clinic: int | float,
) -> float:
    """Share of simulated clinics in which :func:`match` offers a ranked list for ``area0``.

    ``clinic`` is passed to :func:`simulate_clinic`; every therapist is eligible. With the
    default (no differences between therapists) this is the false-offer rate: measured at
    1.0-4.5% over four clinic sizes with 200 clinics each (``bench/bench_matching.py``), against
    11-17% for the earlier rule; with general and area SDs of 0.5 (logit) it is 45-99%. The
    permutation count is lowered to keep it quick.
    """
    offered = 0
    for i in range(simulations):
        frame = simulate_clinic(seed + i, **clinic)  # type: ignore[arg-type]
        ids = sorted(frame.get_column("therapist_id").unique().to_list())
        _, _, result = match(
            frame,
            problem_area="area0",
            eligible_therapists=ids,
            permutations=permutations,
            seed=seed + i,
        )
        offered += result.available
    return offered / simulations


# --------------------------------------------------------------------------------------------
# Input checks and case mix


def _check(outcomes: pl.DataFrame, credibility: float) -> None:
    if not 0 < credibility < 1:
        raise ValueError(f"credibility must be between 0 and 1, got {credibility}")
    allowed = (
        set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS) | set(IDENTIFIER_COLUMNS) | {PERIOD_COLUMN}
    )
    extra = [c for c in outcomes.columns if c not in allowed]
    if extra:
        raise ValueError(
            f"column(s) {', '.join(repr(c) for c in extra)} refused: matching uses only "
            f"outcomes ({', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}), never therapist or "
            "client characteristics; drop the column(s) before calling"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in outcomes.columns]
    if missing:
        raise ValueError(f"missing column(s): {', '.join(missing)}")
    for column in ("therapist_id", "problem_area", "reliable_improvement"):
        if outcomes.get_column(column).null_count():
            raise ValueError(f"column '{column}' has missing values")
    ri = outcomes.get_column("reliable_improvement")
    if ri.dtype != pl.Boolean and not (ri.dtype.is_integer() and ri.is_in([0, 1]).all()):
        raise ValueError("reliable_improvement must be true/false (or 0/1)")
    for column in OPTIONAL_COLUMNS:
        if column in outcomes.columns and not outcomes.get_column(column).dtype.is_numeric():
            raise ValueError(f"column '{column}' must be numeric")
    if "alliance" in outcomes.columns:
        alliance = outcomes.get_column("alliance").drop_nulls()
        if alliance.len() and (alliance.min() < 0 or alliance.max() > 10):  # type: ignore[operator]
            raise ValueError("alliance must be a 0-10 mean")
    if PERIOD_COLUMN in outcomes.columns:
        ended = outcomes.get_column(PERIOD_COLUMN)
        if not (ended.dtype.is_temporal() or ended.dtype.is_numeric()) or ended.null_count():
            raise ValueError(
                f"column '{PERIOD_COLUMN}' must be a date (or number) for every episode"
            )
    if "intake_severity" in outcomes.columns:
        severity = outcomes.get_column("intake_severity")
        if severity.null_count() or not np.isfinite(severity.cast(pl.Float64).to_numpy()).all():
            raise ValueError("intake_severity must be given (and finite) for every episode")


def _expected_probabilities(areas: pl.Series, severity: FloatArray, y: FloatArray) -> FloatArray:
    """Fitted ``P(reliable improvement)`` from ``logit q = b_area + g * z(severity)``.

    Newton-Raphson with a tiny ridge penalty, so that an area where every client (or no client)
    improved still converges.
    """
    codes = areas.rank("dense").cast(pl.Int64).to_numpy() - 1
    n_areas = int(codes.max()) + 1
    sd = float(severity.std())
    z = (severity - severity.mean()) / sd if sd > 0 else np.zeros_like(severity)
    x = np.zeros((y.size, n_areas + 1))
    x[np.arange(y.size), codes] = 1.0
    x[:, n_areas] = z
    coef = np.zeros(n_areas + 1)
    ridge = 1e-4
    for _ in range(100):
        q = special.expit(x @ coef)
        grad = x.T @ (y - q) - ridge * coef
        hess = (x * (q * (1 - q))[:, None]).T @ x + ridge * np.eye(n_areas + 1)
        step = np.linalg.solve(hess, grad)
        coef += step
        if np.max(np.abs(step)) < 1e-10:
            break
    return np.asarray(special.expit(x @ coef), dtype=np.float64)
