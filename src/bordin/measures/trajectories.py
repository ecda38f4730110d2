"""Expected treatment response and not-on-track signals (Lambert & Finch's early-warning method).

Sources: Finch, A. E., Lambert, M. J., & Schaalje, B. G. (2001). Psychotherapy quality control:
the statistical generation of expected recovery curves for integration into an early warning
system. *Clinical Psychology & Psychotherapy*, 8(4), 231-242. Lambert, M. J., Whipple, J. L.,
et al. (2002). Enhancing psychotherapy outcomes via providing feedback on client progress: a
replication. *Clinical Psychology & Psychotherapy*, 9(2), 91-103. Lambert, M. J. (2007).
Presidential address: What we have learned from a decade of research aimed at improving
psychotherapy outcome in routine care. *Psychotherapy Research*, 17(1), 1-14.

The idea: clients who start at the same level tend to change along a similar curve, so a
reference data set tells us what score to expect at each session given the intake score, and how
far real scores scatter around that expectation. A score that is worse than expected by more
than the usual scatter is a *not-on-track* signal.

**Model.** With ``y_1`` the intake score (session 1) and ``y_s`` the score at session ``s``,

    y_s = b0 + b1 * y_1 + (b2 + b3 * y_1) * ln(s)

is fitted by ordinary least squares over every session ``s >= 2`` of every reference client
who has an intake score (a single-level, population-average version of the multilevel
log-linear curves in Finch et al., 2001). ``b1`` ties the level to the intake, ``b2`` is the
average log-rate of change and ``b3`` lets clients who start higher (or lower) change faster;
for a lower-is-better measure with recovery, ``b3`` is typically negative. The fit reads the
non-missing cells only, counted into distinct ``(session, intake score, score)`` triples
(:class:`FitCounts`: scores take few distinct values, so a few thousand triples stand for
millions of scores), and solves the least-squares problem weighted by the counts
(:func:`fit_counts`, the same solution as on the rows themselves): blocks of the scaled design
matrix are reduced to their QR ``R`` factors and the problem is solved on the stacked ``R``
factors with :func:`numpy.linalg.lstsq`, without ever holding the full design matrix in memory.
The model depends only on the multiset of triples, so every way of gathering them (one process,
partitions, worker processes, Spark) gives the same model bit for bit.

**Bands.** Residual scatter is not the same early and late in treatment, so residuals
``y - ŷ`` are grouped into session bands: one band each for sessions 2, 3, 4, 5, 6, 7 and 8,
then 9-12, then 13 and above (:data:`BANDS`, :func:`session_band`).

**Quantile rule.** Let the *worse-direction residual* be ``w = y - ŷ`` for a lower-is-better
measure and ``w = ŷ - y`` for a higher-is-better one. In each band ``q`` is the empirical
``quantile`` (default 0.9, linear interpolation as in :func:`numpy.quantile`: Hyndman & Fan's
type 7) of the reference ``w``, computed exactly from the counted triples
(:func:`quantile_of_counts`). A session is ``not_on_track`` when ``w > q``; the boundary
reported as ``upper`` is ``ŷ + q`` for lower-is-better measures (scores above it are flagged)
and ``ŷ - q`` for higher-is-better ones (scores *below* it are flagged): ``upper`` always names
the edge of the expected range on the worse side. ``w`` and ``q`` are rounded to :data:`ROUND`
decimals before the comparison so that floating-point noise never decides a flag.

**Fallback.** A band with fewer than ``min_band_size`` (default 30) reference residuals uses
the pooled quantile of ``w`` over all bands instead; :attr:`TrajectoryModel.band_pooled` and
:meth:`TrajectoryModel.to_dict` record which bands did.

**Coverage.** By construction about ``1 - quantile`` (10%) of the reference sessions in each
band with its own quantile are flagged (never more than ``1 - quantile + 1/n`` of a band's
``n`` residuals); on new clients from the same population the flagged share is also about 10%.
Both are tested. A population whose clients differ from the reference (different intake range,
setting or measure) will not have that guarantee.

**See also** :mod:`bordin.measures.growth`: the same signal from a mixed-effects growth model
conditional on intake (per-client random intercept and slope, prediction intervals, no "13+"
band), with a minimum reference of 200 clients and out-of-sample calibration.

Example on a small synthetic reference (400 clients, 12 sessions, known curve plus noise):

>>> import numpy as np
>>> import polars as pl
>>> rng = np.random.default_rng(2001)
>>> n, n_sessions = 400, 12
>>> intake = rng.normal(24.0, 6.0, n)
>>> log_s = np.log(np.arange(1, n_sessions + 1))
>>> curve = 1.0 + 0.95 * intake[:, None] + (0.5 - 0.25 * intake[:, None]) * log_s
>>> values = curve + rng.normal(0.0, 3.0, (n, n_sessions))
>>> values[:, 0] = intake
>>> reference = SeriesMatrix(pl.Series("client_id", np.arange(n)), values,
...                          np.full(n, n_sessions))
>>> model = fit(reference, lower_is_better=True)
>>> abs(model.coef[3] - (-0.25)) < 0.05
True
>>> table = model.evaluate(reference)
>>> table.columns
['client_id', 'session', 'score', 'expected', 'upper', 'status']
>>> share = (table["status"] == "not_on_track").mean()
>>> 0.09 < share <= 0.10
True

One client with an intake of 25 (sessions 2 and 3 missed): at session 4 about 16.8 is expected
and, on this lower-is-better scale, scores above about 20.7 are worse than 90% of comparable
reference sessions.

>>> point = evaluate_scores(model, [25, None, None, 18])[0]
>>> point.session, round(point.expected, 1), round(point.upper, 1), point.status
(4, 16.8, 20.7, 'on_track')
>>> [p.status for p in evaluate_scores(model, [25, None, None, 23])]
['not_on_track']
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, cast

import numpy as np
import polars as pl

from bordin.measures.series import FloatArray, IntArray, SeriesMatrix

#: Band labels in band order: sessions 2..8 one band each, then 9-12, then 13 and above.
BANDS: tuple[str, ...] = ("2", "3", "4", "5", "6", "7", "8", "9-12", "13+")
ON_TRACK = "on_track"
NOT_ON_TRACK = "not_on_track"
#: Worse-direction residuals and band quantiles are rounded to this many decimals before
#: comparison, so that floating-point noise (a residual equal to the quantile up to 1e-15)
#: never decides a flag.
ROUND = 9
#: Fewest reference clients (with an intake and at least one later score) :func:`fit` accepts.
MIN_CLIENTS = 10
#: Rows per block when the design matrix is reduced to its R factor.
_CHUNK = 1 << 20


def session_band(session: IntArray | int) -> IntArray:
    """Band index (position in :data:`BANDS`) of each session number ``>= 2``.

    >>> [BANDS[b] for b in session_band(np.array([2, 8, 9, 12, 13, 40]))]
    ['2', '8', '9-12', '9-12', '13+', '13+']
    """
    s = np.asarray(session, dtype=np.int64)
    if s.size and int(s.min()) < 2:
        raise ValueError("session bands start at session 2 (session 1 is the intake)")
    return np.where(s <= 8, s - 2, np.where(s <= 12, 7, 8)).astype(np.int64)


def _log_table(max_session: int) -> FloatArray:
    """``ln(s)`` at index ``s`` for ``s = 1..max_session`` (index 0 is ``NaN``).

    Built with :func:`math.log` so that a session's log is the same bit pattern whichever array
    it is looked up for (fit, evaluate, one client or a million).
    """
    table = np.full(max_session + 1, np.nan, dtype=np.float64)
    table[1:] = [math.log(s) for s in range(1, max_session + 1)]
    return table


#: The column :meth:`TrajectoryModel.evaluate` adds for a keyed writer (see there).
TAIL_KEY = "_tail"


def _tail_values(tail_range: tuple[float, float] | None, n_sessions: int) -> int:
    """The number ``V`` of integer scores in ``tail_range``, or 0 when the range does not
    suit tail keys (no range, not whole numbers, or keys beyond 32 bits)."""
    if tail_range is None:
        return 0
    low, high = tail_range
    if not (float(low).is_integer() and float(high).is_integer() and high >= low):
        return 0
    n_values = int(high - low) + 1
    return n_values if n_sessions * (n_values + 1) ** 2 < 2**31 else 0


def _value_code(x: FloatArray, low: int, n_values: int) -> IntArray | None:
    """Scores as codes ``0 .. V - 1`` (``score - low``), ``V`` for ``-0.0`` (written
    ``-0.0``, so a value of its own), or None when one is not a whole number in the range."""
    code = x.astype(np.int64)
    if (
        not np.array_equal(code, x)
        or not low <= code.min(initial=low) <= code.max(initial=low) < low + n_values
    ):
        return None
    code -= low
    negative_zero = x.view(np.int64) == _NEGATIVE_ZERO
    if negative_zero.any():
        code[negative_zero] = n_values
    return code


#: The bits of ``-0.0``.
_NEGATIVE_ZERO = np.array(-0.0).view(np.int64)


def _predict(
    coef: tuple[float, float, float, float], intake: FloatArray, log_s: FloatArray
) -> FloatArray:
    """``b0 + b1*y1 + (b2 + b3*y1)*ln(s)``; the single place the expectation is computed."""
    b0, b1, b2, b3 = coef
    out: FloatArray = b0 + b1 * intake + (b2 + b3 * intake) * log_s
    return out


def _worse(score: FloatArray, expected: FloatArray, lower_is_better: bool) -> FloatArray:
    """Worse-direction residual: positive when the score is worse than expected."""
    out: FloatArray = score - expected if lower_is_better else expected - score
    return out


class ExpectedTrajectory(Protocol):
    """What analyses need of an expected-trajectory model: this module's least-squares
    :class:`TrajectoryModel` or the growth model of :mod:`bordin.measures.growth`."""

    def evaluate(self, matrix: SeriesMatrix) -> pl.DataFrame: ...

    def to_dict(self) -> dict[str, object]: ...


@dataclass(frozen=True)
class TrajectoryPoint:
    """One session of one client compared with the expected trajectory."""

    session: int
    score: float
    expected: float
    upper: float
    status: str


@dataclass(frozen=True)
class TrajectoryModel:
    """A fitted expected-trajectory model (see the module docstring for the method).

    ``coef`` is ``(b0, b1, b2, b3)``; ``band_quantiles[k]`` is the quantile of the
    worse-direction residual used for band ``BANDS[k]`` (the pooled quantile when that band had
    fewer than ``min_band_size`` reference residuals, see ``band_pooled``).
    """

    coef: tuple[float, float, float, float]
    band_quantiles: tuple[float, ...]
    lower_is_better: bool
    quantile: float
    n_reference_clients: int
    n_reference_sessions: int
    band_sizes: tuple[int, ...] = ()
    band_pooled: tuple[bool, ...] = ()
    pooled_quantile: float = math.nan
    min_band_size: int = 30

    def expected(self, intake: FloatArray | float, session: IntArray | int) -> FloatArray:
        """Expected score ``ŷ`` at ``session`` (>= 1) for ``intake``; arrays broadcast."""
        y1 = np.asarray(intake, dtype=np.float64)
        s = np.asarray(session, dtype=np.int64)
        if s.size and int(s.min()) < 1:
            raise ValueError("sessions are numbered from 1")
        table = _log_table(int(s.max()) if s.size else 1)
        return np.asarray(_predict(self.coef, y1, table[s]), dtype=np.float64)

    def evaluate(
        self, matrix: SeriesMatrix, *, tail_range: tuple[float, float] | None = None
    ) -> pl.DataFrame:
        """Compare every later session of every client with an intake score to expectation.

        One row per present score at session ``s >= 2`` of a client whose session 1 is present,
        sorted by ``client_id, session``; columns ``client_id`` (dtype of
        ``matrix.client_ids``), ``session``, ``score``, ``expected``, ``upper``, ``status``
        (``on_track`` / ``not_on_track``).

        ``tail_range``: the lowest and highest score the measure allows. Every column but
        ``client_id`` is a function of the session, the intake score and the score, so for
        whole-number scores in that range each row also gets that triple's code, column
        :data:`TAIL_KEY`: ``((session - 2) * W + intake code) * W + score code``, a score's
        code being ``score - lowest`` and ``-0.0`` (written differently) the last of the
        ``W = V + 1`` codes; -1 in every row when a score is not such a whole number. A writer
        then formats each distinct triple's columns once
        (:func:`bordin.measures.batch.write_keyed_csv`).
        """
        values = matrix.values
        n_sessions = values.shape[1] if values.ndim == 2 else 0
        if matrix.n_clients == 0 or n_sessions < 2:
            empty = pl.DataFrame(
                schema={
                    "client_id": matrix.client_ids.dtype,
                    "session": pl.Int64,
                    "score": pl.Float64,
                    "expected": pl.Float64,
                    "upper": pl.Float64,
                    "status": pl.String,
                }
            )
            return (
                empty
                if tail_range is None
                else empty.with_columns(pl.lit(-1, pl.Int32).alias(TAIL_KEY))
            )
        n_values = _tail_values(tail_range, n_sessions)
        low = int(tail_range[0]) if n_values and tail_range else 0
        # Work through blocks of clients on the dense layout (no per-cell gathers), writing
        # into preallocated output columns; present cells come out in row-major order, i.e.
        # sorted by client row, then session.
        intake = values[:, 0]
        later = values[:, 1:]
        log_s = _log_table(n_sessions)[2:]  # ln(s) for the columns of ``later``
        col_band = session_band(np.arange(2, n_sessions + 1))
        q_col = np.asarray(self.band_quantiles, dtype=np.float64)[col_band]
        q_col_rounded = np.round(q_col, ROUND)
        per_row = np.count_nonzero(~np.isnan(later), axis=1)
        per_row[np.isnan(intake)] = 0
        total = int(per_row.sum())
        rows = np.repeat(np.arange(matrix.n_clients, dtype=np.int64), per_row)
        session = np.empty(total, dtype=np.int64)
        score = np.empty(total, dtype=np.float64)
        expected = np.empty(total, dtype=np.float64)
        upper = np.empty(total, dtype=np.float64)
        flag = np.empty(total, dtype=np.bool_)
        tail = np.full(total if n_values else 0, -1, dtype=np.int32)
        step = max(1, _CHUNK // later.shape[1])
        pos = 0
        for r0 in range(0, matrix.n_clients, step):
            block = later[r0 : r0 + step]
            y1 = intake[r0 : r0 + step, None]
            # Only the present cells are computed, row-major (client row, then session).
            r, c = np.nonzero(~np.isnan(block) & ~np.isnan(y1))
            k = r.size
            if k == 0:
                continue
            out = slice(pos, pos + k)
            e = _predict(self.coef, y1[r, 0], log_s[c])
            cell = block[r, c]
            session[out] = c + 2
            score[out] = cell
            expected[out] = e
            upper[out] = e + q_col[c] if self.lower_is_better else e - q_col[c]
            w = _worse(cell, e, self.lower_is_better)
            flag[out] = np.round(w, ROUND) > q_col_rounded[c]
            if n_values:
                y, v = (
                    _value_code(y1[r, 0], low, n_values),
                    _value_code(cell, low, n_values),
                )
                if y is not None and v is not None:
                    tail[out] = (c * (n_values + 1) + y) * (n_values + 1) + v
                else:
                    n_values, tail = 0, np.full(total, -1, dtype=np.int32)
            pos += k
        frame = pl.DataFrame(
            {
                "client_id": matrix.client_ids.gather(rows),
                "session": session,
                "score": score,
                "expected": expected,
                "upper": upper,
                "_flag": flag,
            }
        ).select(
            "client_id",
            "session",
            "score",
            "expected",
            "upper",
            pl.when(pl.col("_flag"))
            .then(pl.lit(NOT_ON_TRACK))
            .otherwise(pl.lit(ON_TRACK))
            .alias("status"),
        )
        if tail_range is not None:
            frame = frame.with_columns(
                pl.Series(TAIL_KEY, tail) if tail.size else pl.lit(-1, pl.Int32).alias(TAIL_KEY)
            )
        if not matrix.client_ids.is_sorted():
            frame = frame.sort(["client_id", "session"], maintain_order=True)
        return frame

    def to_dict(self) -> dict[str, object]:
        """JSON-ready description of the model (for ``summary.json``)."""
        b0, b1, b2, b3 = self.coef
        n_bands = len(BANDS)
        sizes = self.band_sizes or (None,) * n_bands
        pooled = self.band_pooled or (None,) * n_bands
        return {
            "method": "expected treatment response (Finch, Lambert & Schaalje 2001)",
            "model": "y_s = b0 + b1*y_1 + (b2 + b3*y_1)*ln(s)",
            "coef": {"b0": b0, "b1": b1, "b2": b2, "b3": b3},
            "lower_is_better": self.lower_is_better,
            "quantile": self.quantile,
            "boundary": "upper = expected + q" if self.lower_is_better else "upper = expected - q",
            "min_band_size": self.min_band_size,
            "pooled_quantile": (
                None if math.isnan(self.pooled_quantile) else float(self.pooled_quantile)
            ),
            "n_reference_clients": self.n_reference_clients,
            "n_reference_sessions": self.n_reference_sessions,
            "bands": [
                {"band": label, "n": n, "quantile": float(q), "pooled": p}
                for label, n, q, p in zip(BANDS, sizes, self.band_quantiles, pooled, strict=True)
            ],
        }


def fit(
    reference: SeriesMatrix,
    *,
    lower_is_better: bool,
    quantile: float = 0.9,
    min_band_size: int = 30,
) -> TrajectoryModel:
    """Fit the expected-trajectory model and the band quantiles on ``reference``.

    Raises :class:`ValueError` when ``quantile`` is not strictly between 0 and 1, when fewer
    than :data:`MIN_CLIENTS` clients have both an intake score and a later score, or when the
    data cannot identify the four coefficients (all intake scores equal, or every later score
    at the same session number). The rows are counted into distinct ``(session, intake,
    score)`` triples (:func:`compress`) and fitted by :func:`fit_counts`.
    """
    values = reference.values
    n_sessions = values.shape[1] if values.ndim == 2 else 0
    sessions: list[IntArray] = []
    intakes: list[FloatArray] = []
    scores: list[FloatArray] = []
    used = np.zeros(reference.n_clients, dtype=np.bool_)
    if reference.n_clients and n_sessions >= 2:
        intake = values[:, 0]
        has_intake = ~np.isnan(intake)
        for j in range(1, n_sessions):
            idx = np.flatnonzero(has_intake & ~np.isnan(values[:, j]))
            if idx.size:
                used[idx] = True
                sessions.append(np.full(idx.size, j + 1, dtype=np.int64))
                intakes.append(intake[idx])
                scores.append(values[idx, j])
    return fit_prepared(
        np.concatenate(sessions) if sessions else np.empty(0, dtype=np.int64),
        np.concatenate(intakes) if intakes else np.empty(0, dtype=np.float64),
        np.concatenate(scores) if scores else np.empty(0, dtype=np.float64),
        int(used.sum()),
        lower_is_better=lower_is_better,
        quantile=quantile,
        min_band_size=min_band_size,
    )


def fit_long(
    reference: pl.DataFrame,
    *,
    lower_is_better: bool,
    quantile: float = 0.9,
    min_band_size: int = 30,
) -> TrajectoryModel:
    """:func:`fit` on long data (``client_id, session, score``), without a dense matrix.

    Gives bit for bit the model :func:`fit` gives on ``SeriesMatrix.from_long(reference)``:
    both fit the same counted triples. Memory and time grow with the number of scores,
    whatever the highest session number.
    """
    return fit_counts(
        *fit_inputs(reference),
        lower_is_better=lower_is_better,
        quantile=quantile,
        min_band_size=min_band_size,
    )


class FitCounts(NamedTuple):
    """What the fit reads: the distinct ``(session, intake score, score)`` triples of the later
    scores (session >= 2) of clients with an intake score, sorted by session, then intake
    score, then score, each with how many scores it stands for (``counts``, each >= 1), and the
    number of clients those scores come from.

    Counts of disjoint sets of clients add up (:func:`merge_counts`); scores take few distinct
    values in practice (PHQ-9: the integers 0..27), so a few thousand triples stand for
    millions of scores.
    """

    session: IntArray
    y1: FloatArray
    score: FloatArray
    counts: IntArray
    n_clients: int


def fit_inputs(reference: pl.DataFrame) -> FitCounts:
    """What the fit reads from long data (``client_id, session, score``), as counted triples
    (:class:`FitCounts`)."""
    intake = reference.filter(pl.col("session") == 1).select(
        "client_id", pl.col("score").cast(pl.Float64).alias("_y1")
    )
    later = reference.filter(pl.col("session") >= 2).join(intake, on="client_id")
    session, y1, score, count = compress(
        later.get_column("session").cast(pl.Int64).to_numpy(),
        later.get_column("_y1").to_numpy(),
        later.get_column("score").cast(pl.Float64).to_numpy(),
    )
    return FitCounts(session, y1, score, count, later.get_column("client_id").n_unique())


def combine(
    session: IntArray, y1: FloatArray, score: FloatArray, count: IntArray
) -> tuple[IntArray, FloatArray, FloatArray, IntArray]:
    """Equal triples combined (their counts summed), sorted by session, intake, score.

    ``-0.0`` is read as ``0.0``, so equal numbers are one triple whatever their sign bit; the
    result depends only on the multiset of triples, not on their order.
    """
    s = np.asarray(session, dtype=np.int64)
    c = np.asarray(count, dtype=np.int64)
    # np.lexsort((score, y1, s)), faster: NumPy orders complex numbers by real part, then
    # imaginary part, so (y1, score) is one key; its stable sort (timsort) merges runs
    # already in order (the parts of merge_counts, sorted by session, y1, score) instead of
    # sorting them again. Sessions (checked data: at most 10,000) then sort as 16-bit
    # integers, for which NumPy's stable sort is a radix sort.
    pair = np.empty(s.size, dtype=np.complex128)
    pair.real, pair.imag = y1, score
    pair += 0.0  # -0.0 + 0.0 is 0.0
    if s.size == 0:
        return s, pair.real.copy(), pair.imag.copy(), c
    order = np.argsort(pair, kind="stable")
    by_session = s[order]
    if int(by_session.min()) >= 0 and int(by_session.max()) < 1 << 15:
        then = np.argsort(by_session.astype(np.int16), kind="stable")
    else:
        then = np.argsort(by_session, kind="stable")
    order = order[then]
    s, pair, c = by_session[then], pair[order], c[order]
    del by_session, then, order
    new = np.empty(s.size, dtype=np.bool_)
    new[0] = True
    np.not_equal(pair[1:], pair[:-1], out=new[1:])
    new[1:] |= s[1:] != s[:-1]
    if new.all():  # no two equal (as when merging the parts of continuous scores)
        return s, pair.real, pair.imag, c  # views: no copies of large arrays
    starts = np.flatnonzero(new)
    kept = pair[starts]
    return s[starts], kept.real, kept.imag, np.add.reduceat(c, starts)


def compress(
    session: IntArray, y1: FloatArray, score: FloatArray
) -> tuple[IntArray, FloatArray, FloatArray, IntArray]:
    """One row per distinct ``(session, y1, score)`` triple, sorted, with how many rows it
    stands for: the input of :func:`fit_counts`.

    >>> s, y1, y, n = compress(np.array([3, 2, 3, 2]), np.array([9.0, 9.0, 9.0, 5.0]),
    ...                        np.array([4.0, 7.0, 4.0, 7.0]))
    >>> s.tolist(), y1.tolist(), y.tolist(), n.tolist()
    ([2, 2, 3], [5.0, 9.0, 9.0], [7.0, 7.0, 4.0], [1, 1, 2])
    """
    return combine(session, y1, score, np.ones(np.shape(session), dtype=np.int64))


def merge_counts(parts: Sequence[FitCounts]) -> FitCounts:
    """The counted triples of the union of disjoint sets of clients: equal triples combined,
    counts and clients summed (as :class:`FitCounts` of all the clients at once would give)."""
    if not parts:
        empty = np.empty(0, dtype=np.float64)
        return FitCounts(np.empty(0, dtype=np.int64), empty, empty, np.empty(0, np.int64), 0)
    if len(parts) == 1:  # already distinct and sorted (fit_counts checks it)
        return parts[0]
    session, y1, score, count = combine(
        np.concatenate([p.session for p in parts]),
        np.concatenate([p.y1 for p in parts]),
        np.concatenate([p.score for p in parts]),
        np.concatenate([p.counts for p in parts]),
    )
    return FitCounts(session, y1, score, count, sum(int(p.n_clients) for p in parts))


def fit_prepared(
    session: IntArray,
    y1: FloatArray,
    score: FloatArray,
    n_clients: int,
    *,
    lower_is_better: bool,
    quantile: float = 0.9,
    min_band_size: int = 30,
) -> TrajectoryModel:
    """:func:`fit` on one row per later score (``session, y1, score``, in any order) and the
    number of clients they come from: :func:`fit_counts` on the rows' :func:`compress`."""
    return fit_counts(
        *compress(session, y1, score),
        n_clients,
        lower_is_better=lower_is_better,
        quantile=quantile,
        min_band_size=min_band_size,
    )


