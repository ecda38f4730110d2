"""Expected treatment response from a mixed-effects growth model conditional on intake.

A complement to the single least-squares curve of :mod:`bordin.measures.trajectories`, after
the expected-treatment-response models of Lutz, Martinovich & Howard (1999), Lutz et al. (2005,
2006) and Finch, Lambert & Schaalje (2001), who fit the expected course as a *multilevel*
(hierarchical linear) growth curve and read the signal off its prediction interval.

Sources: Finch, A. E., Lambert, M. J., & Schaalje, B. G. (2001). Psychotherapy quality control:
the statistical generation of expected recovery curves for integration into an early warning
system. *Clinical Psychology & Psychotherapy*, 8(4), 231-242. Lutz, W., Lambert, M. J.,
Harmon, S. C., Tschitsaz, A., Schürch, E., & Stulz, N. (2006). The probability of treatment
success, failure and duration — what can be learned from empirical data to support decision
making in clinical practice? *Clinical Psychology & Psychotherapy*, 13(4), 223-232. Lutz, W.,
Leach, C., Barkham, M., et al. (2005). Predicting change for individual psychotherapy clients
on the basis of their nearest neighbors. *Journal of Consulting and Clinical Psychology*,
73(5), 904-913. Raudenbush, S. W., & Bryk, A. S. (2002). *Hierarchical Linear Models* (2nd ed.),
ch. 6 (growth models) and §9.3 (prediction). Fitted with statsmodels ``MixedLM`` (REML).

**Model.** With ``y_1`` the intake score (session 1), ``y_s`` the score at session ``s >= 2``
and ``t = ln(s)`` (continuous: a session-40 score is modelled at ``ln 40``, with no "13+"
band), centred as ``c = y_1 - m_1`` and ``d = t - m_t`` (``m_1``, ``m_t``: means over the
fitted sessions, for a stable fit)::

    y_is = b0 + b1*c_i + (b2 + b3*c_i)*d_is + u0_i + u1_i*d_is + e_is
    (u0_i, u1_i) ~ N(0, G),   e_is ~ N(0, sigma^2)

a random intercept and a random log-slope per client (Raudenbush & Bryk's two-level growth
model with the intake as a level-2 predictor of both). ``G`` (``tau00, tau01, tau11``),
``sigma^2`` and the fixed effects ``b`` are estimated by REML on the reference clients; more
than :data:`MAX_FIT_CLIENTS` of them are first sampled at random (seed :data:`SEED`), so the
fit's cost is bounded however large the reference.

**Prediction for a new client given the intake.** The client's own random effects are unknown,
so the expected score and its prediction variance are (Raudenbush & Bryk 2002, §9.3)::

    mean(s) = x' b,    x = (1, c, d, c*d)
    var(s)  = x' V_b x + tau00 + 2*d*tau01 + d^2*tau11 + sigma^2

with ``V_b`` the covariance of the estimated fixed effects. The worse-side edge at level
``quantile`` (default 0.9) is ``mean + z*sqrt(var)`` for a lower-is-better measure and
``mean - z*sqrt(var)`` for a higher-is-better one (``z`` the standard normal quantile); a score
beyond it is *not on track*. The two-sided prediction interval at level ``L`` is
``mean ± z_{(1+L)/2} * sqrt(var)``. The mean and every bound are clipped to the instrument's
``[min, max]``, so no expectation or edge lies outside the scale (an edge clipped to the worst
end of the scale can never be crossed). The interval widens with the session (the slope variance)
and with distance from the reference's mean intake (``V_b``).

**Minimum reference.** :data:`MIN_REFERENCE_CLIENTS` clients with an intake and a later score.
In simulation (``bench/trajectory_minimum.py``: PHQ-9 series of ``bordin synth`` clients, 10
seeded references of each size, each judged on 3,000 other clients of the same population;
nominal flag rate 10%; run on 2026-12-04), the out-of-sample share of sessions flagged ranged:

============  ==============  ==============  ========================
reference     growth model    OLS + bands     growth: clients flagged
============  ==============  ==============  ========================
25 clients    5.5-20.8%       4.0-30.6%       12.7-41.2%
50            6.5-12.8%       5.5-16.0%       14.0-27.1%
100           7.9-12.9%       6.5-12.8%       17.4-27.3%
200           8.3-12.4%       7.3-13.5%       19.2-27.1%
500           9.4-11.7%       8.5-12.4%       21.6-25.7%
1,000         9.6-11.7%       8.9-11.1%       22.2-25.3%
============  ==============  ==============  ========================

We take 200 as the minimum (our own rule from this simulation): from there every reference
stayed within about 8-12.5%, and below 100 single references drifted far (to 20.8% at 25
clients). It does not cover a reference whose clients differ from the ones judged. Below it
:func:`fit_long` raises :class:`ValueError` and callers fall back to the least-squares curve
with a note. The synthetic data are not exactly normal (sudden gains, deteriorating clients), so
the growth model runs slightly above its nominal 10% even with 1,000 clients; a client who is
off track tends to stay off track, so about a quarter of clients are flagged at least once.

**Calibration** (:func:`calibration`): the reference's clients are split at random (seed
:data:`SEED`) into halves; the model is fitted on one and judged on the other, giving the
out-of-sample share of sessions flagged (nominal ``1 - quantile``), the share of clients flagged
at least once, and the coverage of the two-sided prediction interval (nominal ``level``).

Example on a planted reference (600 clients, 12 sessions):

>>> import numpy as np
>>> import polars as pl
>>> rng = np.random.default_rng(5)
>>> n, s_max = 300, 8
>>> intake = rng.normal(18.0, 4.0, n)
>>> t = np.log(np.arange(1, s_max + 1))
>>> u0, u1 = rng.normal(0, 2.0, n), rng.normal(0, 1.0, n)
>>> y = (1 + 0.9 * intake[:, None] + (-0.2 * intake[:, None] + u1[:, None]) * t
...      + u0[:, None] + rng.normal(0, 2.0, (n, s_max)))
>>> y[:, 0] = intake
>>> long = pl.DataFrame({"client_id": np.repeat(np.arange(n), s_max),
...                      "session": np.tile(np.arange(1, s_max + 1), n),
...                      "score": y.ravel()})
>>> model = fit_long(long, lower_is_better=True, scale_min=0, scale_max=27)
>>> round(model.sigma2, 0), model.n_reference_clients
(4.0, 300)
>>> float(model.expected(18.0, 2)[()]) < float(model.edge(18.0, 2)[()]) <= 27
True
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import polars as pl

from bordin.measures.series import FloatArray, IntArray, SeriesMatrix
from bordin.measures.trajectories import NOT_ON_TRACK, ON_TRACK, ROUND, ExpectedTrajectory

#: Fewest reference clients (an intake and at least one later score) the growth model accepts;
#: see the simulation table in the module docstring.
MIN_REFERENCE_CLIENTS = 200
#: At most this many reference clients (sampled at random, seed :data:`SEED`) enter the REML fit.
MAX_FIT_CLIENTS = 1000
#: Seed of the reference sample and of the calibration split.
SEED = 2005


@dataclass(frozen=True)
class GrowthModel:
    """A fitted growth model (see the module docstring for the method).

    ``coef`` is ``(b0, b1, b2, b3)`` in the centred parameterisation, ``coef_cov`` their 4×4
    covariance (row-major), ``re_cov`` is ``(tau00, tau01, tau11)``, ``centre`` is
    ``(m_1, m_t)``.
    """

    coef: tuple[float, float, float, float]
    coef_cov: tuple[float, ...]
    re_cov: tuple[float, float, float]
    sigma2: float
    centre: tuple[float, float]
    lower_is_better: bool
    scale_min: float
    scale_max: float
    quantile: float
    n_reference_clients: int
    n_fit_clients: int
    n_fit_sessions: int

    def _moments(
        self, intake: FloatArray | float, session: IntArray | int
    ) -> tuple[FloatArray, FloatArray]:
        """Unclipped mean and prediction SD at ``session`` (>= 1) for ``intake``."""
        y1 = np.asarray(intake, dtype=np.float64)
        s = np.asarray(session, dtype=np.float64)
        if s.size and float(s.min()) < 1:
            raise ValueError("sessions are numbered from 1")
        c = y1 - self.centre[0]
        d = np.log(s) - self.centre[1]
        c, d = np.broadcast_arrays(c, d)
        x = np.stack([np.ones_like(c), c, d, c * d], axis=-1)
        mean = x @ np.asarray(self.coef)
        vb = np.asarray(self.coef_cov).reshape(4, 4)
        t00, t01, t11 = self.re_cov
        var = ((x @ vb) * x).sum(axis=-1) + t00 + 2 * d * t01 + d * d * t11
        return mean, np.sqrt(var + self.sigma2)

    def _clip(self, values: FloatArray) -> FloatArray:
        return np.clip(values, self.scale_min, self.scale_max)

    def expected(self, intake: FloatArray | float, session: IntArray | int) -> FloatArray:
        """Expected score at ``session`` for ``intake``, clipped to the scale; arrays broadcast."""
        return self._clip(self._moments(intake, session)[0])

    def edge(self, intake: FloatArray | float, session: IntArray | int) -> FloatArray:
        """Worse-side edge at level :attr:`quantile` (the ``upper`` column), clipped."""
        mean, sd = self._moments(intake, session)
        z = NormalDist().inv_cdf(self.quantile)
        return self._clip(mean + z * sd if self.lower_is_better else mean - z * sd)

    def interval(
        self, intake: FloatArray | float, session: IntArray | int, level: float = 0.9
    ) -> tuple[FloatArray, FloatArray]:
        """Two-sided prediction interval ``(low, high)`` at ``level``, clipped to the scale."""
        if not 0 < level < 1:
            raise ValueError(f"level must be strictly between 0 and 1, got {level}")
        mean, sd = self._moments(intake, session)
        z = NormalDist().inv_cdf(0.5 + level / 2)
        return self._clip(mean - z * sd), self._clip(mean + z * sd)

    def evaluate(self, matrix: SeriesMatrix) -> pl.DataFrame:
        """Every later score of every client with an intake against the model.

        The same columns, order and meaning as
        :meth:`bordin.measures.trajectories.TrajectoryModel.evaluate`.
        """
        values = matrix.values
        schema: dict[str, pl.DataType | type[pl.DataType]] = {
            "client_id": matrix.client_ids.dtype,
            "session": pl.Int64,
            "score": pl.Float64,
            "expected": pl.Float64,
            "upper": pl.Float64,
            "status": pl.String,
        }
        if matrix.n_clients == 0 or values.ndim != 2 or values.shape[1] < 2:
            return pl.DataFrame(schema=schema)
        later = values[:, 1:]
        mask = ~np.isnan(later) & ~np.isnan(values[:, :1])
        rows, cols = np.nonzero(mask)  # row-major: by client row, then session
        session = cols.astype(np.int64) + 2
        score = later[rows, cols]
        intake = values[rows, 0]
        expected = self.expected(intake, session)
        upper = self.edge(intake, session)
        worse = score - upper if self.lower_is_better else upper - score
        frame = pl.DataFrame(
            {
                "client_id": matrix.client_ids.gather(rows),
                "session": session,
                "score": score,
                "expected": expected,
                "upper": upper,
                "status": np.where(np.round(worse, ROUND) > 0, NOT_ON_TRACK, ON_TRACK),
            },
            schema=schema,
        )
        if not matrix.client_ids.is_sorted():
            frame = frame.sort(["client_id", "session"], maintain_order=True)
        return frame

    def to_dict(self) -> dict[str, object]:
        """JSON-ready description of the model (for ``summary.json`` and the report)."""
        b0, b1, b2, b3 = self.coef
        t00, t01, t11 = self.re_cov
        return {
            "method": "mixed-effects growth model conditional on intake "
            "(Finch, Lambert & Schaalje 2001; Lutz et al. 2006; Raudenbush & Bryk 2002)",
            "model": "y_s = b0 + b1*c + (b2 + b3*c)*d + u0 + u1*d + e, "
            "c = y_1 - m_1, d = ln(s) - m_t",
            "coef": {"b0": b0, "b1": b1, "b2": b2, "b3": b3},
            "centre": {"m_1": self.centre[0], "m_t": self.centre[1]},
            "random_effects": {"tau00": t00, "tau01": t01, "tau11": t11},
            "sigma2": self.sigma2,
            "lower_is_better": self.lower_is_better,
            "quantile": self.quantile,
            "boundary": (
                "upper = mean + z*sd, clipped to the scale"
                if self.lower_is_better
                else "upper = mean - z*sd, clipped to the scale"
            ),
            "scale": [self.scale_min, self.scale_max],
            "min_reference_clients": MIN_REFERENCE_CLIENTS,
            "max_fit_clients": MAX_FIT_CLIENTS,
            "n_reference_clients": self.n_reference_clients,
            "n_fit_clients": self.n_fit_clients,
            "n_fit_sessions": self.n_fit_sessions,
        }


def _later_rows(reference: pl.DataFrame) -> pl.DataFrame:
    """Each later score (session >= 2) with its client's intake score as ``_y1``."""
    scored = reference.select(
        "client_id", pl.col("session").cast(pl.Int64), pl.col("score").cast(pl.Float64)
    ).filter(pl.col("score").is_not_null() & pl.col("score").is_not_nan())
    intake = scored.filter(pl.col("session") == 1).select("client_id", pl.col("score").alias("_y1"))
    return scored.filter(pl.col("session") >= 2).join(intake, on="client_id")


