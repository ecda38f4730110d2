"""Sudden gains and sudden losses (Tang & DeRubeis, 1999).

Sources:

* Tang, T. Z., & DeRubeis, R. J. (1999). Sudden gains and critical sessions in
  cognitive-behavioral therapy for depression. *Journal of Consulting and Clinical Psychology*,
  67(6), 894-904. The three criteria.
* Lutz, W., Ehrlich, T., Rubel, J., et al. (2013). The ups and downs of psychotherapy: sudden
  gains and sudden losses identified with session reports. *Psychotherapy Research*, 23(1),
  14-24. Sudden losses, and the critical value of criterion 3 adjusted for missing sessions.
* Wiedemann, M., Thew, G. R., Stott, R., & Ehlers, A. (2020). suddengains: An R package to
  identify sudden gains in longitudinal data. *PLOS ONE*, 15(3), e0230276.

This module mirrors ``identify_sg`` / ``identify_sl`` of the R package suddengains 0.7.2 with
``identify_sg_1to2 = FALSE``, and reproduces that package's result on its example data set
(``sgdata``, BDI, cut-off 7: 24 sudden gains and 3 sudden losses).

The rule
--------
Each client's series is ``x_1 .. x_N`` (session ``k`` at position ``k``; ``N`` is that client's
last session with a score; absent sessions are missing). The interval from *pre-gain session*
``s`` to ``s + 1`` is examined for ``s = 2 .. N - 2`` (session 1 is never a pre-gain session).
Both ``x_s`` and ``x_{s+1}`` must be present. For a measure where lower scores are better, a
**sudden gain** at ``s`` is a drop ``d = x_s - x_{s+1}`` with

1. ``d >= cutoff`` (the drop is large in absolute terms);
2. ``d >= crit2_pct * x_s`` (and large relative to the pre-gain score, 25 % by default);
3. ``mean(pre) - mean(post) > t * s_pooled`` (and large relative to the fluctuation around it),

where ``pre`` holds the available scores of sessions ``s - 2 .. s`` (none before session 1),
``post`` those of sessions ``s + 1 .. s + 3`` (none after ``N``), and

    s_pooled = sqrt(((n_pre - 1) * sd_pre**2 + (n_post - 1) * sd_post**2) / (n_pre + n_post - 2))

with sample standard deviations (``ddof = 1``). ``t`` is the two-tailed critical value of
Student's t, ``|t_{alpha/2, n_pre + n_post - 2}|``, ``alpha = 0.05``: 2.776 when both windows are
complete (3 + 3 scores), 3.182 when one score is missing (2 + 3 or 3 + 2) and 4.303 when one is
missing on each side (2 + 2). With fewer than two scores in either window there is no sudden
change. This is the missing-data adjustment of Lutz et al. (2013).

A **sudden loss** mirrors a gain with an increase ``u = x_{s+1} - x_s``: ``u >= cutoff``,
``u >= crit2_pct * x_s`` and ``mean(post) - mean(pre) > t * s_pooled``. For measures where higher
scores are better the two swap: a gain is such an increase and a loss such a drop. Criterion 3 is
strict, so an interval is never both a gain and a loss.

Notes on matching suddengains
-----------------------------
* Older suddengains releases hard-code the critical values 2.776 / 3.182 / 4.303; newer ones
  compute the t quantile. Both reproduce the package's example output exactly; Bordin computes
  the quantile (:func:`critical_value`), so any ``alpha`` works.
* Differences are rounded to 9 decimals before they are compared with a threshold, so floating
  point noise never decides (``10.2 - 3.2``, 6.999999999999999 in binary floating point, counts
  as 7 and passes ``cutoff=7``).
* suddengains takes a negative cut-off for losses; here ``cutoff`` is the positive size of the
  change for both kinds.
* Criterion 2 for losses is the mirror of the gain rule (the rise is at least ``crit2_pct`` of
  the pre-gain score). Some suddengains sources write it as ``x_s - x_{s+1} <= crit2_pct * x_s``,
  which any rise from a non-negative score meets; on the example data the two readings find the
  same 3 losses.

Examples
--------
>>> [(c.kind, c.pregain_session, c.magnitude)
...  for c in identify_scores([30, 31, 29, 18, 17, 16], cutoff=7, lower_is_better=True)]
[('gain', 3, 11.0)]
>>> import polars as pl
>>> long = pl.DataFrame({"client_id": ["a"] * 6 + ["b"] * 6,
...                      "session": list(range(1, 7)) * 2,
...                      "score": [30, 31, 29, 18, 17, 16, 10, 11, 10, 22, 21, 23]})
>>> identify(SeriesMatrix.from_long(long), cutoff=7, lower_is_better=True).select(
...     "kind", "client_id", "pregain_session", "magnitude").rows()
[('gain', 'a', 3, 11.0), ('loss', 'b', 3, 12.0)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from bordin.measures.series import BoolArray, FloatArray, IntArray, SeriesMatrix

#: The kinds of sudden change, in output sort order.
KINDS: tuple[str, str] = ("gain", "loss")
#: Differences are rounded to this many decimals before comparison with a threshold.
ROUND = 9
#: Sessions on each side of the interval that enter criterion 3 (pre: s-2..s, post: s+1..s+3).
WINDOW = 3

_COLUMNS = (
    "kind",
    "client_id",
    "pregain_session",
    "postgain_session",
    "pregain_score",
    "postgain_score",
    "magnitude",
)


@dataclass(frozen=True)
class SuddenChange:
    """One sudden gain or loss of one client (sessions are 1-based)."""

    kind: str
    pregain_session: int
    postgain_session: int
    pregain_score: float
    postgain_score: float
    magnitude: float


def critical_value(n_pre: int, n_post: int, alpha: float = 0.05) -> float:
    """Two-tailed Student-t critical value for criterion 3, ``df = n_pre + n_post - 2``.

    >>> [round(critical_value(a, b), 3) for a, b in [(3, 3), (2, 3), (3, 2), (2, 2)]]
    [2.776, 3.182, 3.182, 4.303]
    """
    df = n_pre + n_post - 2
    if df < 1:
        raise ValueError(f"need n_pre + n_post >= 3, got {n_pre} + {n_post}")
    return _t_quantile(df, alpha)


#: ``scipy.special.stdtrit(df, 0.975)`` for the degrees of freedom criterion 3 meets (2..4),
#: as SciPy computes them (tests check they are equal): the usual ``alpha = 0.05`` needs no
#: SciPy import, which costs a worker process of ``bordin analyze`` about 0.3 s.
T_975 = {2: 4.302652729749462, 3: 3.1824463052837078, 4: 2.7764451051977934}


def _t_quantile(df: int, alpha: float) -> float:
    """``|t_{alpha/2, df}|``, the upper ``1 - alpha/2`` quantile of Student's t."""
    if alpha == 0.05 and df in T_975:
        return T_975[df]
    # scipy.special is imported here, not at module level: scipy.stats (which computes
    # t.ppf with this same function) takes most of a second to import, and the CLI should
    # start at once. stdtrit is the inverse of Student's t distribution function.
    from scipy import special

    return float(special.stdtrit(df, 1.0 - alpha / 2.0))


