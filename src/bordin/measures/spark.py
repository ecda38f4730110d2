"""``bordin analyze --engine spark``: the same per-partition analysis on Apache Spark (PySpark 4).

The input is any path Spark can read (local, HDFS, S3 with the cluster's configuration), CSV
(all columns as text, as the local engine reads it) or Parquet. Clients are grouped by a stable
hash of their normalised ``client_id`` into partitions, and each group runs, through
``groupBy(...).applyInArrow`` (Arrow batches, no row-by-row Python):

1. a first pass: :func:`~bordin.measures.longdata.check_long` on the group's rows (with their row
   numbers in the input), the counts the summary needs and the trajectory fit's counted
   ``(session, intake, score)`` triples (:func:`~bordin.measures.batch.fit_counts_by_code`); the
   driver merges the groups' triples (:func:`~bordin.measures.trajectories.merge_counts`), fits
   each model once (:func:`~bordin.measures.batch.plan`) and broadcasts the plan;
2. a second pass: :func:`~bordin.measures.batch.analyze_partition`, the very function the local
   engine runs on each partition.

The driver gathers the tables (as Arrow) and writes the same six files, sorted as the local
engine sorts them, so the outputs are identical row for row. The tables and the fit's counted
triples (few) pass through the driver: give it memory for the tables (``spark.driver.memory``,
see docs/analyze.md).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from bordin.measures import batch, trajectories
from bordin.measures.instruments import Instrument
from bordin.measures.longdata import (
    MAX_REPORTED,
    InputError,
    check_header,
    check_long,
    merged_ids,
    normalised_ids,
)

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

#: Driver memory unless spark-submit sets one (``--driver-memory``).
DRIVER_MEMORY = "4g"
#: Shuffle partitions until the session's parallelism is known.
DEFAULT_GROUPS = 8

#: Every column any output table has, with its Spark type: the second pass returns one Arrow
#: table of this shape, ``_table`` naming the output each row belongs to.
_TYPES: dict[str, str] = {
    "_table": "string",
    "client_id": "string",
    "kind": "string",
    "measure": "string",
    "pregain_session": "long",
    "postgain_session": "long",
    "pregain_score": "double",
    "postgain_score": "double",
    "magnitude": "double",
    "first_session": "long",
    "last_session": "long",
    "baseline": "double",
    "final": "double",
    "change": "double",
    "rci": "double",
    "category": "string",
    "case_at_start": "boolean",
    "recovered": "boolean",
    "reliable_improvement": "boolean",
    "reliable_deterioration": "boolean",
    "reliable_recovery": "boolean",
    "session": "long",
    "previous_session": "long",
    "drop": "double",
    "status": "string",
    "repair_session": "long",
    "score": "double",
    "expected": "double",
    "upper": "double",
}
_POLARS = {"string": pl.String, "long": pl.Int64, "double": pl.Float64, "boolean": pl.Boolean}
#: First-pass rows: an error, a group's counts (JSON), a merged id, one counted fit triple
#: (``session, y1, score``, its count in ``row``) or a measure's fit clients (in ``row``).
_FIRST = {
    "_kind": "string",
    "code": "string",
    "client_id": "string",
    "session": "long",
    "y1": "double",
    "score": "double",
    "message": "string",
    "row": "long",
}


_ARROW = {"string": pa.string(), "long": pa.int64(), "double": pa.float64(), "boolean": pa.bool_()}


def _arrow(table: pa.Table, types: Mapping[str, str]) -> pa.Table:
    """``table`` with exactly the Arrow types Spark expects (Polars writes large strings)."""
    return table.select(list(types)).cast(
        pa.schema([(name, _ARROW[kind]) for name, kind in types.items()])
    )


def _ddl(types: Mapping[str, str]) -> str:
    return ", ".join(f"`{name}` {kind}" for name, kind in types.items())


def _frame(rows: dict[str, list[Any]], types: Mapping[str, str]) -> pa.Table:
    n = max((len(v) for v in rows.values()), default=0)
    data = {
        name: pl.Series(name, rows.get(name, [None] * n), dtype=_POLARS[kind])
        for name, kind in types.items()
    }
    return _arrow(pl.DataFrame(data).to_arrow(), types)


def session(master: str | None = None) -> SparkSession:
    """The Spark session: ``master`` when given, else spark-submit's, else ``local[*]``."""
    from pyspark.sql import SparkSession

    if master is None or master.startswith("local"):
        # Local workers run this interpreter (it has Polars and Bordin); on a cluster the
        # workers' Python is the cluster's setting (spark.pyspark.python).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("bordin analyze")
    if master:
        builder = builder.master(master)
    elif not os.environ.get("SPARK_MASTER") and "--master" not in os.environ.get(
        "PYSPARK_SUBMIT_ARGS", ""
    ):
        builder = builder.master("local[*]")
    if not any(key in os.environ.get("PYSPARK_SUBMIT_ARGS", "") for key in ("driver-memory",)):
        # The driver gathers the output tables (see the module docstring); Spark's 1 GiB
        # default is too small beyond some 50,000 clients.
        builder = builder.config("spark.driver.memory", DRIVER_MEMORY)
    if master is None or master.startswith("local"):
        # Spark's scratch files in a folder of this run's own, not shared /tmp/blockmgr-*.
        scratch = tempfile.mkdtemp(prefix="bordin-spark-")
        builder = builder.config("spark.local.dir", scratch)
    return (
        builder.config("spark.ui.enabled", "false")
        .config("spark.driver.maxResultSize", "0")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.shuffle.partitions", str(DEFAULT_GROUPS))
        .getOrCreate()
    )