def fit_long(
    reference: pl.DataFrame,
    *,
    lower_is_better: bool,
    scale_min: float,
    scale_max: float,
    quantile: float = 0.9,
    min_clients: int = MIN_REFERENCE_CLIENTS,
    max_clients: int = MAX_FIT_CLIENTS,
    seed: int = SEED,
) -> GrowthModel:
    """Fit the growth model on long data (``client_id, session, score``).

    Raises :class:`ValueError` when ``quantile`` is not strictly between 0 and 1, when fewer
    than ``min_clients`` clients have an intake and a later score, or when the fit fails.
    """
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be strictly between 0 and 1, got {quantile}")
    if not scale_min < scale_max:
        raise ValueError("the scale's min must be below its max")
    later = _later_rows(reference)
    ids = later.get_column("client_id").unique().sort()
    if ids.len() < min_clients:
        raise ValueError(
            f"too little reference data for the growth model: need at least {min_clients} "
            f"clients with an intake score (session 1) and a later score, got {ids.len()}"
        )
    if ids.len() > max_clients:
        rng = np.random.default_rng(seed)
        keep = ids.gather(np.sort(rng.choice(ids.len(), max_clients, replace=False)))
        later = later.filter(pl.col("client_id").is_in(keep.implode()))
    later = later.sort("client_id", "session")
    groups = later.get_column("client_id").rank("dense").to_numpy()
    y = later.get_column("score").to_numpy()
    y1 = later.get_column("_y1").to_numpy()
    t = np.log(later.get_column("session").to_numpy().astype(np.float64))
    m1, mt = float(y1.mean()), float(t.mean())
    c, d = y1 - m1, t - mt
    if np.ptp(c) == 0 or np.ptp(d) == 0:
        raise ValueError(
            "the reference data cannot identify the growth model: it needs intake scores that "
            "vary between clients and later scores from at least two different sessions"
        )
    exog = np.column_stack([np.ones_like(c), c, d, c * d])
    exog_re = np.column_stack([np.ones_like(d), d])
    from statsmodels.regression.mixed_linear_model import MixedLM

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = MixedLM(y, exog, groups=groups, exog_re=exog_re).fit(
                reml=True, method=["lbfgs", "bfgs"]
            )
        except (ValueError, np.linalg.LinAlgError) as exc:
            raise ValueError(f"the growth model could not be fitted ({exc})") from None
    fe = np.asarray(result.fe_params, dtype=np.float64)
    vb = np.asarray(result.cov_params(), dtype=np.float64)[:4, :4]
    g = np.asarray(result.cov_re, dtype=np.float64)
    sigma2 = float(result.scale)
    if not (np.all(np.isfinite(fe)) and np.all(np.isfinite(vb)) and np.all(np.isfinite(g))):
        raise ValueError("the growth model could not be fitted (non-finite estimates)")
    if not sigma2 > 0:
        raise ValueError("the growth model could not be fitted (no residual variance)")
    return GrowthModel(
        coef=(float(fe[0]), float(fe[1]), float(fe[2]), float(fe[3])),
        coef_cov=tuple(float(v) for v in vb.ravel()),
        re_cov=(float(g[0, 0]), float(g[0, 1]), float(g[1, 1])),
        sigma2=sigma2,
        centre=(m1, mt),
        lower_is_better=lower_is_better,
        scale_min=float(scale_min),
        scale_max=float(scale_max),
        quantile=quantile,
        n_reference_clients=int(ids.len()),
        n_fit_clients=int(min(ids.len(), max_clients)),
        n_fit_sessions=int(y.size),
    )


