"""Matching clients to therapists by measured results, with partial pooling.

Background. Therapists differ in how well their clients do, and the differences are not only
general: a therapist can be effective with depression and average with, say, substance misuse
(Kraus, Castonguay, Boswell et al. 2011, 2016). Constantino, Boswell, Coyne, Swales and Kraus
(2021) used such domain-specific track records from routine outcome data to match new clients
to therapists in a randomised trial; matched clients improved more than clients assigned as
usual. This module computes the track records from a clinic's own data and turns them into a
short list for one new client. It never looks at who the therapist *is* (gender, ethnicity,
personal or lived experience): only at how their finished clients did.

Model. For one problem area, therapist ``j`` has ``n_j`` finished episodes of which ``k_j``
ended in reliable improvement. Each therapist has an unknown true rate ``p_j``, and the rates of
the area's therapists are modelled as draws from one Beta distribution (a beta-binomial
hierarchical model, estimated by empirical Bayes; Efron & Morris 1975, Casella 1985):

* ``k_j | p_j ~ Binomial(n_j, p_j)`` and ``p_j ~ Beta(alpha, beta)`` with ``alpha = mu * M``,
  ``beta = (1 - mu) * M``: ``mu`` is the area's pooled rate and ``M`` the *prior strength*,
  the number of episodes the pooled rate is worth. The spread of the true rates between
  therapists is ``sd = sqrt(mu * (1 - mu) / (M + 1))``.
* ``mu`` and ``M`` maximise the marginal (beta-binomial) likelihood of all therapists' counts
  ``sum_j [ln B(alpha + k_j, beta + n_j - k_j) - ln B(alpha, beta)]``, with ``M`` kept within
  ``[M_MIN, M_MAX]``; at ``M_MAX`` the data show no detectable difference between therapists.
* Each therapist's posterior is ``Beta(alpha + k_j, beta + n_j - k_j)``, with mean
  ``(alpha + k_j) / (M + n_j) = w_j * k_j / n_j + (1 - w_j) * mu``, ``w_j = n_j / (M + n_j)``:
  the observed rate pulled towards the pooled rate, the more so the fewer episodes a
  therapist has. The interval is the equal-tailed ``credibility`` interval of that Beta.

Case mix. When the optional ``intake_severity`` column is given, the counts are indirectly
standardised: a logistic regression of reliable improvement on problem area and intake severity
gives each episode an expected probability ``q_i``, and ``k_j`` is replaced by
``k_j - sum_i q_i + n_j * mean_area(q)``, clipped to ``[0, n_j]`` (the count the therapist would
have had with the area's average case mix).

Ranking (:func:`shortlist`): eligible therapists with enough episodes are ordered by posterior
mean (ties: lower bound, then more episodes, then therapist id). The list is withheld when the
data are too thin or when the first therapist beats the middle one with posterior probability
below ``min_prob_above_median`` (0.8); then the therapists are listed unranked.
Plug-in empirical Bayes ignores the uncertainty in ``mu`` and ``M`` (Morris 1983), so its
probabilities lean optimistic; 0.8 keeps false rankings rare (about 1 area in 9 when, in a
simulation, therapists truly do not differ; see ``docs/matching.md``).

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
* Efron, B., & Morris, C. (1975). Data analysis using Stein's estimator and its
  generalizations. *Journal of the American Statistical Association*, 70(350), 311-319.
* Casella, G. (1985). An introduction to empirical Bayes data analysis. *The American
  Statistician*, 39(2), 83-87.
* Morris, C. N. (1983). Parametric empirical Bayes inference: Theory and applications.
  *Journal of the American Statistical Association*, 78(381), 47-55.

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
>>> prior = model.area("depression")
>>> round(prior.pooled_rate, 3), round(prior.prior_strength, 1)
(0.558, 12.1)
>>> a = model.get("a", "depression")  # (0.558 * 12.1 + 18) / (12.1 + 20)
>>> a.raw_rate, round(a.estimate, 3), round(a.lower, 2), round(a.upper, 2)
(0.9, 0.771, 0.64, 0.88)
>>> s = shortlist(model, problem_area="depression", eligible_therapists=list("abcdef"))
>>> s.available, [c.therapist_id for c in s.candidates]
(True, ['a', 'd', 'e'])
>>> shortlist(model, problem_area="depression", eligible_therapists=list("bcdef")).available
False
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy import optimize, special, stats

FloatArray = npt.NDArray[np.float64]

#: Smallest and largest prior strength ``M`` (in episodes) the fit may choose.
M_MIN = 1.0
M_MAX = 10_000.0
#: Bounds of the pooled rate on the logit scale (about 0.001 to 0.999).
LOGIT_BOUND = 7.0
#: Estimates are rounded to this many decimals before they are compared for ranking.
ROUND = 9
#: Points of the quadrature used for ``P(p_x > p_y)``.
QUADRATURE_POINTS = 4000

REQUIRED_COLUMNS = ("therapist_id", "problem_area", "reliable_improvement")
OPTIONAL_COLUMNS = ("change", "alliance", "intake_severity")
#: Identifiers that may travel with the data; their values are never used.
IDENTIFIER_COLUMNS = ("client_id", "episode_id")


@dataclass(frozen=True)
class TherapistEstimate:
    """One therapist's results in one problem area.

    ``raw_rate`` is the observed share of reliably improved clients, ``estimate`` the partially
    pooled (posterior mean) rate and ``lower``/``upper`` its credible interval. ``adjusted_rate``
    is the observed rate after case-mix adjustment (equal to ``raw_rate`` without
    ``intake_severity``); ``posterior_alpha``/``posterior_beta`` are the posterior Beta's
    parameters. ``mean_change`` and ``mean_alliance`` are plain means, shown but never ranked.
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
    posterior_alpha: float = 1.0
    posterior_beta: float = 1.0


