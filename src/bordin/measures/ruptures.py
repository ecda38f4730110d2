"""Alliance ruptures and their repair, detected from session-by-session alliance scores.

Background. Safran and Muran (2000) describe a *rupture* as a strain or breakdown in the
collaboration between client and therapist, and the work of noticing and *repairing* it as a
source of change in itself. Process studies made the idea measurable on post-session alliance
ratings: Stiles et al. (2004) looked for V-shaped dips in which the alliance falls and then
returns, Strauss et al. (2006) counted such rupture-repair episodes and found that they went with
better outcomes, and Gumz et al. (2012) compared those criteria, showed that the number of
episodes found depends strongly on the criterion, and proposed thresholds that take both
within-client and between-client variability into account. The meta-analysis of Eubanks, Muran
and Safran (2018) found that repaired ruptures go with better outcomes.

The rule below is **Bordin's own operational rule**, inspired by those studies; it reproduces
none of them exactly. On an alliance series (higher is better, ``a_s`` the score at session
``s``) and for a threshold ``T > 0``:

* **comparison score**: ``p = s - 1`` if session ``s - 1`` has a score, else ``p = s - 2`` if
  that one has, else session ``s`` has no comparison (a longer gap is not bridged);
* **rupture at s**: ``a_s - a_p <= -T``, i.e. a drop ``a_p - a_s`` of at least ``T``;
* **repair** (the *fixed* rule, ``retest=None``): at the first session ``r`` with
  ``s < r <= s + 3`` and a score such that ``a_r >= a_p`` (back to the level before the drop)
  or ``a_r - a_s >= T`` (a rise of at least the threshold from the low point, even if short of
  ``a_p``);
* **repair beyond regression to the mean** (``retest=rho`` given, the *reliable* rule): at the
  first such ``r`` with ``(a_r - a_s) - (1 - rho) * (a_p - a_s) >= T``. A score picked out for
  being low is expected to move back towards the level it is compared with by ``(1 - rho)``
  times its distance from it, ``rho`` being the correlation between repeated measurements
  (Barnett, van der Pols & Dobson 2005); only a rise that exceeds that expected rebound by the
  reliable-change threshold counts as a repair. Stiles et al. (2004) describe the V-shape a
  repair leaves in the alliance series; on noise alone the V appears through regression to the
  mean, and this criterion asks for more than that;
* **status**: ``repaired`` when a repair came; otherwise ``unrepaired`` when the client's last
  session is at least ``s + 3`` (the window has passed without a repair), else ``open`` (the
  window is still running, so the outcome is not known yet).

Differences are rounded to :data:`~bordin.measures.reliable_change.ROUND` decimals before they
are compared, so ``8.2 -> 6.7`` (``1.4999999999999991`` in binary floating point) is a drop of
exactly 1.5, as is ``7.8 -> 6.3``. Every session is judged on its own: a further drop during
an open rupture is a rupture of its own when it meets the rule against its own comparison
score. Which threshold and repair criterion apply (the fixed 1.5 points of the alliance
check-in, or a threshold tied to the measure's reliability and variability) is chosen by
:mod:`bordin.measures.rupture_rules`; :func:`gumz_threshold` derives the data-driven threshold.

Sources
-------
* Safran, J. D., & Muran, J. C. (2000). *Negotiating the therapeutic alliance: A relational
  treatment guide*. Guilford Press.
* Stiles, W. B., Glick, M. J., Osatuke, K., Hardy, G. E., Shapiro, D. A., Agnew-Davies, R.,
  Rees, A., & Barkham, M. (2004). Patterns of alliance development and the rupture-repair
  hypothesis: Are productive relationships U-shaped or V-shaped? *Journal of Counseling
  Psychology*, 51(1), 81-92.
* Strauss, J. L., Hayes, A. M., Johnson, S. L., Newman, C. F., Brown, G. K., Barber, J. P.,
  Laurenceau, J.-P., & Beck, A. T. (2006). Early alliance, alliance ruptures, and symptom
  change in a nonrandomized trial of cognitive therapy for avoidant and obsessive-compulsive
  personality disorders. *Journal of Consulting and Clinical Psychology*, 74(2), 337-345.
* Gumz, A., Brähler, E., Geyer, M., & Erices, R. (2012). Crisis-repair sequences:
  considerations on the classification and assessment of breaches in the therapeutic
  relationship. *BMC Medical Research Methodology*, 12, 10.
* Eubanks, C. F., Muran, J. C., & Safran, J. D. (2018). Alliance rupture repair: A
  meta-analysis. *Psychotherapy*, 55(4), 508-519.
* Barnett, A. G., van der Pols, J. C., & Dobson, A. J. (2005). Regression to the mean: what it
  is and how to deal with it. *International Journal of Epidemiology*, 34(1), 215-220.
* Jacobson, N. S., & Truax, P. (1991). Clinical significance: A statistical approach to
  defining meaningful change in psychotherapy research. *Journal of Consulting and Clinical
  Psychology*, 59(1), 12-19.

Examples
--------
>>> detect_scores([7.8, 6.3, 6.9, 8.0], threshold=1.5)
[Rupture(session=2, previous_session=1, drop=1.5, status='repaired', repair_session=4)]
>>> detect_scores([8.0, 6.6, 6.0], threshold=1.5)
[]
>>> # beyond regression to the mean (rho = 0.5): 8 -> 6 expects a rebound of 1, so 7 is not
>>> # a repair; 9 is (a rise of 3 = 1 expected + 2 = T)
>>> [r.status for r in detect_scores([8.0, 6.0, 7.0, 7.0, 7.0], threshold=2, retest=0.5)]
['unrepaired']
>>> detect_scores([8.0, 6.0, 9.0], threshold=2, retest=0.5)[0].repair_session
3
>>> frame = pl.DataFrame({"client_id": ["a", "a", "a", "b", "b", "b", "b", "b"],
...                       "session": [1, 2, 3, 1, 3, 4, 5, 6],
...                       "score": [9.0, 7.0, 7.25, 8.0, 6.0, 6.5, 6.0, 7.0]})
>>> detect(SeriesMatrix.from_long(frame), threshold=1.5).rows()
[('a', 2, 1, 2.0, 'open', None), ('b', 3, 1, 2.0, 'unrepaired', None)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
import numpy.typing as npt
import polars as pl

from bordin.measures.reliable_change import ROUND, Z_95
from bordin.measures.series import SeriesMatrix

Status = Literal["repaired", "unrepaired", "open"]

#: How many sessions after the rupture a repair may come (``s < r <= s + REPAIR_WINDOW``).
REPAIR_WINDOW = 3
#: How far back the comparison score may be (``s - 1``, else ``s - 2``).
MAX_LOOKBACK = 2

_STATUSES = pl.Series("status", ["repaired", "unrepaired", "open"], dtype=pl.String)
_REPAIRED, _UNREPAIRED, _OPEN = 0, 1, 2


@dataclass(frozen=True)
class Rupture:
    """One rupture in one client's series (sessions are 1-based)."""

    session: int
    previous_session: int
    drop: float
    status: Status
    repair_session: int | None


