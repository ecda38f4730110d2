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

**Finished or interim.** The manual counts a referral in the outcome only once its course of
treatment has *finished*: the referral (Bordin's episode) has ended and had at least two
attended treatment contacts (assessment contacts are not treatment). Each row carries
``course = "finished"`` or ``"interim"``; without episode information (plain long data) every
row is ``"interim"``, and reports must label those results as interim (see
:func:`course_status`).

**Anxiety measure.** The manual uses the anxiety disorder-specific measure (ADSM) when the
referral names one, GAD-7 otherwise (:func:`anxiety_measure`); any instrument with caseness and
a reliable-change threshold can be passed as ``gad7``.

**Pairing.** ``pairing="same_session"`` (the default) takes the first and last session at which
*both* measures were completed; ``pairing="own_first_last"`` takes each measure's own first and
last score (the alternative some services use). Bordin could not check the current manual's
wording on this point against the source; both are offered and the report states which ran.

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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

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


Pairing = Literal["same_session", "own_first_last"]
#: Attended treatment contacts a finished course needs (NHS Talking Therapies manual).
MIN_TREATMENT_CONTACTS = 2


def course_status(ended: bool | None, treatment_contacts: int) -> str:
    """``"finished"`` when the episode has ended with at least two treatment contacts.

    >>> course_status(True, 2), course_status(True, 1), course_status(False, 9)
    ('finished', 'interim', 'interim')
    >>> course_status(None, 5)  # nothing known about the episode's end
    'interim'
    """
    if ended and treatment_contacts >= MIN_TREATMENT_CONTACTS:
        return "finished"
    return "interim"


def anxiety_measure(adsm: str | None, available: set[str] | frozenset[str]) -> str | None:
    """The anxiety measure of the paired outcome: the named ADSM if present, else GAD-7.

    >>> anxiety_measure("spin", {"phq9", "gad7", "spin"}), anxiety_measure(None, {"gad7"})
    ('spin', 'gad7')
    >>> anxiety_measure(None, {"phq9"}) is None
    True
    """
    if adsm and adsm in available:
        return adsm
    return "gad7" if "gad7" in available else None


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
    pairing: Pairing = "same_session",
    finished: Mapping[object, bool] | None = None,
) -> PairedOutcomes:
    """:func:`paired_outcomes` on the two measures' series matrices (what the batch uses).

    ``finished`` maps client ids to whether their course has finished (see
    :func:`course_status`); clients not in it, or all clients when it is ``None``, are
    ``"interim"``.
    """
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
    if pairing == "same_session":
        paired = ~np.isnan(p) & ~np.isnan(g)
        first, last = _first_last(paired)
        keep = np.flatnonzero(paired.sum(axis=1) >= 2)
        first, last = first[keep], last[keep]
        p0, p1 = p[keep, first], p[keep, last]
        g0, g1 = g[keep, first], g[keep, last]
    elif pairing == "own_first_last":
        p = phq_matrix.values[i]
        g = gad_matrix.values[j]
        p_first, p_last = _first_last(~np.isnan(p))
        g_first, g_last = _first_last(~np.isnan(g))
        enough = ((~np.isnan(p)).sum(axis=1) >= 2) & ((~np.isnan(g)).sum(axis=1) >= 2)
        keep = np.flatnonzero(enough)
        p_first, p_last, g_first, g_last = (a[keep] for a in (p_first, p_last, g_first, g_last))
        p0, p1 = p[keep, p_first], p[keep, p_last]
        g0, g1 = g[keep, g_first], g[keep, g_last]
        first, last = np.minimum(p_first, g_first), np.maximum(p_last, g_last)
    else:
        raise ValueError(f"pairing must be 'same_session' or 'own_first_last', got {pairing!r}")
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
    ended = [c for c, is_done in (finished or {}).items() if is_done]
    ids = table.get_column("client_id")
    done = (
        ids.is_in(pl.Series(ended, dtype=ids.dtype, strict=False).implode())
        if ended
        else pl.lit(False)
    )
    table = table.with_columns(
        pl.when(done).then(pl.lit("finished")).otherwise(pl.lit("interim")).alias("course")
    )
    anyone = phq_matrix.n_clients + gad_matrix.n_clients - both.height
    return PairedOutcomes(table=table, excluded_clients=anyone - table.height)


def _first_last(present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    width = present.shape[1]
    return present.argmax(axis=1), width - 1 - present[:, ::-1].argmax(axis=1)
