"""Session-indexed score series as dense matrices.

Every session-by-session method in :mod:`bordin.measures` (sudden gains, ruptures, expected
trajectories, first-versus-last change) works on the same representation: one row per client,
one column per session number, ``NaN`` where a session has no score. Column ``j`` holds
session ``j + 1``. Building it once per measure lets each method run as a handful of NumPy
operations over all clients at once, instead of a Python loop per client.

Example
-------
>>> import polars as pl
>>> frame = pl.DataFrame({"client_id": ["a", "a", "b"], "session": [1, 3, 2],
...                       "score": [10.0, 7.0, 4.0]})
>>> m = SeriesMatrix.from_long(frame)
>>> m.client_ids.to_list()
['a', 'b']
>>> m.values.tolist()
[[10.0, nan, 7.0], [nan, 4.0, nan]]
>>> m.last_session.tolist()
[3, 2]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class SeriesMatrix:
    """Scores of one measure for many clients, one row per client, one column per session.

    ``client_ids`` is a Polars Series in row order (sorted), ``values[i, j]`` is client ``i``'s
    score at session ``j + 1`` (``NaN`` when absent) and ``last_session[i]`` is the highest
    session number with a score for client ``i``.
    """

    client_ids: pl.Series
    values: FloatArray
    last_session: IntArray

    @property
    def n_clients(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_sessions(self) -> int:
        return int(self.values.shape[1])

    @classmethod
    def from_long(
        cls,
        frame: pl.DataFrame,
        *,
        client: str = "client_id",
        session: str = "session",
        score: str = "score",
    ) -> SeriesMatrix:
        """Build the matrix from long data with one row per client and session.

        Rows must already be unique per (client, session) and sessions must be integers >= 1;
        :func:`bordin.measures.validate.validate_long` checks both for user input.
        """
        if frame.height == 0:
            return cls(
                client_ids=frame.get_column(client).head(0),
                values=np.empty((0, 0), dtype=np.float64),
                last_session=np.empty(0, dtype=np.int64),
            )
        codes = frame.select(pl.col(client).rank("dense").cast(pl.Int64) - 1).to_series()
        row = codes.to_numpy()
        col = frame.get_column(session).cast(pl.Int64).to_numpy() - 1
        n_clients = int(row.max()) + 1
        n_sessions = int(col.max()) + 1
        values = np.full((n_clients, n_sessions), np.nan, dtype=np.float64)
        values[row, col] = frame.get_column(score).cast(pl.Float64).to_numpy()
        last = np.zeros(n_clients, dtype=np.int64)
        np.maximum.at(last, row, col + 1)
        ids = frame.get_column(client).unique().sort()
        return cls(client_ids=ids, values=values, last_session=last)

    @classmethod
    def from_scores(cls, scores: Sequence[float | None], client_id: str = "client") -> SeriesMatrix:
        """One client's series from plain values; ``scores[k]`` is session ``k + 1``.

        >>> SeriesMatrix.from_scores([5, None, 3]).values.tolist()
        [[5.0, nan, 3.0]]
        """
        values = np.array([[np.nan if s is None else float(s) for s in scores]], dtype=np.float64)
        present = np.flatnonzero(~np.isnan(values[0]))
        last = int(present[-1]) + 1 if present.size else 0
        return cls(
            client_ids=pl.Series("client_id", [client_id]),
            values=values.reshape(1, -1) if values.size else np.empty((1, 0)),
            last_session=np.array([last], dtype=np.int64),
        )

    def first_last(self) -> tuple[IntArray, IntArray]:
        """Column index of each client's first and last available score (``-1`` when none)."""
        present = ~np.isnan(self.values)
        any_present = present.any(axis=1)
        first = np.where(any_present, present.argmax(axis=1), -1)
        last = np.where(any_present, self.n_sessions - 1 - present[:, ::-1].argmax(axis=1), -1)
        return first.astype(np.int64), last.astype(np.int64)


def shifted(values: FloatArray, offset: int) -> FloatArray:
    """``out[:, j] = values[:, j + offset]``, ``NaN`` where ``j + offset`` is outside the matrix.

    >>> shifted(np.array([[1.0, 2.0, 3.0]]), 1).tolist()
    [[2.0, 3.0, nan]]
    >>> shifted(np.array([[1.0, 2.0, 3.0]]), -2).tolist()
    [[nan, nan, 1.0]]
    """
    out = np.full_like(values, np.nan)
    n = values.shape[1]
    if offset >= 0:
        if offset < n:
            out[:, : n - offset] = values[:, offset:]
    elif -offset < n:
        out[:, -offset:] = values[:, : n + offset]
    return out
