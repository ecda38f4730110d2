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

import codecs
import csv
import difflib
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


def read_table(path: Path, *, analysed_only: bool = False) -> pl.DataFrame:
    """Read a CSV or Parquet file without interpreting its values yet.

    CSV columns are all read as text so that a stray value deep in the file is reported by
    :func:`check_long` with its row, instead of failing type inference. When a CSV file cannot
    be read, the message names the likely cause (its encoding, a ragged row and its number).
    ``analysed_only`` reads only the columns the analysis checks or uses from a Parquet file
    that has every required one (others, such as ``therapist_id``, are never read).
    """
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        if suffix in (".parquet", ".pq"):
            columns = None
            if analysed_only:
                schema = pl.read_parquet_schema(path)
                if all(c in schema for c in REQUIRED):
                    # A typed date column is not looked at; a text one is checked.
                    columns = [*REQUIRED, *(["date"] if schema.get("date") == pl.String else [])]
            return pl.read_parquet(path, columns=columns)
        if suffix in (".csv", ".txt"):
            encoding = csv_encoding_problem(path)
            if encoding:
                raise InputError(f"{path}: {encoding}")
            return pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = ragged_row(path) if suffix in (".csv", ".txt") else None
        raise InputError(
            f"{path}: " + (hint or f"cannot be read as {suffix[1:]} ({first_line})")
        ) from None
    raise InputError(f"{path}: unsupported file type '{suffix}'; use .csv or .parquet")


#: How much of a CSV file's start is looked at to tell its encoding.
_SNIFF_BYTES = 1 << 20


def csv_encoding_problem(path: Path) -> str | None:
    """Why the file is not UTF-8 text (UTF-16, Latin-1 ...), or ``None`` when it looks fine."""
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or head[:200].count(0) > 4:
        return "the file looks UTF-16 encoded; save it as UTF-8 (CSV UTF-8) and try again"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        line = head[: exc.start].count(b"\n")
        where = f"row {line}" if line else "the header"
        return (
            f"{where}: the file is not UTF-8 (byte 0x{head[exc.start]:02x}; it looks Latin-1 or "
            "Windows-1252 encoded); save it as UTF-8 (CSV UTF-8) and try again"
        )
    return None


def ragged_row(path: Path) -> str | None:
    """The first data row whose number of fields differs from the header's, described."""
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        rows = csv.reader(handle)
        header = next(rows, [])
        for number, row in enumerate(rows, start=1):
            if row and len(row) != len(header):
                return (
                    f"row {number}: {len(row)} fields where the header has {len(header)}; "
                    "a decimal comma (write 4.5, not 4,5) or an unquoted comma inside a value "
                    "(put it in double quotes)"
                )
    return None


def _first_rows(frame: pl.DataFrame, mask: pl.Expr | pl.Series, message: pl.Expr) -> list[str]:
    """The first rows of the file (lowest ``_row``) that ``mask`` selects, with ``message``."""
    bad = frame.filter(mask)
    if bad.height == 0:
        return []
    bad = bad.bottom_k(MAX_REPORTED, by="_row").sort("_row")
    out = bad.select(pl.format("row {}: ", pl.col("_row") + 1), message.alias("_msg"))
    return [a + b for a, b in out.iter_rows()]


def _fail(source: str, problems: list[str]) -> InputError:
    return InputError(f"{source}: " + f"\n{source}: ".join(problems[:MAX_REPORTED]))