def read(spark: SparkSession, path: str) -> DataFrame:
    """Spark's view of the input: CSV as text columns, or Parquet; rows numbered from 0."""
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    lower = path.lower()
    if lower.endswith((".parquet", ".pq")) or lower.rstrip("/").endswith("parquet"):
        frame = spark.read.parquet(path)
    else:
        frame = (
            spark.read.option("header", "true")
            .option("inferSchema", "false")
            .option("escape", '"')
            .csv(path)
        )
    # Row numbers without a single-partition sort: a partition's first row number is the
    # number of rows in the partitions before it (Spark keeps the file's order in them).
    numbered = frame.withColumn("_part", F.spark_partition_id()).withColumn(
        "_in",
        F.row_number().over(Window.partitionBy("_part").orderBy(F.monotonically_increasing_id()))
        - 1,
    )
    sizes = numbered.groupBy("_part").count().orderBy("_part").collect()
    offsets, total = [], 0
    for row in sizes:
        offsets.append((int(row["_part"]), total))
        total += int(row["count"])
    offset_frame = spark.createDataFrame(offsets, "_part int, _offset long")
    return (
        numbered.join(F.broadcast(offset_frame), "_part")
        .withColumn("_row", F.col("_offset") + F.col("_in"))
        .drop("_part", "_in", "_offset")
    )