@dataclass(frozen=True)
class AreaPrior:
    """The fitted Beta prior of one problem area (see the module docstring)."""

    problem_area: str
    n_episodes: int
    n_therapists: int
    raw_rate: float
    pooled_rate: float
    prior_strength: float
    between_sd: float

    @property
    def alpha(self) -> float:
        return self.pooled_rate * self.prior_strength

    @property
    def beta(self) -> float:
        return (1.0 - self.pooled_rate) * self.prior_strength


@dataclass(frozen=True)
class EffectsModel:
    """Every therapist x problem-area estimate, with the priors they were shrunk towards."""

    estimates: tuple[TherapistEstimate, ...]
    areas: tuple[AreaPrior, ...]
    n_episodes: int
    credibility: float
    min_clients_total: int
    adjusted_for_intake: bool

    def area(self, problem_area: str) -> AreaPrior:
        for prior in self.areas:
            if prior.problem_area == problem_area:
                return prior
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
class Candidate:
    """One therapist on a shortlist; ``prob_above_median`` is ``P(p_this > p_middle)``."""

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


# --------------------------------------------------------------------------------------------
# The beta-binomial building blocks


def posterior(
    successes: float, trials: float, alpha: float, beta: float, credibility: float = 0.9
) -> tuple[float, float, float]:
    """Posterior mean and equal-tailed interval of ``Beta(alpha + k, beta + n - k)``.

    >>> posterior(7, 10, 2.0, 3.0)[0]  # (2 + 7) / (2 + 3 + 10)
    0.6
    """
    if alpha <= 0 or beta <= 0:
        raise ValueError("alpha and beta must be positive")
    if not 0 <= successes <= trials:
        raise ValueError("successes must lie between 0 and trials")
    a = alpha + successes
    b = beta + trials - successes
    tail = (1.0 - credibility) / 2.0
    lower, upper = stats.beta.ppf([tail, 1.0 - tail], a, b)
    return float(a / (a + b)), float(lower), float(upper)


def marginal_log_likelihood(
    pooled_rate: float, prior_strength: float, successes: FloatArray, trials: FloatArray
) -> float:
    """Beta-binomial log likelihood of the counts, without the binomial coefficients."""
    a = pooled_rate * prior_strength
    b = (1.0 - pooled_rate) * prior_strength
    terms = special.betaln(a + successes, b + trials - successes) - special.betaln(a, b)
    return float(np.sum(terms))


