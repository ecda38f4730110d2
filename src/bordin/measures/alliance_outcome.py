"""Alliance -> next-session outcome, with alliance split into between- and within-client parts.

After Falkenström, Granström & Holmqvist (2013), *Journal of Counseling Psychology* 60(3),
317-328, and Zilcha-Mano (2017), *American Psychologist* 72(4), 311-325. For client ``i`` at
session ``t`` with alliance ``A_it`` and outcome ``Y_it`` (both scored as given)::

    Y_i,t+1 = b0 + b_within (A_it - Abar_i) + b_between (Abar_i - Abar)
              + b_lag (Y_it - Ybar) + u_i + e_i,t+1,     u_i ~ N(0, tau^2)

``Abar_i`` is the client's own mean alliance over the sessions used, ``Abar`` and ``Ybar`` the
grand means. Fitted as a random-intercept linear mixed model (statsmodels ``MixedLM``, REML);
CIs are Wald intervals from the model's standard errors.

* ``b_within``: when *this* client's alliance is higher than usual for them, is their next
  outcome better than their current one predicts? Each client is their own control, so stable
  client traits (who forms good alliances) cannot produce it: the *causal-ish* coefficient.
* ``b_between``: do clients with better alliances on average do better? Stable client traits
  can produce this one, so it says little about the alliance's effect.

Only pairs of consecutive sessions (``t`` and ``t + 1``, both with an outcome, ``t`` with an
alliance score) enter. Including the lagged outcome with a random intercept carries a known
dynamic-panel bias in ``b_lag`` when series are short (Falkenström et al. 2017, *Journal of
Consulting and Clinical Psychology* 85(6), 537-549); ``b_within`` is the least affected.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

MIN_CLIENTS = 20
MIN_PAIRS = 100


@dataclass(frozen=True)
class AllianceOutcome:
    """Both alliance coefficients with 95% CIs, or why the model was not fitted."""

    shown: bool
    why_not: str = ""
    clients: int = 0
    pairs: int = 0
    within: float = math.nan
    within_low: float = math.nan
    within_high: float = math.nan
    between: float = math.nan
    between_low: float = math.nan
    between_high: float = math.nan
    lag: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def pairs(alliance: pl.DataFrame, outcome: pl.DataFrame) -> pl.DataFrame:
    """Rows ``client_id, session, alliance, outcome, next_outcome`` for consecutive sessions.

    Both inputs have ``client_id, session, score``.

    >>> a = pl.DataFrame({"client_id": [1, 1, 1], "session": [1, 2, 3], "score": [7.0, 8, 9]})
    >>> y = pl.DataFrame({"client_id": [1, 1, 1], "session": [1, 2, 4], "score": [20.0, 15, 9]})
    >>> pairs(a, y).rows()
    [(1, 1, 7.0, 20.0, 15.0)]
    """
    y = outcome.select("client_id", "session", pl.col("score").alias("outcome"))
    nxt = outcome.select(
        "client_id", (pl.col("session") - 1).alias("session"), pl.col("score").alias("next_outcome")
    )
    return (
        alliance.select("client_id", "session", pl.col("score").alias("alliance"))
        .join(y, on=["client_id", "session"])
        .join(nxt, on=["client_id", "session"])
        .sort("client_id", "session")
    )


def estimate(data: pl.DataFrame) -> AllianceOutcome:
    """Fit the model on :func:`pairs` output."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    n_clients = data.get_column("client_id").n_unique() if data.height else 0
    if n_clients < MIN_CLIENTS or data.height < MIN_PAIRS:
        return AllianceOutcome(
            shown=False,
            why_not=(
                f"needs at least {MIN_CLIENTS} clients and {MIN_PAIRS} pairs of consecutive "
                f"sessions with alliance and outcome; the data have {n_clients} clients and "
                f"{data.height} pairs"
            ),
            clients=n_clients,
            pairs=data.height,
        )
    frame = data.with_columns(pl.col("alliance").mean().over("client_id").alias("_abar"))
    a = frame.get_column("alliance").to_numpy()
    abar = frame.get_column("_abar").to_numpy()
    y = frame.get_column("outcome").to_numpy()
    exog = np.column_stack([np.ones_like(a), a - abar, abar - abar.mean(), y - y.mean()])
    groups = frame.get_column("client_id").to_numpy()
    model = MixedLM(frame.get_column("next_outcome").to_numpy(), exog, groups=groups)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(reml=True, method=["bfgs"])
        if not np.all(np.isfinite(np.asarray(fit.bse_fe))):
            # BFGS can stop where the Hessian is not positive definite; statsmodels' default
            # chain of optimisers (slower) usually gets past it.
            fit = model.fit(reml=True)
    params = np.asarray(fit.fe_params)
    bse = np.asarray(fit.bse_fe)
    z = 1.959963984540054
    return AllianceOutcome(
        shown=True,
        clients=n_clients,
        pairs=data.height,
        within=float(params[1]),
        within_low=float(params[1] - z * bse[1]),
        within_high=float(params[1] + z * bse[1]),
        between=float(params[2]),
        between_low=float(params[2] - z * bse[2]),
        between_high=float(params[2] + z * bse[2]),
        lag=float(params[3]),
    )