def check_long(
    frame: pl.DataFrame,
    measures: Mapping[str, Instrument],
    *,
    source: str,
    client_codes: list[tuple[pl.Series, npt.NDArray[np.int64]]] | None = None,
) -> pl.DataFrame:
    """Check and type a long-format frame; return it with typed columns or raise InputError.

    Returns columns ``client_id`` (as given, text for CSV), ``session`` (Int64), ``measure``
    (an Enum of the known codes), ``score`` (Float64), plus ``therapist_id`` and ``date``
    (Date) when present. Checks run cheapest first and stop at the first kind of problem.
    ``client_codes``, a list, receives the returned ids' :func:`dense_codes` (the duplicate
    check computes them), for :func:`bordin.measures.batch.row_arrays` not to compute them
    again.
    """
    frame = check_header(frame, source)
    if frame.height == 0:
        raise InputError(f"{source}: no rows: the file has no data rows, only a header")
    keep = [c for c in (*REQUIRED, *OPTIONAL) if c in frame.columns]
    if "_row" in frame.columns:  # a part of a larger file, its rows already numbered
        typed = frame.select("_row", *keep)
    else:
        typed = frame.select(keep).with_row_index("_row")
    problems: list[str] = []

    def report(mask: pl.Expr | pl.Series, message: pl.Expr) -> None:
        if len(problems) < MAX_REPORTED:
            problems.extend(_first_rows(typed, mask, message))

    empty = pl.col("client_id").is_null()
    if typed.schema["client_id"] == pl.String:
        empty = empty | (pl.col("client_id").str.strip_chars() == "")
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
    codes = pl.Enum(known)
    # One pass: each code looked up once, for the check and for the typed column (an unknown
    # or missing code becomes null).
    # (A part of a large file comes with its codes already cast, in the read: see
    # :func:`bordin.measures.stream.check_part`.)
    typed = typed.with_columns(measure_codes(typed.schema["measure"], codes).alias("_code"))
    report(
        pl.col("_code").is_null(),
        pl.format(
            "unknown measure code '{}'{} (known: {}; add it with --measures FILE)",
            pl.col("measure").cast(pl.String).fill_null(""),
            pl.col("measure")
            .cast(pl.String)
            .fill_null("")
            .map_elements(lambda code: _code_hint(code, known), return_dtype=pl.String),
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

    if typed.schema["client_id"] == pl.String:
        typed = typed.with_columns(normalised_ids(pl.col("client_id")))
    typed = typed.with_columns(
        session_f.cast(pl.Int64).alias("session"),
        pl.col("_code").alias("measure"),
        score_f.alias("score"),
    ).drop("_code")

    if typed.height > 1 and not typed.get_column("client_id").is_sorted():
        # In client order from here on (a stable sort: each client's rows keep their order):
        # the later checks and every later step take their in-order paths; problems are
        # still reported by row number, lowest first.
        if typed.schema["client_id"].is_integer():
            typed = client_order(typed)
        else:
            typed = typed.sort("client_id", maintain_order=True)
    # The columns NumPy reads, each in one piece: read in place here and in every later step
    # instead of copied together at each step.
    typed = typed.with_columns(typed.get_column(c).rechunk() for c in NUMPY_READS)
    measure_idx = typed.get_column("measure").to_physical().to_numpy()
    score = typed.get_column("score").to_numpy()
    lows = np.array([measures[c].min for c in known], dtype=np.float64)
    highs = np.array([measures[c].max for c in known], dtype=np.float64)

    def outside(part: slice) -> npt.NDArray[np.bool_]:
        m, value = measure_idx[part], score[part]
        return (value < lows[m]) | (value > highs[m])  # type: ignore[no-any-return]

    # In chunks: small temporaries, reused, instead of fresh arrays as long as the data.
    chunks = [slice(a, a + CHUNK_ROWS) for a in range(0, score.size, CHUNK_ROWS)]
    if any(outside(part).any() for part in chunks):
        out_of_range = outside(slice(None))
        first = typed.filter(pl.Series(out_of_range)).bottom_k(MAX_REPORTED, by="_row")
        for row in first.sort("_row").iter_rows(named=True):
            inst = measures[row["measure"]]
            problems.append(
                f"row {row['_row'] + 1}: score {row['score']:g} is outside "
                f"{inst.code}'s range {inst.min:g}..{inst.max:g}"
            )
        raise _fail(source, problems)

    found = _check_duplicates(typed, measure_idx, len(known), source)
    if client_codes is not None:
        client_codes.append(found)
    if "date" in typed.columns and typed.schema["date"] == pl.String:
        parsed = pl.col("date").str.to_date("%Y-%m-%d", strict=False)
        bad_date = pl.col("date").is_not_null() & (pl.col("date") != "") & parsed.is_null()
        report(bad_date, pl.format("date '{}' is not YYYY-MM-DD", "date"))
        if problems:
            raise _fail(source, problems)
        typed = typed.with_columns(parsed.alias("date"))
    return typed.drop("_row")


def measure_codes(dtype: pl.DataType, codes: pl.Enum) -> pl.Expr:
    """Column ``measure`` (of type ``dtype``) as the Enum ``codes``: null where a code is
    unknown or missing. Text is cast directly (a cast of text to text is not free), other
    types through text, codes already of ``codes`` left as they are."""
    code = pl.col("measure")
    if dtype == codes:
        return code
    if dtype != pl.String:
        code = code.cast(pl.String)
    return code.cast(codes, strict=False)


def normalised_ids(ids: pl.Expr) -> pl.Expr:
    """Client ids as compared: surrounding spaces trimmed, Unicode in NFC form.

    ``"a "`` and ``"a"``, or ``"Zoë"`` typed precomposed and decomposed, are one client.
    """
    return ids.str.strip_chars().str.normalize("NFC")


def merged_ids(raw: pl.DataFrame | pl.LazyFrame) -> list[tuple[str, str]]:
    """Ids that :func:`normalised_ids` merges: ``(as written, as compared)`` pairs.

    Only the ids that change are listed (empty for Parquet integer ids and for clean data).
    """
    lazy = raw.lazy()
    if lazy.collect_schema().get("client_id") != pl.String:
        return []
    changed = (
        lazy.select(pl.col("client_id").unique())
        .drop_nulls()
        .with_columns(normalised_ids(pl.col("client_id")).alias("_as"))
        .filter(pl.col("client_id") != pl.col("_as"))
        .sort("client_id")
        .collect()
    )
    return [(str(a), str(b)) for a, b in changed.iter_rows()]


def _code_hint(code: str, known: list[str]) -> str:
    """``" (did you mean phq9?)"`` for a near miss of a known code, else ``""``."""
    cleaned = code.strip().lower()
    if cleaned in known:
        why = "spaces around it" if code.strip() != code else "capitals"
        return f" (did you mean {cleaned}? the code has {why})"
    close = difflib.get_close_matches(cleaned, known, n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def check_header(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    """Check the required columns are there; name the likely cause when they are not."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if not missing:
        return frame
    found = ", ".join(f"'{c}'" for c in frame.columns) or "none"
    hint = ""
    if len(frame.columns) == 1:
        only = frame.columns[0]
        for sep, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
            if sep in only:
                hint = f"; the file looks {name}-separated: save it with commas as separators"
                break
    if not hint:
        near = {c.strip().lower(): c for c in frame.columns}
        fixes = [f"'{near[m]}' for {m}" for m in missing if m in near]
        if fixes:
            hint = f"; check the header for spaces or capitals: {', '.join(fixes)}"
    raise InputError(
        f"{source}: missing column(s) {', '.join(missing)}; "
        f"need {', '.join(REQUIRED)} (found: {found}){hint}"
    )


#: Rows a step over whole columns takes at a time where it can: its temporaries are then
#: small and reused, instead of fresh memory for every step (costly where page faults are).
CHUNK_ROWS = 1 << 20

#: Above this many (client, measure, session) cells the duplicate check hashes instead of
#: marking a dense array of one byte a cell.
_DENSE_CELLS = 1 << 28


#: The checked rows' columns NumPy reads (:func:`check_long` gives each in one piece).
NUMPY_READS = ("client_id", "session", "score")

#: Most runs of rows :func:`client_order` inserts into the sorted head as slices.
MAX_INSERTS = 1024


def client_order(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` sorted by its integer ``client_id``, stably (each client's rows keep their
    order), as ``frame.sort("client_id", maintain_order=True)`` gives.

    Made for rows that are mostly in order: the rows up to the first one out of order (the
    head) stay where they are; the rest is sorted on its own and its runs are inserted into
    the head as slices, without copying the head (for instance a file of short series with a
    few long ones appended, or a partition's blocks of clients one after another). Falls back
    to one stable sort when the rest would be cut into more than :data:`MAX_INSERTS` runs.

    >>> client_order(pl.DataFrame({"client_id": [1, 3, 2, 1], "k": [0, 1, 2, 3]}))["k"].to_list()
    [0, 3, 2, 1]
    """
    client = frame.get_column("client_id").to_numpy()
    falls = np.flatnonzero(client[1:] < client[:-1])
    if not falls.size:
        return frame
    cut = int(falls[0]) + 1
    rest = frame.slice(cut)
    rest = rest[np.argsort(client[cut:], kind="stable")]
    # After the head's rows of the same client: a stable order.
    at = np.searchsorted(client[:cut], rest.get_column("client_id").to_numpy(), side="right")
    runs = np.flatnonzero(np.diff(at, prepend=-1))
    if runs.size > MAX_INSERTS:
        return frame[np.argsort(client, kind="stable")]
    pieces: list[pl.DataFrame] = []
    done = 0
    for start, end in zip(runs, [*runs[1:], at.size], strict=True):
        pieces += [frame.slice(done, int(at[start]) - done), rest.slice(int(start), end - start)]
        done = int(at[start])
    pieces.append(frame.slice(done, cut - done))
    return pl.concat(pieces, rechunk=False)


def dense_codes(ids: pl.Series) -> tuple[pl.Series, npt.NDArray[np.int64]]:
    """The sorted distinct values of ``ids`` and each value's position among them (its dense
    rank from 0); one pass when ``ids`` is already sorted, as files often are.

    >>> values, codes = dense_codes(pl.Series(["b", "a", "b"]))
    >>> values.to_list(), codes.tolist()
    (['a', 'b'], [1, 0, 1])
    """
    if ids.len() and ids.null_count() == 0 and ids.is_sorted():
        if ids.dtype.is_integer():  # NumPy compares neighbours in place, without a copy
            values = ids.to_numpy()
            change = np.empty(values.size, dtype=np.bool_)
            change[0] = True
            np.not_equal(values[1:], values[:-1], out=change[1:])
        else:
            change = ids.ne(ids.shift(1)).fill_null(True).to_numpy()
        codes = np.cumsum(change, dtype=np.int64)
        codes -= 1
        return ids.filter(pl.Series(change)), codes
    codes = ids.rank("dense").cast(pl.Int64).to_numpy() - 1
    return ids.unique().sort(), codes


def _check_duplicates(
    typed: pl.DataFrame, measure_idx: npt.NDArray[Any], n_measures: int, source: str
) -> tuple[pl.Series, npt.NDArray[np.int64]]:
    """Reject two rows for the same client, session and measure, naming both rows; returns
    the ids' :func:`dense_codes`.

    Each row is given an integer cell number; counting cells into a dense array is far faster
    than hashing the three columns, and falls back to hashing when the array would be huge.
    """
    ids, client = dense_codes(typed.get_column("client_id"))
    session = typed.get_column("session").to_numpy()
    n_clients = ids.len()
    n_sessions = int(session.max()) if session.size else 1

    def cells(part: slice) -> npt.NDArray[np.int64]:
        base = client[part] * n_measures + measure_idx[part]
        return base * n_sessions + (session[part] - 1)  # type: ignore[no-any-return]

    n_cells = n_clients * n_measures * n_sessions
    if n_cells <= _DENSE_CELLS:
        # One byte a cell: as many distinct cells as rows means no duplicate (in chunks:
        # small reused temporaries instead of fresh arrays as long as the data).
        seen = np.zeros(n_cells, dtype=np.bool_)
        for a in range(0, session.size, CHUNK_ROWS):
            seen[cells(slice(a, a + CHUNK_ROWS))] = True
        if int(np.count_nonzero(seen)) == session.size:
            return ids, client
        del seen
        cell = cells(slice(None))
        duplicated = np.bincount(cell, minlength=n_cells)[cell] > 1
    else:
        cell = cells(slice(None))
        ordered = np.sort(cell)  # far less memory than hashing; duplicates end up adjacent
        if not np.any(ordered[1:] == ordered[:-1]):
            return ids, client
        del ordered
        duplicated = pl.Series(cell).is_duplicated().to_numpy()
    if not duplicated.any():
        return ids, client
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
        f"({dups.height} duplicated rows in all); keep one row per client, session and measure "
        "(client ids are compared without surrounding spaces and in Unicode NFC form)"
    )


def read_long(path: Path, measures: Mapping[str, Instrument]) -> pl.DataFrame:
    """Read and check a long-format CSV or Parquet file (see :func:`check_long`)."""
    return check_long(read_table(path), measures, source=str(path))
