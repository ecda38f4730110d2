"""Therapist effects: how much of the outcome lies between therapists (ICC), with a CI.

Model (a random-intercept linear mixed model; Baldwin & Imel 2013, in *Bergin and Garfield's
Handbook*, 6th ed., ch. 8; fitted with statsmodels ``MixedLM`` by REML)::

    final_ij = b0 + b1 * (intake_ij - mean intake) + u_j + e_ij,
    u_j ~ N(0, tau^2),  e_ij ~ N(0, sigma^2)

for client ``i`` of therapist ``j``. The therapist effect is the intra-class correlation
``ICC = tau^2 / (tau^2 + sigma^2)``: the share of the variance of the intake-adjusted final
score that lies between therapists.

CI for the ICC: the F-based interval for a one-way random-effects ICC (Searle 1971,
*Linear Models*, sec. 9.8; unbalanced groups through Kish's ``n0``, Donner 1986, *International
Statistical Review* 54(1), 67-82), applied to the intake-adjusted residuals
``r_ij = final_ij - b0 - b1 (intake_ij - mean)``, with ``k`` therapists and ``N`` clients::

    F = MS_between / MS_within,  n0 = (N - sum n_j^2 / N) / (k - 1)
    F_L = F / F_{0.975}(k - 1, N - k - 1),  F_U = F / F_{0.025}(k - 1, N - k - 1)
    ICC_L = (F_L - 1) / (F_L + n0 - 1),  ICC_U = (F_U - 1) / (F_U + n0 - 1), clipped to [0, 1]

Therapist estimates are the model's shrunken predictions (BLUPs) ``u_j`` with conditional SD
``sqrt(tau^2 sigma^2 / (sigma^2 + n_j tau^2))``: never raw means, never a ranking.

Shown only with at least :data:`MIN_THERAPISTS` therapists who each have at least
:data:`MIN_CLIENTS` clients (Schiefele et al. 2017 on the sample sizes therapist-effect
estimates need); otherwise :func:`estimate` says why not.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy import stats

MIN_THERAPISTS = 10
MIN_CLIENTS = 10


@dataclass(frozen=True)
class TherapistEffects:
    """ICC with its CI, variance components and shrunken therapist estimates."""

    shown: bool
    why_not: str = ""
    therapists: int = 0
    clients: int = 0
    icc: float = math.nan
    icc_low: float = math.nan
    icc_high: float = math.nan
    tau2: float = math.nan
    sigma2: float = math.nan
    slope: float = math.nan
    estimates: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def f_interval(
    residuals: npt.NDArray[np.float64], groups: npt.NDArray[Any], extra_df: int = 1
) -> tuple[float, float]:
    """F-based 95% CI of the one-way ICC of ``residuals`` grouped by ``groups``.

    >>> # means 2, 8, 5: MS_b = 54 / 2 = 27, MS_w = 6 / 6 = 1, F = 27, n0 = 3
    >>> r = np.array([1.0, 2.0, 3.0, 7.0, 8.0, 9.0, 4.0, 5.0, 6.0])
    >>> g = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    >>> [round(x, 3) for x in f_interval(r, g, extra_df=0)]
    [0.475, 0.997]
    """
    labels, idx = np.unique(groups, return_inverse=True)
    k, n_total = labels.size, residuals.size
    n_j = np.bincount(idx).astype(np.float64)
    means = np.bincount(idx, weights=residuals) / n_j
    grand = residuals.mean()
    ss_b = float((n_j * (means - grand) ** 2).sum())
    ss_w = float(((residuals - means[idx]) ** 2).sum())
    df1, df2 = k - 1, n_total - k - extra_df
    if df1 < 1 or df2 < 1 or ss_w <= 0:
        return math.nan, math.nan
    f = (ss_b / df1) / (ss_w / df2)
    n0 = (n_total - float((n_j**2).sum()) / n_total) / df1
    f_l = f / float(stats.f.ppf(0.975, df1, df2))
    f_u = f / float(stats.f.ppf(0.025, df1, df2))
    low = (f_l - 1) / (f_l + n0 - 1)
    high = (f_u - 1) / (f_u + n0 - 1)
    return min(max(low, 0.0), 1.0), min(max(high, 0.0), 1.0)


def estimate(
    frame: pl.DataFrame,
    *,
    therapist: str = "therapist_id",
    intake: str = "baseline",
    final: str = "final",
) -> TherapistEffects:
    """Fit the model on one row per client (therapist, intake score, final score)."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    per = frame.group_by(therapist).len()
    enough = per.filter(pl.col("len") >= MIN_CLIENTS)
    if enough.height < MIN_THERAPISTS:
        return TherapistEffects(
            shown=False,
            why_not=(
                f"needs at least {MIN_THERAPISTS} therapists with at least {MIN_CLIENTS} "
                f"clients each; the data have {enough.height} such therapist(s) "
                f"({per.height} therapist(s) in all)"
            ),
            therapists=enough.height,
            clients=int(enough.get_column("len").sum()) if enough.height else 0,
        )
    used = frame.join(enough.select(therapist), on=therapist).sort(therapist)
    y = used.get_column(final).cast(pl.Float64).to_numpy()
    x = used.get_column(intake).cast(pl.Float64).to_numpy()
    g = used.get_column(therapist).cast(pl.String).to_numpy()
    xc = x - x.mean()
    exog = np.column_stack([np.ones_like(xc), xc])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = MixedLM(y, exog, groups=g).fit(reml=True, method=["bfgs"])
    tau2 = max(float(np.asarray(fit.cov_re)[0, 0]), 0.0)
    sigma2 = float(fit.scale)
    b0, b1 = (float(v) for v in np.asarray(fit.fe_params))
    resid = y - b0 - b1 * xc
    low, high = f_interval(resid, g)
    labels, idx = np.unique(g, return_inverse=True)
    n_j = np.bincount(idx).astype(np.float64)
    mean_resid = np.bincount(idx, weights=resid) / n_j
    # BLUP of a random intercept: the therapist's mean residual shrunk by n tau^2 / (sigma^2 +
    # n tau^2); conditional variance tau^2 sigma^2 / (sigma^2 + n tau^2).
    shrink = n_j * tau2 / (sigma2 + n_j * tau2)
    blup = shrink * mean_resid
    sd = np.sqrt(tau2 * sigma2 / (sigma2 + n_j * tau2))
    estimates: list[dict[str, Any]] = [
        {
            "therapist": str(label),
            "clients": int(n),
            "estimate": float(b),
            "low": float(b - 1.96 * s),
            "high": float(b + 1.96 * s),
        }
        for label, n, b, s in zip(labels, n_j, blup, sd, strict=True)
    ]
    estimates.sort(key=lambda e: float(e["estimate"]))
    return TherapistEffects(
        shown=True,
        therapists=int(labels.size),
        clients=int(y.size),
        icc=tau2 / (tau2 + sigma2),
        icc_low=low,
        icc_high=high,
        tau2=tau2,
        sigma2=sigma2,
        slope=b1,
        estimates=estimates,
    )
