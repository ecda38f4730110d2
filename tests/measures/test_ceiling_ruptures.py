from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from bordin.measures.ceiling_ruptures import FLOOR, client_thresholds, detect_scaled
from bordin.measures.ruptures import detect
from bordin.measures.series import SeriesMatrix


def matrix(rows: list[list[float]]) -> SeriesMatrix:
    values = np.array(rows, dtype=np.float64)
    return SeriesMatrix(
        client_ids=pl.Series("client_id", [f"c{i}" for i in range(len(rows))]),
        values=values,
        last_session=np.full(len(rows), values.shape[1], dtype=np.int64),
    )


def test_steady_client_near_the_ceiling_is_caught_that_the_fixed_rule_misses() -> None:
    m = matrix([[10, 9.75, 10, 10, 8.75, 10], [6, 8, 5.5, 7.5, 6, 8]])
    assert detect(m, threshold=1.5).filter(pl.col("client_id") == "c0").height == 0
    scaled = detect_scaled(m, threshold=1.5)
    assert scaled.filter(pl.col("client_id") == "c0").rows() == [("c0", 5, 4, 1.25, "repaired", 6)]


def test_short_series_keep_the_fixed_threshold_and_the_floor_holds() -> None:
    m = matrix([[9, 9, 9, 9, 9, 9], [5, 8, 4, np.nan, np.nan, np.nan], [7, 9, 6, 8, 5, 9]])
    t = client_thresholds(m, threshold=1.5)
    assert t[0] == 1.5 * FLOOR  # never varies: the floor, not zero
    assert t[1] == 1.5  # three scores: fixed


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(0, 3), min_size=6, max_size=6),
    st.lists(st.floats(0, 5), min_size=2, max_size=6),
)
def test_same_variability_everywhere_gives_the_fixed_rule(
    pattern: list[float], levels: list[float]
) -> None:
    # Every client has the same deviations around their own level, so s_i == s and T_i == T.
    if np.std(pattern) < 0.2:
        return
    m = matrix([[lv + x for x in pattern] for lv in levels])
    fixed = detect(m, threshold=1.5)
    scaled = detect_scaled(m, threshold=1.5)
    assert (
        scaled.select("client_id", "session", "status").rows()
        == fixed.select("client_id", "session", "status").rows()
    )
