"""Choosing how ``bordin analyze`` runs: in memory, in partitions, or on Apache Spark.

:func:`run` is what the command calls. The local engine analyses the whole input in memory
when its estimated peak fits the memory limit, and otherwise in partitions of clients
(:mod:`bordin.measures.stream`); both give the same files. ``engine="spark"`` runs the same
per-partition function on a Spark cluster (:mod:`bordin.measures.spark`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from bordin.measures import batch, parallel, stream
from bordin.measures.instruments import Instrument
from bordin.measures.longdata import InputError, check_long, merged_ids, read_long, read_table

#: Estimated bytes of one CSV row (``client_id,session,measure,score``) when the number of rows
#: of a CSV file is guessed from its size instead of read.
CSV_BYTES_PER_ROW = 16


@dataclass
class Outcome:
    """What a run produced: the summary, the files written and the client ids merged."""

    summary: dict[str, Any]
    written: list[Path]
    merged: list[tuple[str, str]] = field(default_factory=list)
    partitions: int = 1


def estimated_rows(path: Path) -> int:
    """Rows of the input: from the Parquet metadata, or guessed from a CSV file's size."""
    if path.suffix.lower() in (".parquet", ".pq"):
        return stream.count_rows(stream.scan(path))
    return path.stat().st_size // CSV_BYTES_PER_ROW if path.is_file() else 0


def spark_path(path: Path | str) -> str:
    """The input as Spark should see it: ``Path`` turns ``hdfs://host/x`` into ``hdfs:/host/x``.

    >>> spark_path(Path("hdfs://namenode/data/scores.parquet")), spark_path(Path("a/b.csv"))
    ('hdfs://namenode/data/scores.parquet', 'a/b.csv')
    """
    return re.sub(r"^([A-Za-z][\w+.-]+):/(?!/)", r"\1://", str(path))


def run(
    path: Path,
    out: Path,
    measures: Mapping[str, Instrument],
    *,
    reference: Path | None = None,
    memory_limit: int | None = None,
    engine: str = "local",
    spark_master: str | None = None,
    out_format: str = "csv",
    step: batch.Step | None = None,
    trajectory_model: str = "ols",
    workers: int | None = None,
) -> Outcome:
    """Analyse ``path`` into ``out`` (replaced as a whole); raises InputError or OutputError.

    ``workers`` processes share the partitions of clients (:mod:`bordin.measures.parallel`);
    by default every CPU this process may use, for inputs of
    :data:`~bordin.measures.parallel.MIN_PARALLEL_ROWS` rows or more, else one.
    """
    tell = step or (lambda _label: None)
    ref = read_long(reference, measures) if reference is not None else None
    ref_source = str(reference) if reference is not None else None
    if engine == "spark":
        from bordin.measures.spark import analyze_spark

        with batch.staged_output(out) as tmp:
            try:
                summary, merged = analyze_spark(
                    spark_path(path),
                    measures,
                    out=tmp,
                    master=spark_master,
                    reference=ref,
                    reference_source=ref_source,
                    out_format=out_format,
                    step=tell,
                    trajectory_model=trajectory_model,
                )
            except Exception as exc:
                if not type(exc).__module__.startswith(("pyspark", "py4j")):
                    raise
                # A failed Spark job (cluster unreachable, executor lost ...): its first line.
                text = str(exc).strip().splitlines()
                raise InputError(f"{path}: Spark failed: {text[0] if text else exc!r}") from None
            names = sorted(p.name for p in tmp.iterdir())
        return Outcome(summary, [out / n for n in names], merged)
    limit = memory_limit or stream.auto_memory_limit()
    rows = estimated_rows(path)
    if workers is None:
        workers = parallel.cpu_workers() if rows >= parallel.MIN_PARALLEL_ROWS else 1
    parts = (
        parallel.partitions_for(rows, limit, workers)
        if workers > 1
        else stream.partitions_for(rows, limit)
    )
    if parts > 1:
        common: dict[str, Any] = {
            "partitions": parts,
            "reference": ref,
            "reference_source": ref_source,
            "out_format": out_format,
            "step": tell,
            "trajectory_model": trajectory_model,
        }
        with batch.staged_output(out) as tmp:
            if workers > 1:
                summary, merged = parallel.analyze_parallel(
                    path, measures, out=tmp, workers=workers, **common
                )
            else:
                summary, merged = stream.analyze_partitioned(path, measures, out=tmp, **common)
            names = sorted(p.name for p in tmp.iterdir())
        return Outcome(summary, [out / n for n in names], merged, parts)
    tell(f"reading {path}")
    raw = read_table(path, analysed_only=True)
    merged = merged_ids(raw)
    data = check_long(raw, measures, source=str(path))
    del raw
    results = batch.analyze(
        data,
        measures,
        reference=ref,
        source=str(path),
        reference_source=ref_source,
        step=tell,
        trajectory_model=trajectory_model,
    )
    del data
    if merged:
        results.summary["input"]["merged_client_ids"] = len(merged)
    tell(f"writing {out}")
    written = batch.write_results(results, out, out_format=out_format)
    return Outcome(results.summary, written, merged)


def unforeseen(path: Path, exc: BaseException) -> InputError:
    """An error the checks did not foresee (a nested Parquet column ...), as a message."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return InputError(f"{path}: cannot be analysed ({first}); check the column types")


#: Errors from reading odd input that the checks do not name; reported via :func:`unforeseen`.
UNFORESEEN = (pl.exceptions.PolarsError, ValueError, TypeError, OverflowError)