def to_long(matrix: SeriesMatrix) -> pl.DataFrame:
    """The present cells of ``matrix`` as long data (``client_id, session, score``)."""
    rows, cols = np.nonzero(~np.isnan(matrix.values))
    return pl.DataFrame(
        {
            "client_id": matrix.client_ids.gather(rows),
            "session": cols.astype(np.int64) + 1,
            "score": matrix.values[rows, cols],
        }
    )


def fit(
    reference: SeriesMatrix,
    *,
    lower_is_better: bool,
    scale_min: float,
    scale_max: float,
    quantile: float = 0.9,
    min_clients: int = MIN_REFERENCE_CLIENTS,
) -> GrowthModel:
    """:func:`fit_long` on a series matrix."""
    return fit_long(
        to_long(reference),
        lower_is_better=lower_is_better,
        scale_min=scale_min,
        scale_max=scale_max,
        quantile=quantile,
        min_clients=min_clients,
    )


@dataclass(frozen=True)
class Calibration:
    """Out-of-sample behaviour of a model fitted on one half of the clients, judged on the other.

    ``covered`` counts the judged sessions inside the two-sided prediction interval at ``level``
    (``None`` for a model without one).
    """

    fit_clients: int
    clients: int
    flagged_clients: int
    sessions: int
    flagged_sessions: int
    covered: int | None
    level: float