def _window(block: FloatArray) -> tuple[IntArray, FloatArray, FloatArray]:
    """Count, mean and sum of squared deviations of each column of ``block``, ignoring NaN.

    ``block`` has shape ``(k, n_clients)``: ``k`` sessions of a window, one column per client.
    The mean is NaN where the count is zero.

    The sums add the window's sessions in order, one element-wise step each (not einsum,
    whose SIMD path fuses and reorders by memory alignment), so a window's numbers do not
    depend on how many clients are computed with it nor where they lie in memory.
    """
    present = ~np.isnan(block)
    count = present.sum(axis=0)
    filled = np.where(present, block, 0.0)
    total = filled[0].copy()
    for row in filled[1:]:
        total += row
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        deviation = np.where(present, block - mean, 0.0)
    ss = deviation[0] * deviation[0]
    for row in deviation[1:]:
        ss += row * row
    return count.astype(np.int64), mean, ss


def _validate(cutoff: float, kinds: tuple[str, ...], crit2_pct: float, alpha: float) -> None:
    if not cutoff > 0:
        raise ValueError(f"cutoff must be a positive number, got {cutoff}")
    if not crit2_pct >= 0:
        raise ValueError(f"crit2_pct must be >= 0, got {crit2_pct}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    unknown = [k for k in kinds if k not in KINDS]
    if isinstance(kinds, str) or unknown:
        raise ValueError(f"kinds must be a tuple of {KINDS}, got {kinds!r}")


def identify(
    matrix: SeriesMatrix,
    *,
    cutoff: float,
    lower_is_better: bool,
    kinds: tuple[str, ...] = KINDS,
    crit2_pct: float = 0.25,
    alpha: float = 0.05,
) -> pl.DataFrame:
    """Sudden gains and/or losses of every client in ``matrix`` (see the module docstring).

    ``cutoff`` is the positive size of change criterion 1 asks for (for both kinds),
    ``crit2_pct`` the share of the pre-gain score criterion 2 asks for, ``alpha`` the two-tailed
    level of criterion 3.

    Returns one row per sudden change, sorted by ``client_id, pregain_session, kind``, with
    columns ``kind`` (``"gain"`` or ``"loss"``), ``client_id``, ``pregain_session``,
    ``postgain_session`` (``pregain_session + 1``), ``pregain_score``, ``postgain_score`` and
    ``magnitude`` (``|postgain_score - pregain_score|``).

    The work is vectorised over clients: one pass of NumPy column operations per candidate
    pre-gain session, never a loop per client.
    """
    _validate(cutoff, kinds, crit2_pct, alpha)
    # Critical values indexed by degrees of freedom (2..4 occur; 0 marks "not eligible").
    table = np.full(2 * WINDOW - 1, np.nan)
    for dof in range(2, 2 * WINDOW - 1):
        table[dof] = _t_quantile(dof, alpha)
    # ``decrease`` events are gains when lower is better, losses otherwise.
    decrease_kind = 0 if lower_is_better else 1
    wanted = {KINDS.index(k) for k in kinds}
    want_decrease = decrease_kind in wanted
    want_increase = (1 - decrease_kind) in wanted

    n_clients, n_sessions = matrix.values.shape
    found_rows: list[IntArray] = []
    found_cols: list[IntArray] = []
    found_kinds: list[IntArray] = []
    directions = ((want_decrease, 1.0, decrease_kind), (want_increase, -1.0, 1 - decrease_kind))
    found = (found_rows, found_cols, found_kinds)
    wanted_any = want_decrease or want_increase
    if wanted_any and n_sessions > LOOP_SESSIONS:
        # Long series: every candidate cell at once (a loop over thousands of sessions,
        # each step on a few clients, would cost more in Python than in NumPy).
        rows, cols, drop = _candidate_cells(matrix, cutoff)
        values = matrix.values
        _criteria(
            rows,
            cols,
            values[rows, cols],
            drop,
            _window_rows(values, rows, cols - WINDOW + 1, cols + 1),
            _window_rows(values, rows, cols + 1, cols + 1 + WINDOW),
            table=table,
            cutoff=cutoff,
            crit2_pct=crit2_pct,
            directions=directions,
            found=found,
        )
    elif wanted_any and n_clients and n_sessions >= 4:
        # Session-major copy: each session's scores of all clients are contiguous in memory.
        by_session: FloatArray = np.ascontiguousarray(matrix.values.T)
        last_col = matrix.last_session - 1  # 0-based column of each client's session N
        # ``c`` is the 0-based column of the pre-gain session s = c + 1, for s = 2 .. N - 2.
        for c in range(1, n_sessions - 2):
            before = by_session[c]
            after = by_session[c + 1]
            with np.errstate(invalid="ignore"):
                drop_all = np.round(before - after, ROUND)
                # Criterion 1 first (NaN fails it): the window statistics, the costly part,
                # are computed only for the few clients whose change is large enough.
                candidates = np.flatnonzero((np.abs(drop_all) >= cutoff) & (c <= last_col - 2))
            if not candidates.size:
                continue
            _criteria(
                candidates,
                np.full(candidates.size, c, dtype=np.int64),
                before[candidates],
                drop_all[candidates],
                _window(by_session[max(0, c - WINDOW + 1) : c + 1, candidates]),
                _window(by_session[c + 1 : c + 1 + WINDOW, candidates]),
                table=table,
                cutoff=cutoff,
                crit2_pct=crit2_pct,
                directions=directions,
                found=found,
            )
    return _frame(matrix, found_rows, found_cols, found_kinds)


#: Above this many sessions, :func:`identify` takes every candidate cell at once instead of
#: one session at a time.
LOOP_SESSIONS = 32


def _candidate_cells(matrix: SeriesMatrix, cutoff: float) -> tuple[IntArray, IntArray, FloatArray]:
    """Criterion 1's candidates as ``(row, column of the pre-gain session)`` pairs, with
    their rounded drop: the cells the session-by-session loop of :func:`identify` examines
    (columns ``1 .. n_sessions - 3``, at least two sessions before the client's last)."""
    values = matrix.values
    n_sessions = values.shape[1]
    with np.errstate(invalid="ignore"):
        drop_all = np.round(values[:, 1 : n_sessions - 2] - values[:, 2 : n_sessions - 1], ROUND)
        col = np.arange(1, n_sessions - 2)
        mask = (np.abs(drop_all) >= cutoff) & (col <= (matrix.last_session - 3)[:, None])
    rows, j = np.nonzero(mask)
    return rows.astype(np.int64), (j + 1).astype(np.int64), drop_all[rows, j]


def _window_rows(
    values: FloatArray, rows: IntArray, start: IntArray, end: IntArray
) -> tuple[IntArray, FloatArray, FloatArray]:
    """:func:`_window` of the cells ``values[rows[i], start[i]:end[i]]`` (columns outside the
    matrix left out), each window one item. Windows of the same length go through
    :func:`_window` together, laid out as the session loop lays them out: the same numbers
    to the last bit."""
    start = np.maximum(start, 0)
    end = np.minimum(end, values.shape[1])
    length = end - start
    count = np.zeros(rows.size, dtype=np.int64)
    mean = np.full(rows.size, np.nan)
    ss = np.zeros(rows.size)
    for k in np.unique(length):
        these = np.flatnonzero(length == k)
        block = values[rows[these, None], start[these, None] + np.arange(k)].T
        count[these], mean[these], ss[these] = _window(np.ascontiguousarray(block))
    return count, mean, ss


def _criteria(
    rows: IntArray,
    cols: IntArray,
    before: FloatArray,
    drop: FloatArray,
    pre: tuple[IntArray, FloatArray, FloatArray],
    post: tuple[IntArray, FloatArray, FloatArray],
    *,
    table: FloatArray,
    cutoff: float,
    crit2_pct: float,
    directions: tuple[tuple[bool, float, int], ...],
    found: tuple[list[IntArray], list[IntArray], list[IntArray]],
) -> None:
    """Criteria 2 and 3 (and the direction of criterion 1) on candidate cells ``(rows,
    cols)`` with their pre-gain score, drop and window statistics (:func:`_window`),
    appending the hits to ``found`` (rows, pre-gain columns, kind codes)."""
    (n_pre, mean_pre, ss_pre), (n_post, mean_post, ss_post) = pre, post
    with np.errstate(invalid="ignore", divide="ignore"):
        eligible: BoolArray = (n_pre >= 2) & (n_post >= 2)
        df = np.where(eligible, n_pre + n_post - 2, 0)
        pooled_sd = np.sqrt((ss_pre + ss_post) / df)
        threshold = np.round(table[df] * pooled_sd, ROUND)
        relative = np.round(crit2_pct * before, ROUND)
        mean_drop = np.round(mean_pre - mean_post, ROUND)
    for wanted_here, sign, kind in directions:
        if not wanted_here:
            continue
        change = sign * drop
        hit = eligible & (change >= cutoff) & (change >= relative) & (sign * mean_drop > threshold)
        if hit.any():
            found[0].append(rows[hit].astype(np.int64))
            found[1].append(cols[hit])
            found[2].append(np.full(int(hit.sum()), kind, dtype=np.int64))


def _frame(
    matrix: SeriesMatrix,
    found_rows: list[IntArray],
    found_cols: list[IntArray],
    found_kinds: list[IntArray],
) -> pl.DataFrame:
    """Assemble the result table from the (row, pre-gain column, kind code) triples found."""
    empty = np.empty(0, dtype=np.int64)
    rows = np.concatenate(found_rows) if found_rows else empty
    cols = np.concatenate(found_cols) if found_cols else empty
    codes = np.concatenate(found_kinds) if found_kinds else empty
    pre = matrix.values[rows, cols] if rows.size else np.empty(0, dtype=np.float64)
    post = matrix.values[rows, cols + 1] if rows.size else np.empty(0, dtype=np.float64)
    frame = pl.DataFrame(
        {
            "kind": pl.Series(KINDS, dtype=pl.String).gather(codes),
            "client_id": matrix.client_ids.gather(rows).rename("client_id"),
            "pregain_session": pl.Series(cols + 1, dtype=pl.Int64),
            "postgain_session": pl.Series(cols + 2, dtype=pl.Int64),
            "pregain_score": pl.Series(pre, dtype=pl.Float64),
            "postgain_score": pl.Series(post, dtype=pl.Float64),
            "magnitude": pl.Series(np.round(np.abs(post - pre), ROUND), dtype=pl.Float64),
        }
    )
    return frame.select(_COLUMNS).sort(["client_id", "pregain_session", "kind"])


def identify_scores(
    scores: Sequence[float | None],
    *,
    cutoff: float,
    lower_is_better: bool,
    kinds: tuple[str, ...] = KINDS,
    crit2_pct: float = 0.25,
    alpha: float = 0.05,
) -> list[SuddenChange]:
    """Sudden changes in one client's series; ``scores[k]`` is session ``k + 1``, ``None`` absent.

    A thin wrapper around :func:`identify` on a one-row :class:`SeriesMatrix`.

    >>> (change,) = identify_scores([12, 11, 13, 25, 24, 26], cutoff=7, lower_is_better=False)
    >>> change.kind, change.pregain_session, change.postgain_session, change.magnitude
    ('gain', 3, 4, 12.0)
    """
    frame = identify(
        SeriesMatrix.from_scores(scores),
        cutoff=cutoff,
        lower_is_better=lower_is_better,
        kinds=kinds,
        crit2_pct=crit2_pct,
        alpha=alpha,
    )
    return [
        SuddenChange(
            kind=str(row["kind"]),
            pregain_session=int(row["pregain_session"]),
            postgain_session=int(row["postgain_session"]),
            pregain_score=float(row["pregain_score"]),
            postgain_score=float(row["postgain_score"]),
            magnitude=float(row["magnitude"]),
        )
        for row in frame.iter_rows(named=True)
    ]