def quantile_of_counts(values: FloatArray, count: IntArray, quantile: float) -> float:
    """``np.quantile(np.repeat(values, count), quantile)`` (the default ``'linear'`` method,
    Hyndman & Fan's type 7), exactly, without expanding the rows.

    Source: Hyndman, R. J., & Fan, Y. (1996). Sample quantiles in statistical packages. *The
    American Statistician*, 50(4), 361-365 (definition 7). With the ``n`` expanded values
    sorted, ``x_(0) <= ... <= x_(n-1)``, and ``h = (n - 1) q`` (the "virtual index", computed
    as NumPy computes it), the quantile interpolates linearly between ``x_(floor h)`` and
    ``x_(floor h + 1)`` (both ``x_(n-1)`` when ``h >= n - 1``) by the fractional part of
    ``h``. The two order statistics are read from the sorted distinct values and their
    cumulative counts; the interpolation is NumPy's own (:func:`numpy.quantile` on those two
    values at the fractional part: for two values the virtual index is exactly it), so the
    result is the same float. When the counts save little (at most two rows a value on
    average) the rows themselves are rebuilt and passed to :func:`numpy.quantile`, which
    selects instead of sorting.

    Ten values, 1 twice, 2 seven times and 3 once: ``h = 9 * 0.9 = 8.1``, so the quantile is
    ``x_(8) + 0.1 (x_(9) - x_(8)) = 2 + 0.1 * (3 - 2)``, about 2.1 (``h`` is 8.1 only up to
    rounding, and so is the result, equal to NumPy's to the last bit):

    >>> q = quantile_of_counts(np.array([3.0, 1.0, 2.0]), np.array([1, 2, 7]), 0.9)
    >>> round(q, 12), q == np.quantile([1.0, 1.0, 2, 2, 2, 2, 2, 2, 2, 3.0], 0.9)
    (2.1, np.True_)
    """
    count = np.asarray(count, dtype=np.int64)
    if int(count.sum()) <= 2 * count.size:  # nearly one row a value: the rows themselves
        return float(np.quantile(np.repeat(values, count), quantile))
    order = np.argsort(values)
    ordered = np.asarray(values, dtype=np.float64)[order]
    cumulative = np.cumsum(count[order])
    n = int(cumulative[-1])
    h = (n - 1) * quantile
    low = math.floor(h)
    at = np.searchsorted(cumulative, [min(low, n - 1), min(low + 1, n - 1)], side="right")
    pair = ordered[at]
    return float(np.quantile(pair, h - low))


