"""``bordin analyze --engine spark``: the per-partition analysis on Apache Spark (PySpark 4)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from bordin.measures import batch
from bordin.measures.instruments import Instrument
from bordin.measures.longdata import InputError


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
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Not yet: see the issue."""
    raise InputError("--engine spark needs PySpark: pip install 'bordin[spark]'")
