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

import polars as pl

from bordin.measures.instruments import Instrument

REQUIRED = ("client_id", "session", "measure", "score")
OPTIONAL = ("therapist_id", "date")
MAX_REPORTED = 5


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


def _first_rows(frame: pl.DataFrame, mask: pl.Expr, message: pl.Expr) -> list[str]:
    bad = frame.filter(mask).head(MAX_REPORTED)
    if bad.height == 0:
        return []
    out = bad.select(pl.format("row {}: ", pl.col("_row") + 1), message.alias("_msg"))
    return [a + b for a, b in out.iter_rows()]


def check_long(
    frame: pl.DataFrame,
    measures: Mapping[str, Instrument],
    *,
    source: str,
) -> pl.DataFrame:
    """Check and type a long-format frame; return it with typed columns or raise InputError.

    Returns columns ``client_id`` (as given, text for CSV), ``session`` (Int64), ``measure``
    (String), ``score`` (Float64), plus ``therapist_id`` and ``date`` (Date) when present.
    """
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        found = ", ".join(frame.columns) or "none"
        raise InputError(
            f"{source}: missing column(s) {', '.join(missing)}; "
            f"need {', '.join(REQUIRED)} (found: {found})"
        )
    keep = [c for c in (*REQUIRED, *OPTIONAL) if c in frame.columns]
    raw = frame.select(keep).with_row_index("_row")
    typed = raw.with_columns(
        pl.col("session").cast(pl.Float64, strict=False).alias("_session_f"),
        pl.col("score").cast(pl.Float64, strict=False).alias("_score_f"),
        pl.col("measure").cast(pl.String),
    )
    problems: list[str] = []

    def report(mask: pl.Expr, message: pl.Expr) -> None:
        if len(problems) < MAX_REPORTED:
            problems.extend(_first_rows(typed, mask, message)[: MAX_REPORTED - len(problems)])

    client_text = pl.col("client_id").cast(pl.String)
    report(
        pl.col("client_id").is_null() | (client_text.str.strip_chars() == ""),
        pl.lit("client_id is empty"),
    )
    session_bad = (
        pl.col("_session_f").is_null()
        | pl.col("_session_f").is_nan()
        | (pl.col("_session_f") != pl.col("_session_f").floor())
    )
    report(
        session_bad,
        pl.format("session {} is not a whole number", pl.col("session").cast(pl.String)),
    )
    report(
        ~session_bad & (pl.col("_session_f") < 1),
        pl.format("session {} must be 1 or more", pl.col("session").cast(pl.String)),
    )
    known = sorted(measures)
    report(
        pl.col("measure").is_null() | ~pl.col("measure").is_in(known),
        pl.format(
            "unknown measure code '{}' (known: {}; add it with --measures FILE)",
            pl.col("measure").fill_null(""),
            pl.lit(", ".join(known)),
        ),
    )
    score_bad = pl.col("_score_f").is_null() | pl.col("_score_f").is_nan()
    report(
        score_bad,
        pl.format(
            "score '{}' is not a number", pl.col("score").cast(pl.String).fill_null("(empty)")
        ),
    )
    if problems:
        raise InputError(f"{source}: " + f"\n{source}: ".join(problems))

    lows = pl.col("measure").replace_strict({c: m.min for c, m in measures.items()}, default=None)
    highs = pl.col("measure").replace_strict({c: m.max for c, m in measures.items()}, default=None)
    ranges = {c: f"{m.min:g}..{m.max:g}" for c, m in measures.items()}
    report(
        (pl.col("_score_f") < lows) | (pl.col("_score_f") > highs),
        pl.format(
            "score {} is outside {}'s range {}",
            pl.col("score").cast(pl.String),
            pl.col("measure"),
            pl.col("measure").replace_strict(ranges, default=None),
        ),
    )
    if problems:
        raise InputError(f"{source}: " + f"\n{source}: ".join(problems))

    out = typed.select(
        "_row",
        "client_id",
        pl.col("_session_f").cast(pl.Int64).alias("session"),
        "measure",
        pl.col("_score_f").alias("score"),
        *[c for c in OPTIONAL if c in keep],
    )
    dup = out.select(pl.struct("client_id", "session", "measure").is_duplicated()).to_series()
    if dup.any():
        dups = out.filter(dup).sort("client_id", "measure", "session", "_row")
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
    if "date" in out.columns and out.schema["date"] == pl.String:
        parsed = pl.col("date").str.to_date("%Y-%m-%d", strict=False)
        bad_date = pl.col("date").is_not_null() & (pl.col("date") != "") & parsed.is_null()
        rows_bad = _first_rows(out, bad_date, pl.format("date '{}' is not YYYY-MM-DD", "date"))
        if rows_bad:
            raise InputError(f"{source}: " + f"\n{source}: ".join(rows_bad))
        out = out.with_columns(parsed.alias("date"))
    return out.drop("_row")


def read_long(path: Path, measures: Mapping[str, Instrument]) -> pl.DataFrame:
    """Read and check a long-format CSV or Parquet file (see :func:`check_long`)."""
    return check_long(read_table(path), measures, source=str(path))
