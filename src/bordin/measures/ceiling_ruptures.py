"""Ceiling-aware rupture detection: the rupture threshold scaled to each client's own variability.

Alliance ratings bunch near the top of the scale: a client who always answers 9-10 varies
little, so a fall from 10 to 8.75 is large *for them* yet misses a fixed 1.5-point threshold.

**Bordin's rule** (an option per measure, ``rupture_rule = "ceiling"``, not the default;
documented comparison in docs/measures.md). With the base threshold ``T`` (the measure's
reliable-change threshold, :mod:`bordin.measures.rupture_rules`), the typical within-client SD
``s`` (given, e.g. the measure's standard error of measurement, else the pooled within-client SD
of all clients, :func:`bordin.measures.rupture_noise.within_client_sd`) and client ``i``'s own
SD ``s_i`` of their alliance scores:

* clients with fewer than :data:`MIN_SCORES` scores keep ``T``;
* otherwise ``T_i = max(T * s_i / s, T * FLOOR)``: the fixed threshold scaled by how much this
  client varies compared with clients in general, never below ``FLOOR`` (a third) of ``T``;
* the rupture and repair rules of :mod:`bordin.measures.ruptures` then apply with ``T_i``.

Because every condition of that rule compares differences with the threshold, running it on
the series multiplied by ``T / T_i`` with threshold ``T`` is exactly the rule with ``T_i``; the
reported drops are scaled back. ``s_i`` uses all of the client's scores (a retrospective
analysis; a live alert would use the scores so far).

>>> import numpy as np, polars as pl
>>> from bordin.measures.series import SeriesMatrix
>>> steady = [10.0, 9.75, 10.0, 10.0, 8.75, 10.0]
>>> wobbly = [6.0, 8.0, 5.5, 7.5, 6.0, 8.0]
>>> m = SeriesMatrix(client_ids=pl.Series("client_id", ["steady", "wobbly"]),
...                  values=np.array([steady, wobbly]), last_session=np.array([6, 6]))
>>> # steady: its 1.25-point fall counts (T_i = 0.86); wobbly: only its 2.5 fall (T_i = 1.94)
>>> detect_scaled(m, threshold=1.5).select("client_id", "session", "drop").rows()
[('steady', 5, 1.25), ('wobbly', 3, 2.5)]
"""

from __future__ import annotations

import numpy as np
import polars as pl

from bordin.measures.rupture_noise import within_client_sd
from bordin.measures.ruptures import detect
from bordin.measures.series import SeriesMatrix

MIN_SCORES = 4
FLOOR = 1 / 3


def client_thresholds(
    matrix: SeriesMatrix, *, threshold: float, pooled_sd: float | None = None
) -> np.ndarray:
    """``T_i`` of every client (see the module docstring); ``pooled_sd``: ``s`` when known."""
    pooled = within_client_sd(matrix) if pooled_sd is None else pooled_sd
    n_i = (~np.isnan(matrix.values)).sum(axis=1)
    out = np.full(matrix.n_clients, threshold, dtype=np.float64)
    if not np.isfinite(pooled) or pooled <= 0:
        return out
    enough = n_i >= MIN_SCORES
    if enough.any():
        own = np.nanstd(matrix.values[enough], axis=1, ddof=1)
        out[enough] = np.maximum(threshold * own / pooled, threshold * FLOOR)
    return out


def detect_scaled(
    matrix: SeriesMatrix,
    *,
    threshold: float,
    retest: float | None = None,
    pooled_sd: float | None = None,
) -> pl.DataFrame:
    """Ruptures by the ceiling-aware rule; same columns as :func:`ruptures.detect`.

    ``retest`` selects the repair criterion as in :func:`ruptures.detect`; both criteria compare
    differences with the threshold, so the scaling argument holds for either.
    """
    per_client = client_thresholds(matrix, threshold=threshold, pooled_sd=pooled_sd)
    factor = threshold / per_client
    scaled = SeriesMatrix(
        client_ids=matrix.client_ids,
        values=matrix.values * factor[:, None],
        last_session=matrix.last_session,
    )
    found = detect(scaled, threshold=threshold, retest=retest)
    if found.height == 0:
        return found
    back = pl.DataFrame({"client_id": matrix.client_ids, "_factor": factor})
    return (
        found.join(back, on="client_id", how="left")
        .with_columns((pl.col("drop") / pl.col("_factor")).round(6).alias("drop"))
        .drop("_factor")
    )