def fit_prior(
    successes: Sequence[float] | FloatArray, trials: Sequence[float] | FloatArray
) -> tuple[float, float]:
    """Pooled rate ``mu`` and prior strength ``M`` maximising the marginal likelihood.

    Cells without episodes carry no information and are dropped. The counts are put in a
    canonical order first, so the fit does not depend on how therapists are labelled.
    """
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    keep = n > 0
    k, n = k[keep], n[keep]
    if k.size == 0:
        raise ValueError("no episodes to fit a prior to")
    order = np.lexsort((k, n))
    k, n = k[order], n[order]
    rate = float(k.sum() / n.sum())
    eta0 = float(np.clip(special.logit(np.clip(rate, 1e-6, 1 - 1e-6)), -LOGIT_BOUND, LOGIT_BOUND))

    def negative(theta: FloatArray) -> tuple[float, FloatArray]:
        mu = float(special.expit(theta[0]))
        m = float(np.exp(theta[1]))
        a, b = mu * m, (1.0 - mu) * m
        value = marginal_log_likelihood(mu, m, k, n)
        common = special.digamma(m) - special.digamma(m + n)
        d_a = float(np.sum(special.digamma(a + k) - special.digamma(a) + common))
        d_b = float(np.sum(special.digamma(b + n - k) - special.digamma(b) + common))
        grad = np.array([m * mu * (1.0 - mu) * (d_a - d_b), a * d_a + b * d_b])
        return -value, -grad

    # Start from the best point of a coarse grid of M (at the pooled rate), then refine.
    grid = np.linspace(math.log(M_MIN), math.log(M_MAX), 25)
    start = grid[int(np.argmin([negative(np.array([eta0, g]))[0] for g in grid]))]
    result = optimize.minimize(
        negative,
        np.array([eta0, start]),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-LOGIT_BOUND, LOGIT_BOUND), (math.log(M_MIN), math.log(M_MAX))],
        options={"ftol": 1e-13, "gtol": 1e-9, "maxiter": 500},
    )
    return float(special.expit(result.x[0])), float(np.exp(result.x[1]))


def prob_greater(a1: float, b1: float, a2: float, b2: float) -> float:
    """``P(X > Y)`` for independent ``X ~ Beta(a1, b1)`` and ``Y ~ Beta(a2, b2)``.

    Computed as the average of ``1 - F_X(y)`` over ``Y``'s quantiles (midpoint rule on
    :data:`QUADRATURE_POINTS` points): deterministic, accurate to about ``1e-6``.

    >>> round(prob_greater(2, 1, 1, 1), 4)  # X has density 2x: P = integral of 2x * x = 2/3
    0.6667
    """
    u = (np.arange(QUADRATURE_POINTS, dtype=np.float64) + 0.5) / QUADRATURE_POINTS
    return _mean_sf(stats.beta.ppf(u, a2, b2), a1, b1)


def _mean_sf(y: FloatArray, a: float, b: float) -> float:
    """Mean of ``P(X > y)`` over ``y`` for ``X ~ Beta(a, b)``: ``I_{1-y}(b, a)``."""
    return float(np.mean(special.betainc(b, a, 1.0 - y)))


# --------------------------------------------------------------------------------------------
# Estimation


def _check(outcomes: pl.DataFrame, credibility: float) -> None:
    if not 0 < credibility < 1:
        raise ValueError(f"credibility must be between 0 and 1, got {credibility}")
    allowed = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS) | set(IDENTIFIER_COLUMNS)
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