def _check_threshold(threshold: float) -> None:
    if not (math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"rupture threshold must be a finite number > 0, got {threshold!r}")


def _schema(client_dtype: pl.DataType) -> dict[str, pl.DataType]:
    return {
        "client_id": client_dtype,
        "session": pl.Int64(),
        "previous_session": pl.Int64(),
        "drop": pl.Float64(),
        "status": pl.String(),
        "repair_session": pl.Int64(),
    }


def _check_retest(retest: float | None) -> None:
    if retest is not None and not (math.isfinite(retest) and 0 <= retest < 1):
        raise ValueError(f"retest correlation must be in [0, 1), got {retest!r}")


def detect(matrix: SeriesMatrix, *, threshold: float, retest: float | None = None) -> pl.DataFrame:
    """Every rupture of every client, with its repair status (rule in the module docstring).

    ``retest``: ``None`` for the fixed rule's repair criterion, else the correlation ``rho``
    of the repair criterion beyond regression to the mean.

    Returns one row per rupture with columns ``client_id`` (dtype of ``matrix.client_ids``),
    ``session``, ``previous_session`` (Int64), ``drop`` (``a_p - a_s``, Float64, rounded to
    ``ROUND`` decimals), ``status`` (``repaired``/``unrepaired``/``open``) and
    ``repair_session`` (Int64, null unless repaired), sorted by ``client_id`` and ``session``.

    The work is a loop over session columns only; each step handles all clients at once
    (series longer than :data:`LOOP_SESSIONS` take every cell at once: :func:`_every_cell`).
    """
    _check_threshold(threshold)
    _check_retest(retest)
    client_dtype = matrix.client_ids.dtype
    n_clients, n_sessions = matrix.n_clients, matrix.n_sessions
    if n_clients == 0 or n_sessions < 2:
        return pl.DataFrame(schema=_schema(client_dtype))

    # Session-major copy: row j holds session j + 1 of every client, contiguous in memory.
    by_session = np.ascontiguousarray(matrix.values.T)
    ruptured = np.zeros((n_sessions, n_clients), dtype=np.bool_)
    lookback = np.zeros((n_sessions, n_clients), dtype=np.int8)
    repair_after = np.zeros((n_sessions, n_clients), dtype=np.int8)  # 0 = no repair

    if n_sessions > LOOP_SESSIONS:
        _every_cell(by_session, ruptured, lookback, repair_after, threshold, retest)
    else:
        for j in range(1, n_sessions):
            current = by_session[j]
            before = by_session[j - 1]
            if j >= MAX_LOOKBACK:
                has_before = ~np.isnan(before)
                previous = np.where(has_before, before, by_session[j - 2])
                back = np.where(has_before, 1, 2).astype(np.int8)
            else:
                previous = before
                back = np.ones(n_clients, dtype=np.int8)
            # NaN on either side gives NaN, and NaN >= T is False: no comparison, no rupture.
            with np.errstate(invalid="ignore"):
                hit = np.round(previous - current, ROUND) >= threshold
            rows = np.flatnonzero(hit)
            if rows.size == 0:
                continue
            ruptured[j, rows] = True
            lookback[j, rows] = back[rows]
            a_p = previous[rows]
            a_s = current[rows]
            found = np.zeros(rows.size, dtype=np.int8)
            for k in range(1, REPAIR_WINDOW + 1):
                if j + k >= n_sessions:
                    break
                repaired = _repaired(by_session[j + k, rows], a_p, a_s, threshold, retest)
                found[(found == 0) & repaired] = k
            repair_after[j, rows] = found

    # Row-major order over (client, session): sorted by client row, then session.
    client_row, col = np.nonzero(ruptured.T)
    session = col.astype(np.int64) + 1
    back_by = lookback.T[client_row, col].astype(np.int64)
    repair_by = repair_after.T[client_row, col].astype(np.int64)
    values = matrix.values
    drop = np.round(values[client_row, col - back_by] - values[client_row, col], ROUND)

    last = matrix.last_session[client_row]
    status = np.where(
        repair_by > 0,
        _REPAIRED,
        np.where(last >= session + REPAIR_WINDOW, _UNREPAIRED, _OPEN),
    )
    out = pl.DataFrame(
        {
            "client_id": matrix.client_ids.gather(client_row).alias("client_id"),
            "session": pl.Series(session, dtype=pl.Int64),
            "previous_session": pl.Series(session - back_by, dtype=pl.Int64),
            "drop": pl.Series(drop, dtype=pl.Float64),
            "status": _STATUSES.gather(status),
            "repair_session": pl.Series(session + repair_by, dtype=pl.Int64),
            "_repaired": pl.Series(repair_by > 0, dtype=pl.Boolean),
        }
    )
    out = out.with_columns(
        pl.when(pl.col("_repaired")).then(pl.col("repair_session")).alias("repair_session")
    ).drop("_repaired")
    if not matrix.client_ids.is_sorted():
        out = out.sort(["client_id", "session"], maintain_order=True)
    return out