def split_halves(matrix: SeriesMatrix, seed: int = SEED) -> tuple[SeriesMatrix, SeriesMatrix]:
    """The clients of ``matrix`` split at random into two halves (seeded)."""
    order = np.random.default_rng(seed).permutation(matrix.n_clients)
    half = matrix.n_clients // 2
    parts = []
    for idx in (np.sort(order[:half]), np.sort(order[half:])):
        parts.append(
            SeriesMatrix(
                matrix.client_ids.gather(idx), matrix.values[idx], matrix.last_session[idx]
            )
        )
    return parts[0], parts[1]


def judge(
    model: ExpectedTrajectory, test: SeriesMatrix, *, fit_clients: int, level: float = 0.9
) -> Calibration:
    """How ``model`` (a growth or least-squares model) does on the clients of ``test``."""
    table = model.evaluate(test)
    flagged = table.filter(pl.col("status") == NOT_ON_TRACK)
    covered = None
    if isinstance(model, GrowthModel) and table.height:
        intakes = pl.DataFrame({"client_id": test.client_ids, "_y1": test.values[:, 0]})
        joined = table.join(intakes, on="client_id", how="left", maintain_order="left")
        session = joined.get_column("session").to_numpy()
        low, high = model.interval(joined.get_column("_y1").to_numpy(), session, level)
        score = joined.get_column("score").to_numpy()
        covered = int(np.count_nonzero((score >= low) & (score <= high)))
    return Calibration(
        fit_clients=fit_clients,
        clients=table.get_column("client_id").n_unique(),
        flagged_clients=flagged.get_column("client_id").n_unique(),
        sessions=table.height,
        flagged_sessions=flagged.height,
        covered=covered,
        level=level,
    )


def calibration(
    reference: SeriesMatrix,
    *,
    lower_is_better: bool,
    scale_min: float,
    scale_max: float,
    quantile: float = 0.9,
    level: float = 0.9,
    seed: int = SEED,
) -> Calibration:
    """Fit the growth model on a random half of ``reference``'s clients, judge the other half.

    Raises :class:`ValueError` when the fitting half is below :data:`MIN_REFERENCE_CLIENTS`.
    """
    train, test = split_halves(reference, seed)
    model = fit(
        train,
        lower_is_better=lower_is_better,
        scale_min=scale_min,
        scale_max=scale_max,
        quantile=quantile,
    )
    return judge(model, test, fit_clients=model.n_reference_clients, level=level)
