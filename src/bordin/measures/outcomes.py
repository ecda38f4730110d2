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

import polars as pl

from bordin.measures.instruments import Instrument, builtin_registry
from bordin.measures.reliable_change import ROUND


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
    phq_case, phq_rc = _thresholds(phq)
    gad_case, gad_rc = _thresholds(gad)

    def scores(code: str, name: str) -> pl.LazyFrame:
        return (
            long.lazy()
            .filter(pl.col("measure") == code)
            .select("client_id", "session", pl.col("score").cast(pl.Float64).alias(name))
        )

    paired = scores(phq.code, "p").join(scores(gad.code, "g"), on=["client_id", "session"])
    per_client = (
        paired.group_by("client_id")
        .agg(
            pl.len().alias("n"),
            pl.col("session").min().alias("first_session"),
            pl.col("session").max().alias("last_session"),
            pl.col("p").sort_by("session").first().alias("p0"),
            pl.col("p").sort_by("session").last().alias("p1"),
            pl.col("g").sort_by("session").first().alias("g0"),
            pl.col("g").sort_by("session").last().alias("g1"),
        )
        .collect()
    )
    everyone = (
        long.lazy()
        .filter(pl.col("measure").is_in([phq.code, gad.code]))
        .select(pl.col("client_id").n_unique())
        .collect()
        .item()
    )
    kept = per_client.filter(pl.col("n") >= 2)
    p_drop = (pl.col("p0") - pl.col("p1")).round(ROUND)
    g_drop = (pl.col("g0") - pl.col("g1")).round(ROUND)
    improved = (p_drop >= phq_rc) | (g_drop >= gad_rc)
    worse = (-p_drop >= phq_rc) | (-g_drop >= gad_rc)
    case_start = (pl.col("p0") >= phq_case) | (pl.col("g0") >= gad_case)
    case_end = (pl.col("p1") >= phq_case) | (pl.col("g1") >= gad_case)
    table = (
        kept.with_columns(
            case_at_start=case_start,
            recovered=case_start & ~case_end,
            reliable_improvement=improved & ~worse,
            reliable_deterioration=worse,
        )
        .with_columns(
            reliable_recovery=pl.col("recovered") & pl.col("reliable_improvement"),
        )
        .select(
            "client_id",
            pl.col("first_session").cast(pl.Int64),
            pl.col("last_session").cast(pl.Int64),
            "case_at_start",
            "recovered",
            "reliable_improvement",
            "reliable_deterioration",
            "reliable_recovery",
        )
        .sort("client_id")
    )
    return PairedOutcomes(table=table, excluded_clients=int(everyone) - table.height)