def _keyed(frame: DataFrame, groups: int) -> DataFrame:
    """Add ``_group``: a stable hash (Spark's xxHash64) of the client id as the engine compares
    it (trimmed and in Unicode NFC form, computed with the same Polars expression)."""
    from pyspark.sql import functions as F

    if dict(frame.dtypes).get("client_id") != "string":
        return frame.withColumn("_group", F.pmod(F.xxhash64("client_id"), F.lit(groups)))

    def normalise(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for record in batches:
            ids = pl.from_arrow(record.column(record.schema.get_field_index("client_id")))
            assert isinstance(ids, pl.Series)  # noqa: S101 - an Array gives a Series
            normal = ids.to_frame("client_id").select(normalised_ids(pl.col("client_id")))
            yield record.append_column("_id", normal.to_series().to_arrow().cast(pa.string()))

    schema = f"{frame.schema.simpleString()[len('struct<') : -1]},_id:string"
    with_id = frame.mapInArrow(normalise, schema)
    return with_id.withColumn("_group", F.pmod(F.xxhash64("_id"), F.lit(groups))).drop("_id")


def analyze_spark(
    path: str,
    measures: Mapping[str, Instrument],
    *,
    out: Path,
    master: str | None = None,
    reference: pl.DataFrame | None = None,
    reference_source: str | None = None,
    out_format: str = "csv",
    step: batch.Step | None = None,
    groups: int | None = None,
    trajectory_model: str = "ols",
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Analyse ``path`` on Spark, writing the outputs into the staging folder ``out``."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise InputError(
            "--engine spark needs PySpark (and Java 17): pip install 'bordin[spark]'"
        ) from None
    tell = step or (lambda _label: None)
    tell("starting Spark")
    spark = session(master)
    try:
        raw = read(spark, path)
    except Exception as exc:  # Spark's AnalysisException: path missing or unreadable
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: cannot be read by Spark ({first})") from None
    columns = [c for c in raw.columns if c != "_row"]
    check_header(pl.DataFrame(schema=dict.fromkeys(columns, pl.String)), path)
    if groups is None:  # a few groups per core: enough to spread, few enough to start fast
        groups = max(2, 2 * spark.sparkContext.defaultParallelism)
    spark.conf.set("spark.sql.shuffle.partitions", str(groups))
    keyed = _keyed(raw.select("_row", *columns), groups).cache()
    id_is_text = dict(keyed.dtypes)["client_id"] == "string"

    def first_pass(table: pa.Table) -> pa.Table:
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)  # noqa: S101 - a Table gives a DataFrame
        frame = frame.drop("_group")
        rows: dict[str, list[Any]] = {k: [] for k in _FIRST}

        def add(**values: Any) -> None:
            for k in _FIRST:
                rows[k].append(values.get(k))

        try:
            typed = check_long(frame, measures, source=path)
        except InputError as exc:
            for line in str(exc).splitlines():
                number = line.split("row ", 1)[-1].split(":", 1)[0].split(",", 1)[0]
                add(_kind="error", message=line, row=int(number) if number.isdigit() else 0)
            return _frame(rows, _FIRST)
        for raw_id, normal in merged_ids(frame):
            add(_kind="merged", client_id=normal, message=raw_id)
        add(_kind="stats", message=json.dumps(batch.measure_stats(typed)))
        outcome_codes = [c for c, inst in measures.items() if inst.role == "outcome"]
        counted = batch.fit_counts_by_code(batch.row_arrays(typed), outcome_codes)
        for code, triples in counted.items():
            add(_kind="fit_clients", code=code, row=triples.n_clients)
        fits = [_frame(rows, _FIRST)]
        for code, triples in counted.items():
            fits.append(
                pl.DataFrame(
                    {
                        "session": triples.session,
                        "y1": triples.y1,
                        "score": triples.score,
                        "row": triples.counts,
                    }
                )
                .select(
                    pl.lit("fit").alias("_kind"),
                    pl.lit(code).alias("code"),
                    pl.lit(None, pl.String).alias("client_id"),
                    "session",
                    "y1",
                    "score",
                    pl.lit(None, pl.String).alias("message"),
                    "row",
                )
                .to_arrow()
            )
        return pa.concat_tables([_arrow(f, _FIRST) for f in fits])

    tell("checking the input on Spark")
    checked = pl.from_arrow(
        keyed.groupBy("_group").applyInArrow(first_pass, _ddl(_FIRST)).toArrow()
    )
    assert isinstance(checked, pl.DataFrame)  # noqa: S101
    errors = checked.filter(pl.col("_kind") == "error").sort("row")
    if errors.height:
        lines = errors.get_column("message").head(MAX_REPORTED).to_list()
        raise InputError("\n".join(lines))
    stats: dict[str, Any] = {}
    if checked.filter(pl.col("_kind") == "stats").height == 0:
        raise InputError(f"{path}: no rows: the file has no data rows, only a header")
    for text in checked.filter(pl.col("_kind") == "stats").get_column("message"):
        batch.add_counts(stats, json.loads(text))
    merged = [
        (str(a), str(b))
        for a, b in checked.filter(pl.col("_kind") == "merged")
        .select("message", "client_id")
        .sort("message")
        .iter_rows()
    ]
    present = tuple(sorted(k for k, v in stats.items() if isinstance(v, dict)))
    fit_rows = checked.filter(pl.col("_kind") == "fit")
    fit_clients = checked.filter(pl.col("_kind") == "fit_clients")
    counts_of = {}
    for code in present:
        rows = fit_rows.filter(pl.col("code") == code)
        counts_of[code] = trajectories.FitCounts(
            *trajectories.combine(  # the groups' equal triples joined
                rows.get_column("session").to_numpy(),
                rows.get_column("y1").to_numpy(),
                rows.get_column("score").to_numpy(),
                rows.get_column("row").to_numpy(),
            ),
            int(fit_clients.filter(pl.col("code") == code).get_column("row").sum()),
        )
    del checked, fit_rows, fit_clients
    tell("fitting expected trajectories")
    the_plan = batch.plan_from_parts(
        measures,
        present=present,
        fit_counts=counts_of,
        reference=reference,
        reference_source=reference_source,
        trajectory_model=trajectory_model,
    )
    shared = spark.sparkContext.broadcast(the_plan)

    def second_pass(table: pa.Table) -> pa.Table:
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)  # noqa: S101
        typed = check_long(frame.drop("_group"), measures, source=path)
        tables = batch.analyze_partition(typed, shared.value)
        parts = [
            t.with_columns(pl.col("client_id").cast(pl.String), pl.lit(name).alias("_table"))
            for name, t in tables.items()
            if t.height
        ]
        if not parts:
            return _frame({}, _TYPES)
        out_frame = pl.concat(parts, how="diagonal_relaxed")
        out_frame = out_frame.select(
            pl.col(c).cast(_POLARS[k])
            if c in out_frame.columns
            else pl.lit(None, _POLARS[k]).alias(c)
            for c, k in _TYPES.items()
        )
        return _arrow(out_frame.to_arrow(), _TYPES)

    tell("analysing on Spark")
    gathered = pl.from_arrow(
        keyed.groupBy("_group").applyInArrow(second_pass, _ddl(_TYPES)).toArrow()
    )
    assert isinstance(gathered, pl.DataFrame)  # noqa: S101
    keyed.unpersist()
    if not id_is_text:
        gathered = gathered.with_columns(pl.col("client_id").cast(pl.Int64))
    tables: dict[str, pl.DataFrame] = {}
    sort_keys = {
        "sudden_changes": ["measure", "client_id", "pregain_session", "kind"],
        "change": ["measure", "client_id"],
        "ruptures": ["measure", "client_id", "session"],
        "trajectories": ["measure", "client_id", "session"],
        "outcomes": ["client_id"],
    }
    for name, keys in sort_keys.items():
        if name == "outcomes" and not {"phq9", "gad7"} <= set(present):
            continue
        rows = gathered.filter(pl.col("_table") == name)
        tables[name] = (
            rows.sort(keys).select(batch.SCHEMAS[name]) if rows.height else batch.empty_table(name)
        )
    counts = batch.table_counts(tables)
    for name, table in tables.items():
        batch.write_table(table, out / f"{name}.{out_format}")
    summary = batch.write_summary(out, the_plan, stats, counts, source=path, merged=merged)
    return summary, merged
