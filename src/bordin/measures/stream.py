"""Streamed, partitioned execution of ``bordin analyze``: memory bound by a limit, not the data.

The input is read with a lazy scan (CSV or Parquet). Clients are split into ``P`` partitions by
ranges of their (normalised) ``client_id``: a stable assignment that needs no hash function
whose values could change between library versions, and that keeps every output sorted exactly
as the in-memory engine sorts it, so the files are identical byte for byte.

1. First pass, partition by partition: check the rows (:func:`~bordin.measures.longdata.check_long`,
   rows keep their numbers in the file), count what the summary needs
   (:func:`~bordin.measures.batch.measure_stats`), count what the trajectory fit reads
   (:func:`~bordin.measures.batch.fit_counts_by_code`), and spill the typed rows to a Parquet
   part file.
2. The whole-data things are then computed once: the trajectory models
   (:func:`~bordin.measures.batch.plan`), on the partitions' counts merged
   (:func:`~bordin.measures.trajectories.merge_counts`).
3. Second pass: each part is analysed on its own
   (:func:`~bordin.measures.batch.analyze_partition`) and its tables appended; the CSV files are
   streamed from the parts at the end.

Peak memory is that of one partition plus the fit's counted triples (32 bytes per distinct
``(session, intake, score)``: a few thousand for integer scores, at most one per later score).
:func:`partitions_for` picks ``P`` from the number of rows and ``--memory-limit``.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from bordin.measures import batch, trajectories
from bordin.measures.csvsafe import formula_safe
from bordin.measures.instruments import Instrument
from bordin.measures.longdata import (
    REQUIRED,
    InputError,
    check_header,
    check_long,
    csv_encoding_problem,
    measure_codes,
    merged_ids,
    normalised_ids,
    ragged_row,
)

#: Peak bytes of the in-memory engine per input row (measured on ``bordin synth`` data from
#: Parquet: 3.62 GiB for 1,000,000 clients, 32.9 M rows, i.e. 118 bytes a row).
BYTES_PER_ROW = 120
#: The automatic memory limit: half the memory available now, at most this.
DEFAULT_LIMIT_CAP = 4 * 1024**3


def parse_size(text: str) -> int:
    """``"4G"`` → bytes; accepts K, M, G, T (powers of 1024) and plain bytes.

    >>> parse_size("512M"), parse_size("2g"), parse_size("1000")
    (536870912, 2147483648, 1000)
    """
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    cleaned = text.strip().upper().removesuffix("B").removesuffix("I")
    factor = units.get(cleaned[-1:], 1)
    number = cleaned[:-1] if cleaned[-1:] in units else cleaned
    try:
        value = float(number)
    except ValueError:
        raise ValueError(
            f"--memory-limit expects a size such as 4G or 512M, got '{text}'"
        ) from None
    if not value > 0 or math.isinf(value):
        raise ValueError(f"--memory-limit must be a positive size, got '{text}'")
    return int(value * factor)


def auto_memory_limit() -> int:
    """Half the memory available now, at most :data:`DEFAULT_LIMIT_CAP`."""
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):  # pragma: no cover - not Linux
        return DEFAULT_LIMIT_CAP
    return int(min(DEFAULT_LIMIT_CAP, available // 2))


def partitions_for(rows: int, limit: int) -> int:
    """How many partitions keep one partition's peak under ``limit`` bytes.

    >>> partitions_for(100_000_000, 4 * 1024**3), partitions_for(1_000, 1024**3)
    (3, 1)
    """
    return max(1, math.ceil(rows * BYTES_PER_ROW / limit))


def scan(path: Path) -> pl.LazyFrame:
    """A lazy scan of a CSV (all text, as :func:`~bordin.measures.longdata.read_table`) or
    Parquet file; raises :class:`InputError` for what can be told before reading rows."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if suffix in (".parquet", ".pq"):
        lazy = pl.scan_parquet(path)
    elif suffix in (".csv", ".txt"):
        problem = csv_encoding_problem(path)
        if problem:
            raise InputError(f"{path}: {problem}")
        lazy = pl.scan_csv(path, infer_schema=False)
    else:
        raise InputError(f"{path}: unsupported file type '{suffix}'; use .csv or .parquet")
    try:
        schema = lazy.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"{path}: cannot be read ({str(exc).strip()[:200]})") from None
    check_header(pl.DataFrame(schema=schema), str(path))
    return lazy


def count_rows(lazy: pl.LazyFrame) -> int:
    """Rows in a scan (Parquet: from the metadata; CSV: one streaming pass)."""
    return int(lazy.select(pl.len()).collect(engine="streaming").item())


def _id_expr(schema: Mapping[str, pl.DataType]) -> pl.Expr:
    ids = pl.col("client_id")
    return normalised_ids(ids) if schema["client_id"] == pl.String else ids


