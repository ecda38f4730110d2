"""The Spark engine (bordin.measures.spark) gives the local engine's files, row for row.

Spark runs in ``local[2]`` inside this process (one JVM for the module). Skipped, with the
reason, only when Java is absent; ``.ci/run`` installs Java 17 when it is missing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from bordin.measures import engine
from bordin.measures.batch import SCHEMAS
from bordin.measures.instruments import builtin_registry
from bordin.measures.longdata import InputError
from bordin.measures.synth import synthesize

pytestmark = [
    pytest.mark.skipif(
        shutil.which("java") is None,
        reason="Java is not installed (.ci/run installs openjdk-17-jre-headless)",
    ),
    pytest.mark.slow,
]
REG = builtin_registry()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic clinic data plus long series, odd ids (spaces, NFC forms, a formula)."""
    frame = synthesize(120, seed=12, max_sessions=20).select(
        pl.col("client_id").cast(pl.String), "session", "measure", "score"
    )
    rng = np.random.default_rng(12)
    extra = []
    for cid, n in (("long one", 300), ("=HYPERLINK(1)", 40), ("Zoe\u0308", 6), (" Zo\u00eb", 0)):
        for s in range(1, n + 1):
            for code, top in (("phq9", 27), ("gad7", 21), ("alliance", 7)):
                extra.append((cid, s, code, float(rng.integers(0, top + 1))))
    extra.append((" Zo\u00eb", 7, "phq9", 3.0))
    frame = pl.concat(
        [frame, pl.DataFrame(extra, schema=frame.schema, orient="row")], how="vertical_relaxed"
    )
    path = tmp_path_factory.mktemp("spark") / "clinic.csv"
    frame.write_csv(path)
    return path


def run(path: Path, out: Path, engine_name: str, **options: str) -> engine.Outcome:
    return engine.run(path, out, REG, engine=engine_name, spark_master="local[2]", **options)


def test_spark_gives_the_local_files_row_for_row(data: Path, tmp_path: Path) -> None:
    local = run(data, tmp_path / "local", "local")
    spark = run(data, tmp_path / "spark", "spark")
    assert local.merged == spark.merged and len(local.merged) == 2
    for name in SCHEMAS:
        got = (tmp_path / "spark" / f"{name}.csv").read_bytes()
        assert got == (tmp_path / "local" / f"{name}.csv").read_bytes(), name
    assert json.loads((tmp_path / "spark" / "summary.json").read_text()) == json.loads(
        (tmp_path / "local" / "summary.json").read_text()
    )


def test_spark_on_parquet_with_parquet_output(data: Path, tmp_path: Path) -> None:
    parquet = tmp_path / "ints.parquet"
    synthesize(80, seed=3, max_sessions=30).write_parquet(parquet)  # integer client ids
    run(parquet, tmp_path / "local", "local", out_format="parquet")
    run(parquet, tmp_path / "spark", "spark", out_format="parquet")
    for name in SCHEMAS:
        got = pl.read_parquet(tmp_path / "spark" / f"{name}.parquet")
        expected = pl.read_parquet(tmp_path / "local" / f"{name}.parquet")
        assert got.equals(expected.cast(got.schema)), name  # type: ignore[arg-type]


def test_spark_reports_bad_rows_by_their_number(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    rows = [f"c{i},1,phq9,{i % 20}" for i in range(50)]
    rows[37] = "c37,1e20,phq9,4"
    bad.write_text("client_id,session,measure,score\n" + "\n".join(rows) + "\n")
    with pytest.raises(InputError, match=r"row 38: session 1e20 is above the highest"):
        run(bad, tmp_path / "out", "spark")
    assert not (tmp_path / "out").exists()
