"""NHS Talking Therapies paired outcome for PHQ-9 and GAD-7.

Source: NHS England, *NHS Talking Therapies for anxiety and depression manual* (v7, 2024),
chapter on outcome measurement and its Appendix on recovery and reliable change, which defines
the "paired" outcome on the first and last session at which both PHQ-9 and GAD-7 were completed.
Thresholds come from the instrument definitions (PHQ-9: caseness >= 10, reliable change 6;
GAD-7: caseness >= 8, reliable change 4). Clients with fewer than two such sessions are excluded
and counted.

With ``P0, G0`` the scores at the first paired session and ``P1, G1`` at the last:

* ``case_at_start = P0 >= 10 or G0 >= 8``
* ``recovered = case_at_start and not (P1 >= 10 or G1 >= 8)``
* ``reliable_improvement = (P0 - P1 >= 6 or G0 - G1 >= 4) and not (P1 - P0 >= 6 or G1 - G0 >= 4)``
* ``reliable_deterioration = P1 - P0 >= 6 or G1 - G0 >= 4``
* ``reliable_recovery = recovered and reliable_improvement``

>>> import polars as pl
>>> rows = pl.DataFrame({
...     "client_id": ["a"] * 4,
...     "session": [1, 1, 5, 5],
...     "measure": ["phq9", "gad7", "phq9", "gad7"],
...     "score": [16.0, 12.0, 7.0, 5.0]})
>>> result = paired_outcomes(rows).table
>>> result.select("case_at_start", "recovered", "reliable_recovery").row(0)
(True, True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from bordin.measures.instruments import Instrument, builtin_registry
from bordin.measures.reliable_change import ROUND
from bordin.measures.series import SeriesMatrix


@dataclass(frozen=True)
class PairedOutcomes:
    """One row per client with at least two paired sessions, and who was excluded."""

    table: pl.DataFrame
    excluded_clients: int


def _thresholds(inst: Instrument) -> tuple[float, float]:
    if inst.caseness is None or inst.reliable_change is None:
        raise ValueError(f"{inst.code}: paired outcomes need caseness and reliable_change")
    return inst.caseness, inst.reliable_change


def paired_outcomes(
    long: pl.DataFrame,
    *,
    phq9: Instrument | None = None,
    gad7: Instrument | None = None,
) -> PairedOutcomes:
    """Compute the paired outcome from long data (``client_id, session, measure, score``).

    Columns of the result: ``client_id, first_session, last_session, case_at_start,
    recovered, reliable_improvement, reliable_deterioration, reliable_recovery``.
    """
    reg = builtin_registry()
    phq = phq9 or reg["phq9"]
    gad = gad7 or reg["gad7"]

    def matrix(code: str) -> SeriesMatrix:
        return SeriesMatrix.from_long(long.filter(pl.col("measure").cast(pl.String) == code))

    return paired_from_matrices(matrix(phq.code), matrix(gad.code), phq9=phq, gad7=gad)


def paired_from_matrices(
    phq_matrix: SeriesMatrix,
    gad_matrix: SeriesMatrix,
    *,
    phq9: Instrument,
    gad7: Instrument,
) -> PairedOutcomes:
    """:func:`paired_outcomes` on the two measures' series matrices (what the batch uses)."""
    phq_case, phq_rc = _thresholds(phq9)
    gad_case, gad_rc = _thresholds(gad7)
    both = (
        pl.DataFrame({"client_id": phq_matrix.client_ids, "i": np.arange(phq_matrix.n_clients)})
        .join(
            pl.DataFrame(
                {"client_id": gad_matrix.client_ids, "j": np.arange(gad_matrix.n_clients)}
            ),
            on="client_id",
        )
        .sort("client_id")
    )
    width = min(phq_matrix.n_sessions, gad_matrix.n_sessions)
    i, j = both.get_column("i").to_numpy(), both.get_column("j").to_numpy()
    p = phq_matrix.values[i, :width]
    g = gad_matrix.values[j, :width]
    paired = ~np.isnan(p) & ~np.isnan(g)
    n_paired = paired.sum(axis=1)
    first = paired.argmax(axis=1)
    last = width - 1 - paired[:, ::-1].argmax(axis=1)
    keep = np.flatnonzero(n_paired >= 2)
    first, last = first[keep], last[keep]
    p0, p1 = p[keep, first], p[keep, last]
    g0, g1 = g[keep, first], g[keep, last]
    p_drop, g_drop = np.round(p0 - p1, ROUND), np.round(g0 - g1, ROUND)
    worse = (-p_drop >= phq_rc) | (-g_drop >= gad_rc)
    improved = ((p_drop >= phq_rc) | (g_drop >= gad_rc)) & ~worse
    case_start = (p0 >= phq_case) | (g0 >= gad_case)
    case_end = (p1 >= phq_case) | (g1 >= gad_case)
    recovered = case_start & ~case_end
    table = pl.DataFrame(
        {
            "client_id": both.get_column("client_id").gather(keep),
            "first_session": (first + 1).astype(np.int64),
            "last_session": (last + 1).astype(np.int64),
            "case_at_start": case_start,
            "recovered": recovered,
            "reliable_improvement": improved,
            "reliable_deterioration": worse,
            "reliable_recovery": recovered & improved,
        }
    )
    anyone = phq_matrix.n_clients + gad_matrix.n_clients - both.height
    return PairedOutcomes(table=table, excluded_clients=anyone - table.height)