def _repaired(
    a_r: npt.NDArray[np.float64],
    a_p: npt.NDArray[np.float64],
    a_s: npt.NDArray[np.float64],
    threshold: float,
    retest: float | None,
) -> npt.NDArray[np.bool_]:
    """Whether the alliance ``a_r`` of a later session repairs a rupture from ``a_p`` to
    ``a_s`` (the repair criterion of the module docstring: fixed, or beyond regression to the
    mean with ``retest``); NaN repairs nothing."""
    with np.errstate(invalid="ignore"):
        if retest is None:
            back_up = np.round(a_r - a_p, ROUND) >= 0
            rose = np.round(a_r - a_s, ROUND) >= threshold
            return back_up | rose
        expected = (1.0 - retest) * (a_p - a_s)
        return np.round(a_r - a_s - expected, ROUND) >= threshold


#: Above this many sessions, :func:`detect` takes every cell at once (:func:`_every_cell`)
#: instead of one session at a time.
LOOP_SESSIONS = 32


def _every_cell(
    by_session: npt.NDArray[np.float64],
    ruptured: npt.NDArray[np.bool_],
    lookback: npt.NDArray[np.int8],
    repair_after: npt.NDArray[np.int8],
    threshold: float,
    retest: float | None,
) -> None:
    """The session loop of :func:`detect` on every (session, client) cell at once, for long
    series of few clients (thousands of sessions: the loop's Python steps would cost more
    than its NumPy work). The same element-wise arithmetic, so the same ruptures and
    repairs (tested against the loop); fills ``ruptured``, ``lookback``, ``repair_after``."""
    n_sessions = by_session.shape[0]
    before = by_session[:-1]  # session j's previous one, for j = 1 .. n_sessions - 1
    current = by_session[1:]
    previous = before.copy()
    back = np.ones(before.shape, dtype=np.int8)
    if n_sessions > MAX_LOOKBACK:  # from j = MAX_LOOKBACK: a missing session is skipped
        later = slice(MAX_LOOKBACK - 1, None)
        has_before = ~np.isnan(before[later])
        previous[later] = np.where(has_before, before[later], by_session[:-MAX_LOOKBACK])
        back[later] = np.where(has_before, 1, 2)
    with np.errstate(invalid="ignore"):
        hit = np.round(previous - current, ROUND) >= threshold
    at, rows = np.nonzero(hit)
    j = at + 1
    ruptured[j, rows] = True
    lookback[j, rows] = back[at, rows]
    a_p = previous[at, rows]
    a_s = current[at, rows]
    found = np.zeros(rows.size, dtype=np.int8)
    for k in range(1, REPAIR_WINDOW + 1):
        inside = np.flatnonzero(j + k < n_sessions)
        a_r = by_session[j[inside] + k, rows[inside]]
        repaired = _repaired(a_r, a_p[inside], a_s[inside], threshold, retest)
        first = inside[repaired & (found[inside] == 0)]
        found[first] = k
    repair_after[j, rows] = found


