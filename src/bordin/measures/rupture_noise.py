"""How often the rupture rule fires on pure noise, and what "repair" regression to the mean gives.

A drop of ``T`` points between two sessions can be measurement noise: with no true change at
all, a client whose alliance scores vary around their own level with within-client SD ``s``
shows session-to-session differences with SD ``s * sqrt(2)``, and a low score is usually
followed by a higher one (regression to the mean), which the rule calls a *repair*.

:func:`noise_rates` simulates clients whose true alliance never changes (score = own level +
``N(0, s^2)`` noise, rounded to the measure's step, kept inside the scale) and runs
:func:`bordin.measures.ruptures.detect` on them: the share of clients with at least one
"rupture" is the rule's **false-alarm rate per client** at that variability, and the share of
those ruptures called repaired is the **repair rate that regression to the mean alone gives**.
A clinic's observed repair rate says something about repair work only where it clearly exceeds
that figure.

:func:`within_client_sd` estimates ``s`` from a clinic's data (the pooled within-client SD,
``sqrt(MS_within)`` of a one-way ANOVA with clients as groups; it includes true change, so it
over- rather than under-states the noise). :func:`reliable_threshold` is the drop that noise of
that size exceeds in fewer than 5% of session pairs, ``1.96 * sqrt(2) * s`` (the Jacobson & Truax
1991 logic with ``SE = s``; the same value as :func:`bordin.measures.ruptures.gumz_threshold`).

>>> r = noise_rates(within_sd=0.6, threshold=1.5, clients=2000, sessions=12, seed=1)
>>> 0.3 < r.clients_flagged < 0.6, r.repaired_share > 0.5
(True, True)
>>> round(reliable_threshold(0.6), 2)
1.66
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from bordin.measures.ruptures import detect
from bordin.measures.series import SeriesMatrix

SEED = 2026


@dataclass(frozen=True)
class NoiseRates:
    within_sd: float
    threshold: float
    clients: int
    sessions: int
    clients_flagged: float
    ruptures_per_100_sessions: float
    repaired_share: float
    #: Share of clients with at least one rupture called repaired.
    clients_repaired: float


def noise_rates(
    *,
    within_sd: float,
    threshold: float,
    clients: int = 5000,
    sessions: int = 12,
    level: float = 7.5,
    level_sd: float = 1.0,
    low: float = 0.0,
    high: float = 10.0,
    step: float = 0.25,
    seed: int = SEED,
    retest: float | None = None,
) -> NoiseRates:
    """Simulate noise-only alliance series and apply the rupture rule (see module docstring).

    ``retest``: ``None`` for the fixed rule's repair criterion, else ``rho`` of the repair
    criterion beyond regression to the mean (:func:`bordin.measures.ruptures.detect`).
    """
    if not within_sd > 0:
        raise ValueError(f"within_sd must be positive, got {within_sd}")
    rng = np.random.default_rng(seed)
    own = rng.normal(level, level_sd, clients)[:, None]
    values = own + rng.normal(0.0, within_sd, (clients, sessions))
    values = np.clip(np.round(values / step) * step, low, high)
    matrix = SeriesMatrix(
        client_ids=pl.Series("client_id", np.arange(clients)),
        values=values,
        last_session=np.full(clients, sessions, dtype=np.int64),
    )
    rup = detect(matrix, threshold=threshold, retest=retest)
    closed = rup.filter(pl.col("status") != "open")
    repaired = int((closed.get_column("status") == "repaired").sum())
    return NoiseRates(
        within_sd=within_sd,
        threshold=threshold,
        clients=clients,
        sessions=sessions,
        clients_flagged=rup.get_column("client_id").n_unique() / clients,
        ruptures_per_100_sessions=100 * rup.height / (clients * sessions),
        repaired_share=repaired / closed.height if closed.height else math.nan,
        clients_repaired=rup.filter(pl.col("status") == "repaired")
        .get_column("client_id")
        .n_unique()
        / clients,
    )


def within_client_sd(matrix: SeriesMatrix) -> float:
    """Pooled within-client SD, ``sqrt(sum (y - mean_i)^2 / (N - k))``; NaN without data.

    >>> m = SeriesMatrix(client_ids=pl.Series("client_id", ["a", "b"]),
    ...                  values=np.array([[7.0, 8.0, 9.0], [4.0, 5.0, 6.0]]),
    ...                  last_session=np.array([3, 3]))
    >>> within_client_sd(m)
    1.0
    """
    values = matrix.values
    n_i = (~np.isnan(values)).sum(axis=1)
    has = n_i > 0
    df = int(n_i.sum()) - int(has.sum())
    if df <= 0:
        return math.nan
    means = np.nansum(values[has], axis=1) / n_i[has]
    ss = float(np.nansum((values[has] - means[:, None]) ** 2))
    return math.sqrt(ss / df)


def reliable_threshold(within_sd: float) -> float:
    """``1.96 * sqrt(2) * within_sd``: a drop noise exceeds in fewer than 5% of session pairs."""
    return 1.96 * math.sqrt(2.0) * within_sd