def fit_counts(
    session: IntArray,
    y1: FloatArray,
    score: FloatArray,
    count: IntArray,
    n_clients: int,
    *,
    lower_is_better: bool,
    quantile: float = 0.9,
    min_band_size: int = 30,
) -> TrajectoryModel:
    """The fit proper, on counted triples (:class:`FitCounts`): distinct ``(session, y1,
    score)`` sorted by session, then ``y1``, then ``score``, each standing for ``count`` >= 1
    later scores, from ``n_clients`` clients.

    **Least squares.** Minimising ``sum_i c_i (y_i - x_i b)^2`` over the distinct rows with
    their counts ``c_i`` is minimising the squared residuals of the rows repeated ``c_i`` times
    (frequency weights): weighted least squares, solved as ordinary least squares on the rows
    scaled by ``sqrt(c_i)``, which has the same normal equations ``X'CX b = X'Cy`` (Weisberg,
    S. (2005). *Applied Linear Regression*, 3rd ed., Wiley, section 5.1; Draper, N. R., &
    Smith, H. (1998). *Applied Regression Analysis*, 3rd ed., Wiley, chapter 9). The scaled
    rows are reduced block by block to QR ``R`` factors as in the module docstring.

    **Quantiles.** A band's size is the sum of its counts, and its quantile (and the pooled
    one) is that of the residuals repeated by their counts, exactly (:func:`quantile_of_counts`).

    The same multiset of triples always gives the same model, bit for bit. Raises
    :class:`ValueError` as :func:`fit` does.
    """
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be strictly between 0 and 1, got {quantile}")
    if min_band_size < 1:
        raise ValueError(f"min_band_size must be at least 1, got {min_band_size}")
    if n_clients < MIN_CLIENTS:
        raise ValueError(
            f"too little reference data: need at least {MIN_CLIENTS} clients with an intake "
            f"score (session 1) and a later score, got {n_clients}"
        )
    session = np.asarray(session, dtype=np.int64)
    y1 = np.asarray(y1, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    count = np.asarray(count, dtype=np.int64)
    if not session.size == y1.size == score.size == count.size:
        raise ValueError("session, y1, score and count must have the same length")
    if session.size and (int(session.min()) < 2 or int(count.min()) < 1):
        raise ValueError("fit counts need sessions >= 2 and counts >= 1")
    if session.size > 1:
        ds, da, db = np.diff(session), np.diff(y1), np.diff(score)
        if not np.all((ds > 0) | ((ds == 0) & ((da > 0) | ((da == 0) & (db > 0))))):
            raise ValueError("fit counts must be distinct triples sorted by session, y1, score")
    log_s = _log_table(int(session.max()) if session.size else 1)

    # Pass 1: weighted least squares, rows scaled by sqrt(count), via stacked R factors.
    r_blocks: list[FloatArray] = []
    for start in range(0, session.size, _CHUNK):
        part = slice(start, start + _CHUNK)
        weight = np.sqrt(count[part].astype(np.float64))
        a, ln_s = y1[part], log_s[session[part]]
        design = np.empty((weight.size, 5), dtype=np.float64, order="F")
        design[:, 0] = weight
        design[:, 1] = a * weight
        design[:, 2] = ln_s * weight
        design[:, 3] = a * ln_s * weight
        design[:, 4] = score[part] * weight
        # mode="r" returns the bare R array (NumPy's stubs claim a QRResult).
        r_blocks.append(cast(FloatArray, np.linalg.qr(design, mode="r")))
    rank = 0
    if r_blocks:
        stacked = np.vstack(r_blocks)
        solution, _, found, _ = np.linalg.lstsq(stacked[:, :4], stacked[:, 4], rcond=None)
        rank = int(found)
    if rank < 4:
        raise ValueError(
            "the reference data cannot identify the trajectory model: it needs intake scores "
            "that vary between clients and later scores from at least two different sessions"
        )
    coef = (float(solution[0]), float(solution[1]), float(solution[2]), float(solution[3]))

    # Pass 2: worse-direction residuals of the triples. Bands are runs of consecutive
    # sessions, so each band is a contiguous slice of the triples.
    worse = _worse(score, _predict(coef, y1, log_s[session]), lower_is_better)
    band = session_band(session)
    bounds = np.searchsorted(band, np.arange(len(BANDS) + 1))
    sizes = tuple(int(count[a:b].sum()) for a, b in itertools.pairwise(bounds))
    pooled_q = quantile_of_counts(worse, count, quantile)
    band_q = tuple(
        quantile_of_counts(worse[a:b], count[a:b], quantile) if n >= min_band_size else pooled_q
        for (a, b), n in zip(itertools.pairwise(bounds), sizes, strict=True)
    )
    return TrajectoryModel(
        coef=coef,
        band_quantiles=band_q,
        lower_is_better=lower_is_better,
        quantile=quantile,
        n_reference_clients=int(n_clients),
        n_reference_sessions=int(sum(sizes)),
        band_sizes=sizes,
        band_pooled=tuple(n < min_band_size for n in sizes),
        pooled_quantile=pooled_q,
        min_band_size=min_band_size,
    )


def evaluate_scores(
    model: ExpectedTrajectory, scores: Sequence[float | None]
) -> list[TrajectoryPoint]:
    """One client's series (``scores[k]`` is session ``k + 1``) against ``model``.

    A thin wrapper over the model's ``evaluate``; empty when the intake is missing.
    """
    table = model.evaluate(SeriesMatrix.from_scores(scores))
    return [
        TrajectoryPoint(
            session=int(row["session"]),
            score=float(row["score"]),
            expected=float(row["expected"]),
            upper=float(row["upper"]),
            status=str(row["status"]),
        )
        for row in table.iter_rows(named=True)
    ]