def detect_scores(
    scores: Sequence[float | None], *, threshold: float, retest: float | None = None
) -> list[Rupture]:
    """Ruptures in one client's series; ``scores[k]`` is session ``k + 1`` (``None``: missing).

    A thin wrapper around :func:`detect` on :meth:`SeriesMatrix.from_scores`.

    >>> detect_scores([8, None, 6, 6.5, 6], threshold=1.5)
    [Rupture(session=3, previous_session=1, drop=2.0, status='open', repair_session=None)]
    """
    return as_list(detect(SeriesMatrix.from_scores(scores), threshold=threshold, retest=retest))


def as_list(frame: pl.DataFrame) -> list[Rupture]:
    """The rows of a :func:`detect` result as :class:`Rupture` records."""
    return [
        Rupture(
            session=int(row["session"]),
            previous_session=int(row["previous_session"]),
            drop=float(row["drop"]),
            status=cast(Status, row["status"]),
            repair_session=None if row["repair_session"] is None else int(row["repair_session"]),
        )
        for row in frame.iter_rows(named=True)
    ]


def gumz_threshold(matrix: SeriesMatrix) -> float:
    """A data-driven rupture threshold, in the spirit of Gumz et al. (2012).

    Gumz et al. (2012) argued that a rupture criterion should reflect how much alliance scores
    vary, both within a client's course and between clients, rather than a fixed number of
    points. This function follows that idea with the reliable-change logic of Jacobson and
    Truax (1991); it is Bordin's formula, not a reproduction of theirs.

    Treat every session score as ``y_ij = mu + u_i + e_ij`` (client ``i``, session ``j``), a
    one-way random-effects model with clients as groups. From the usual ANOVA decomposition
    (``k`` clients with at least one score, ``N`` scores, ``n_i`` scores of client ``i``):

    * ``MS_within = sum_ij (y_ij - mean_i)^2 / (N - k)`` estimates ``sigma_w^2``;
    * ``MS_between = sum_i n_i (mean_i - mean)^2 / (k - 1)`` and
      ``n_0 = (N - sum_i n_i^2 / N) / (k - 1)`` give
      ``sigma_b^2 = max(0, (MS_between - MS_within) / n_0)``;
    * ``ICC = sigma_b^2 / (sigma_b^2 + sigma_w^2)`` and ``SD = sqrt(sigma_b^2 + sigma_w^2)``.

    The threshold is then ``1.96 * sqrt(2) * SE`` with ``SE = SD * sqrt(1 - ICC)``: the
    smallest session-to-session difference that within-client fluctuation alone would exceed
    less than 5% of the time, if that fluctuation were normal and independent across sessions.
    Algebraically ``SE = sigma_w``, so the between-client spread enters only through the
    decomposition that separates it out; shifting a client's whole series up or down leaves
    the threshold unchanged. Real alliance series drift and are autocorrelated, so read the
    result as a research reference point, not as a significance test.

    Raises ``ValueError`` when no client has two scores or the scores never vary within a
    client.

    >>> m = SeriesMatrix(client_ids=pl.Series("client_id", ["a", "b"]),
    ...                  values=np.array([[7.0, 8.0, 9.0], [4.0, 5.0, 6.0]]),
    ...                  last_session=np.array([3, 3]))
    >>> round(gumz_threshold(m), 4)  # sigma_w = 1
    2.7719
    """
    values = matrix.values
    present = ~np.isnan(values)
    n_i = present.sum(axis=1)
    n_total = int(n_i.sum())
    k = int((n_i > 0).sum())
    if n_total - k <= 0:
        raise ValueError("gumz_threshold needs at least one client with two or more scores")
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.nansum(values, axis=1) / n_i
    ss_within = float(np.nansum((values - means[:, None]) ** 2))
    ms_within = ss_within / (n_total - k)
    if not ms_within > 0:
        raise ValueError("gumz_threshold: scores never vary within a client")
    sigma_w2 = ms_within
    sigma_b2 = 0.0
    if k > 1:
        has = n_i > 0
        grand = float(np.nansum(values)) / n_total
        ms_between = float((n_i[has] * (means[has] - grand) ** 2).sum()) / (k - 1)
        n_0 = (n_total - float((n_i[has].astype(np.float64) ** 2).sum()) / n_total) / (k - 1)
        if n_0 > 0:
            sigma_b2 = max(0.0, (ms_between - ms_within) / n_0)
    icc = sigma_b2 / (sigma_b2 + sigma_w2)
    sd = math.sqrt(sigma_b2 + sigma_w2)
    se = sd * math.sqrt(1.0 - icc)
    return Z_95 * math.sqrt(2.0) * se