def cuts(lazy: pl.LazyFrame, partitions: int) -> list[Any]:
    """The client ids (as compared) at which partitions start, the first one excepted:
    consecutive ranges of the sorted distinct ids, about equal in number of clients."""
    key = _id_expr(lazy.collect_schema())
    ids = lazy.select(key.alias("k")).unique().drop_nulls().sort("k").collect().get_column("k")
    n = ids.len()
    bounds = sorted({int(p * n // partitions) for p in range(1, partitions)} - {0, n})
    return [ids[i] for i in bounds]


def range_filter(lazy: pl.LazyFrame, starts: list[Any], p: int) -> pl.Expr:
    """Rows of partition ``p``: client ids from ``starts[p - 1]`` up to ``starts[p]``
    (excluded); the first partition also takes rows without an id (the checks report them)."""
    key = _id_expr(lazy.collect_schema())
    cond = pl.lit(True)
    if p > 0:
        cond = cond & (key >= starts[p - 1])
    if p < len(starts):
        cond = cond & (key < starts[p])
    if p == 0:
        cond = cond | key.is_null()
    return cond


def check_part(
    lazy: pl.LazyFrame,
    where: pl.Expr,
    path: Path,
    measures: Mapping[str, Instrument],
    outcome_codes: list[str],
) -> tuple[pl.DataFrame, batch.RowArrays, list[tuple[str, str]], dict[str, batch.FitCounts]]:
    """First pass over one partition: its rows read and checked (as typed rows and as
    arrays), the ids normalisation merged, and the trajectory fit's counted triples of each
    outcome measure present; raises :class:`InputError` naming the file."""
    source = str(path)
    schema = lazy.collect_schema()
    # Only what the analysis checks or uses is read (not ``therapist_id``, nor a typed date),
    # as :func:`bordin.measures.longdata.read_table` reads a whole file.
    wanted = [c for c in ("_row", *REQUIRED) if c in schema]
    if schema.get("date") == pl.String:
        wanted.append("date")
    # Measure codes cast in the read (one byte a row instead of the text): a code that is
    # not known, or missing, reads the partition's text again for the checks to name it.
    code = measure_codes(schema["measure"], pl.Enum(sorted(measures)))
    cast = [code if c == "measure" else pl.col(c) for c in wanted]
    try:
        raw = lazy.filter(where).select(cast).collect()
        if raw.get_column("measure").null_count():
            raw = lazy.filter(where).select(wanted).collect()
    except pl.exceptions.PolarsError as exc:
        hint = ragged_row(path) if path.suffix.lower() in (".csv", ".txt") else None
        first = str(exc).strip().splitlines()[0]
        raise InputError(f"{source}: " + (hint or f"cannot be read ({first})")) from None
    merged = merged_ids(raw)
    codes: list[tuple[pl.Series, Any]] = []
    typed = check_long(raw, measures, source=source, client_codes=codes)
    del raw
    arrays = batch.row_arrays(typed, codes[0])
    return typed, arrays, merged, batch.fit_counts_by_code(arrays, outcome_codes)


def analyze_partitioned(
    path: Path,
    measures: Mapping[str, Instrument],
    *,
    out: Path,
    partitions: int,
    reference: pl.DataFrame | None = None,
    reference_source: str | None = None,
    out_format: str = "csv",
    step: batch.Step | None = None,
    trajectory_model: str = "ols",
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Analyse ``path`` in ``partitions`` parts, writing every output file into ``out``.

    ``out`` is an empty staging folder (see :func:`bordin.measures.batch.staged_output`).
    Returns the summary and the client ids normalisation merged.
    """
    tell = step or (lambda _label: None)
    source = str(path)
    lazy = scan(path).with_row_index("_row")
    if count_rows(lazy) == 0:
        raise InputError(f"{source}: no rows: the file has no data rows, only a header")
    starts = cuts(lazy, partitions)
    filters = [range_filter(lazy, starts, p) for p in range(len(starts) + 1)]
    work = out / ".parts"
    work.mkdir()
    stats: dict[str, Any] = {}
    merged: list[tuple[str, str]] = []
    outcome_codes = [c for c, inst in measures.items() if inst.role == "outcome"]
    gathered: dict[str, list[batch.FitCounts]] = {c: [] for c in outcome_codes}
    for p, where in enumerate(filters):
        tell(f"checking part {p + 1} of {len(filters)}")
        typed, arrays, part_merged, inputs = check_part(lazy, where, path, measures, outcome_codes)
        merged.extend(part_merged)
        batch.add_counts(stats, batch.stats_of_rows(arrays))
        for code, code_inputs in inputs.items():
            gathered[code].append(code_inputs)
        del arrays, inputs
        typed.write_parquet(work / f"input-{p:05d}.parquet")
        del typed

    present = tuple(sorted(k for k, v in stats.items() if isinstance(v, dict)))
    tell("fitting expected trajectories")
    the_plan = batch.plan_from_parts(
        measures,
        present=present,
        fit_counts={c: trajectories.merge_counts(gathered.get(c, [])) for c in present},
        reference=reference,
        reference_source=reference_source,
        trajectory_model=trajectory_model,
    )
    del gathered

    counts: dict[str, Any] = {}
    names: list[str] = []
    for p in range(len(filters)):
        tell(f"analysing part {p + 1} of {len(filters)}")
        part_file = work / f"input-{p:05d}.parquet"
        tables = batch.analyze_partition(pl.read_parquet(part_file), the_plan)
        part_file.unlink()
        batch.add_counts(counts, batch.table_counts(tables))
        names = list(tables)
        for name, table in tables.items():
            # One file per measure: the whole output is sorted by measure, then client.
            runs = batch.measure_runs(table) if "measure" in table.columns else iter([("", table)])
            for code, rows in runs:
                if rows.height:
                    rows.write_parquet(work / f"{name}-{code}-{p:05d}.parquet")

    tell("writing results")
    for name in names:
        files = [f for code in ("", *present) for f in sorted(work.glob(f"{name}-{code}-*"))]
        target = out / f"{name}.{out_format}"
        if not files:
            batch.write_table(batch.empty_table(name), target)
        elif out_format == "parquet":
            pl.scan_parquet(files).sink_parquet(target)
        else:
            combined = pl.scan_parquet(files)
            combined.with_columns(formula_safe(combined.collect_schema())).sink_csv(target)
    shutil.rmtree(work)
    summary = batch.write_summary(out, the_plan, stats, counts, source=source, merged=merged)
    return summary, merged
