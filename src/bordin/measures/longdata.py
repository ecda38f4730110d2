"""Reading and checking long-format score files (CSV or Parquet).

The long format has one row per client, session and measure::

    client_id,session,measure,score[,therapist_id][,date]

Every check is a vectorised Polars expression, so a file of tens of millions of rows is checked
in seconds. The first problems found are reported with the file, the data row (1 = the first row
after the header) and what to fix; nothing is analysed when any check fails.

>>> import polars as pl
>>> from bordin.measures.instruments import builtin_registry
>>> frame = pl.DataFrame({"client_id": ["a"], "session": ["1"], "measure": ["phq9"],
...                       "score": ["31"]})
>>> check_long(frame, builtin_registry(), source="demo.csv")
Traceback (most recent call last):
...
bordin.measures.longdata.InputError: demo.csv: row 1: score 31 is outside phq9's range 0..27
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from bordin.measures.instruments import Instrument

REQUIRED = ("client_id", "session", "measure", "score")
OPTIONAL = ("therapist_id", "date")
MAX_REPORTED = 5
#: The highest session number accepted. Long psychodynamic treatments run to hundreds of
#: sessions; weekly sessions for 190 years would be 10,000. A higher number is a data error
#: (a date or an id in the session column), reported with its row.
MAX_SESSION = 10_000


class InputError(ValueError):
    """The input cannot be analysed; the message names the file, row and problem."""


def read_table(path: Path) -> pl.DataFrame:
    """Read a CSV or Parquet file without interpreting its values yet.

    CSV columns are all read as text so that a stray value deep in the file is reported by
    :func:`check_long` with its row, instead of failing type inference.
    """
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        if suffix in (".parquet", ".pq"):
            return pl.read_parquet(path)
        if suffix in (".csv", ".txt"):
            return pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: cannot be read as {suffix[1:]} ({first_line})") from None
    raise InputError(f"{path}: unsupported file type '{suffix}'; use .csv or .parquet")


def _first_rows(frame: pl.DataFrame, mask: pl.Expr | pl.Series, message: pl.Expr) -> list[str]:
    bad = frame.filter(mask).head(MAX_REPORTED)
    if bad.height == 0:
        return []
    out = bad.select(pl.format("row {}: ", pl.col("_row") + 1), message.alias("_msg"))
    return [a + b for a, b in out.iter_rows()]


def _fail(source: str, problems: list[str]) -> InputError:
    return InputError(f"{source}: " + f"\n{source}: ".join(problems[:MAX_REPORTED]))


def check_long(
    frame: pl.DataFrame,
    measures: Mapping[str, Instrument],
    *,
    source: str,
) -> pl.DataFrame:
    """Check and type a long-format frame; return it with typed columns or raise InputError.

    Returns columns ``client_id`` (as given, text for CSV), ``session`` (Int64), ``measure``
    (an Enum of the known codes), ``score`` (Float64), plus ``therapist_id`` and ``date``
    (Date) when present. Checks run cheapest first and stop at the first kind of problem.
    """
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        found = ", ".join(frame.columns) or "none"
        raise InputError(
            f"{source}: missing column(s) {', '.join(missing)}; "
            f"need {', '.join(REQUIRED)} (found: {found})"
        )
    keep = [c for c in (*REQUIRED, *OPTIONAL) if c in frame.columns]
    typed = frame.select(keep).with_row_index("_row")
    problems: list[str] = []

    def report(mask: pl.Expr | pl.Series, message: pl.Expr) -> None:
        if len(problems) < MAX_REPORTED:
            problems.extend(_first_rows(typed, mask, message))

    as_text = pl.col("client_id").cast(pl.String)
    empty = pl.col("client_id").is_null()
    if typed.schema["client_id"] == pl.String:
        empty = empty | (as_text.str.strip_chars() == "")
    report(empty, pl.lit("client_id is empty"))

    # Sessions: whole numbers >= 1. Integer columns (Parquet) skip the text parsing.
    if typed.schema["session"].is_integer():
        session_bad: pl.Expr = pl.col("session").is_null()
        session_f = pl.col("session")
    else:
        session_f = pl.col("session").cast(pl.Float64, strict=False)
        session_bad = session_f.is_null() | session_f.is_nan() | (session_f != session_f.floor())
    shown = pl.col("session").cast(pl.String).fill_null("(empty)")
    report(session_bad, pl.format("session {} is not a whole number", shown))
    report(~session_bad & (session_f < 1), pl.format("session {} must be 1 or more", shown))
    report(
        ~session_bad & (session_f > MAX_SESSION),
        pl.format(
            f"session {{}} is above the highest session number accepted ({MAX_SESSION:,})", shown
        ),
    )

    known = sorted(measures)
    report(
        pl.col("measure").is_null() | ~pl.col("measure").cast(pl.String).is_in(known),
        pl.format(
            "unknown measure code '{}' (known: {}; add it with --measures FILE)",
            pl.col("measure").cast(pl.String).fill_null(""),
            pl.lit(", ".join(known)),
        ),
    )
    score_f = pl.col("score").cast(pl.Float64, strict=False)
    report(
        score_f.is_null() | score_f.is_nan(),
        pl.format(
            "score '{}' is not a number", pl.col("score").cast(pl.String).fill_null("(empty)")
        ),
    )
    if problems:
        raise _fail(source, problems)

    codes = pl.Enum(known)
    typed = typed.with_columns(
        session_f.cast(pl.Int64).alias("session"),
        pl.col("measure").cast(pl.String).cast(codes),
        score_f.alias("score"),
    )
    measure_idx = typed.get_column("measure").to_physical().to_numpy()
    score = typed.get_column("score").to_numpy()
    lows = np.array([measures[c].min for c in known])[measure_idx]
    highs = np.array([measures[c].max for c in known])[measure_idx]
    out_of_range = (score < lows) | (score > highs)
    del lows, highs
    if out_of_range.any():
        for row in typed.filter(pl.Series(out_of_range)).head(MAX_REPORTED).iter_rows(named=True):
            inst = measures[row["measure"]]
            problems.append(
                f"row {row['_row'] + 1}: score {row['score']:g} is outside "
                f"{inst.code}'s range {inst.min:g}..{inst.max:g}"
            )
        raise _fail(source, problems)

    _check_duplicates(typed, measure_idx, len(known), source)
    if "date" in typed.columns and typed.schema["date"] == pl.String:
        parsed = pl.col("date").str.to_date("%Y-%m-%d", strict=False)
        bad_date = pl.col("date").is_not_null() & (pl.col("date") != "") & parsed.is_null()
        report(bad_date, pl.format("date '{}' is not YYYY-MM-DD", "date"))
        if problems:
            raise _fail(source, problems)
        typed = typed.with_columns(parsed.alias("date"))
    return typed.drop("_row")


#: Above this many (client, measure, session) cells the duplicate check hashes instead of
#: counting into a dense array.
_DENSE_CELLS = 300_000_000


def _check_duplicates(
    typed: pl.DataFrame, measure_idx: npt.NDArray[Any], n_measures: int, source: str
) -> None:
    """Reject two rows for the same client, session and measure, naming both rows.

    Each row is given an integer cell number; counting cells into a dense array is far faster
    than hashing the three columns, and falls back to hashing when the array would be huge.
    """
    client = typed.select(pl.col("client_id").rank("dense").cast(pl.Int64) - 1).to_series()
    session = typed.get_column("session").to_numpy()
    n_clients = int(client.max() or 0) + 1  # type: ignore[arg-type]
    n_sessions = int(session.max()) if session.size else 1
    cell = (client.to_numpy() * n_measures + measure_idx) * n_sessions + (session - 1)
    if n_clients * n_measures * n_sessions <= _DENSE_CELLS:
        counts = np.bincount(cell, minlength=n_clients * n_measures * n_sessions)
        duplicated = counts[cell] > 1
    else:
        duplicated = pl.Series(cell).is_duplicated().to_numpy()
    if not duplicated.any():
        return
    dups = typed.filter(pl.Series(duplicated)).sort("client_id", "measure", "session", "_row")
    first = dups.row(0, named=True)
    rows = dups.filter(
        (pl.col("client_id") == first["client_id"])
        & (pl.col("session") == first["session"])
        & (pl.col("measure") == first["measure"])
    )["_row"]
    listed = ", ".join(str(r + 1) for r in rows.to_list())
    raise InputError(
        f"{source}: rows {listed}: duplicate score for client {first['client_id']}, "
        f"session {first['session']}, measure {first['measure']} "
        f"({dups.height} duplicated rows in all); keep one row per client, session and measure"
    )


def read_long(path: Path, measures: Mapping[str, Instrument]) -> pl.DataFrame:
    """Read and check a long-format CSV or Parquet file (see :func:`check_long`)."""
    return check_long(read_table(path), measures, source=str(path))