def estimate_effects(
    outcomes: pl.DataFrame, *, min_clients_total: int = 30, credibility: float = 0.9
) -> EffectsModel:
    """Partially pooled reliable-improvement rates per therapist and problem area.

    ``outcomes`` has one row per finished episode: ``therapist_id``, ``problem_area``,
    ``reliable_improvement`` (bool) and optionally ``change`` (improvement-positive change,
    ideally standardised as change / intake SD so that areas with different measures compare;
    only averaged, never ranked), ``alliance`` (the client's mean 0-10 alliance rating),
    ``intake_severity`` (used for case-mix adjustment) and the identifiers ``client_id`` /
    ``episode_id`` (ignored). Any other column is refused, so that nothing about therapists or
    clients other than outcomes can enter. Every therapist seen in the data gets an estimate in
    every area seen (the pooled rate when they have no clients there). With fewer than
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
    lookup = {(r["problem_area"], r["therapist_id"]): r for r in cells.iter_rows(named=True)}

    estimates: list[TherapistEstimate] = []
    priors: list[AreaPrior] = []
    for area in area_names:
        area_rows = [lookup.get((area, t)) for t in therapists]
        n = np.array([r["n"] if r else 0 for r in area_rows], dtype=np.float64)
        k = np.array([r["k"] if r else 0.0 for r in area_rows], dtype=np.float64)
        expected = np.array([r["expected"] if r else 0.0 for r in area_rows], dtype=np.float64)
        total = float(n.sum())
        area_q = float(expected.sum() / total)
        # Indirect standardisation; without intake_severity expected == k and this is k again.
        k_adj = np.clip(k - expected + n * area_q, 0.0, n) if adjusted else k
        mu, m = fit_prior(k_adj, n)
        prior = AreaPrior(
            problem_area=area,
            n_episodes=int(total),
            n_therapists=int((n > 0).sum()),
            raw_rate=float(k.sum() / total),
            pooled_rate=mu,
            prior_strength=m,
            between_sd=math.sqrt(mu * (1 - mu) / (m + 1)),
        )
        priors.append(prior)
        for t, row, n_j, k_j, ka_j in zip(therapists, area_rows, n, k, k_adj, strict=True):
            mean, lower, upper = posterior(ka_j, n_j, prior.alpha, prior.beta, credibility)
            estimates.append(
                TherapistEstimate(
                    therapist_id=t,
                    problem_area=area,
                    n_clients=int(n_j),
                    raw_rate=float(k_j / n_j) if n_j else None,
                    estimate=mean,
                    lower=lower,
                    upper=upper,
                    mean_change=row["mean_change"] if row else None,
                    mean_alliance=row["mean_alliance"] if row else None,
                    adjusted_rate=float(ka_j / n_j) if n_j else None,
                    posterior_alpha=prior.alpha + float(ka_j),
                    posterior_beta=prior.beta + float(n_j - ka_j),
                )
            )
    return EffectsModel(
        estimates=tuple(estimates),
        areas=tuple(priors),
        n_episodes=data.height,
        credibility=credibility,
        min_clients_total=min_clients_total,
        adjusted_for_intake=adjusted,
    )


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
    top: int = 3,
    min_clients_area: int = 20,
    min_therapist_clients: int = 3,
    min_prob_above_median: float = 0.8,
) -> Shortlist:
    """Rank the eligible therapists for a new client in ``problem_area``.

    ``eligible_therapists`` must already be filtered by the client's practical preferences
    (format, times, language, therapist characteristics the client asked for); the ranking
    itself uses only the outcome estimates. Declines (``available=False``) with a plain reason
    when the clinic has fewer than ``model.min_clients_total`` episodes, the area fewer than
    ``min_clients_area``, fewer than two eligible therapists have ``min_therapist_clients``
    episodes in the area, or the first-ranked therapist beats the middle one (the therapist at
    position ``m // 2`` of the ``m`` ranked, counting from 0) with posterior probability below
    ``min_prob_above_median``. In the last two cases the therapists with enough data are listed
    unranked, in order of their id.
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
        )
    ranked = sorted(ready, key=_rank_key)
    middle = ranked[len(ranked) // 2]
    # P(p_e > p_middle) for every e, sharing the middle therapist's quantiles.
    u = (np.arange(QUADRATURE_POINTS, dtype=np.float64) + 0.5) / QUADRATURE_POINTS
    y = stats.beta.ppf(u, middle.posterior_alpha, middle.posterior_beta)
    probs = {
        e.therapist_id: 0.5 if e is middle else _mean_sf(y, e.posterior_alpha, e.posterior_beta)
        for e in ranked
    }
    p_best = probs[ranked[0].therapist_id]
    if len(ranked) < 2 or p_best < min_prob_above_median:
        unranked = tuple(_candidate(e, model, probs[e.therapist_id]) for e in ready)
        if len(ranked) < 2:
            why = (
                f"Only one eligible therapist has at least {min_therapist_clients} finished "
                f"episodes in '{problem_area}', so there is nothing to compare."
            )
        else:
            why = (
                f"The results of the {len(ranked)} eligible therapists in '{problem_area}' "
                "overlap too much to rank them: the strongest is ahead of the middle one with "
                f"probability {p_best:.2f} (at least {min_prob_above_median:.2f} is needed). "
                "They are listed unranked, alphabetically; any of them is a reasonable choice."
            )
        return Shortlist(False, why + waiting_note, unranked)
    chosen = tuple(_candidate(e, model, probs[e.therapist_id]) for e in ranked[:top])
    reason = (
        f"Ranked by reliable improvement in '{problem_area}' ({area_n} finished episodes in "
        f"the service). The first-ranked therapist does better than the middle eligible "
        f"therapist with probability {p_best:.2f}. Intervals show the uncertainty; this is a "
        "starting point for a conversation, and the client chooses." + waiting_note
    )
    return Shortlist(True, reason, chosen)
