from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bordin.measures.rci_variants import (
    edwards_nunnally,
    hageman_arrindell,
    hageman_arrindell_index,
    jacobson_truax,
)


def test_hand_worked_edwards_nunnally() -> None:
    # M1 = 25, SD1 = 10, r = 0.75: half-width 2 * 10 * 0.5 = 10. x1 = 35 -> T1 = 32.5,
    # so a reliable improvement needs x2 < 22.5; x2 = 22 counts, x2 = 23 does not.
    args = {"mean_pre": 25.0, "sd_pre": 10.0, "reliability": 0.75, "lower_is_better": True}
    pre = np.array([35.0, 35.0, 10.0])
    # x1 = 10 -> T1 = 13.75, band 3.75..23.75: x2 = 24 is reliably worse.
    assert edwards_nunnally(pre, np.array([22.0, 23.0, 24.0]), **args).tolist() == [1, 0, -1]
    # Jacobson & Truax on the same: S_diff = sqrt(2) * 5 = 7.071, threshold 13.86 points.
    jt = jacobson_truax(
        pre, np.array([22.0, 23.0, 24.0]), sd_pre=10, reliability=0.75, lower_is_better=True
    ).tolist()
    assert jt == [0, 0, -1]  # 10 -> 24 is 14 points worse


def test_hand_worked_hageman_arrindell() -> None:
    pre = np.array([20.0, 22.0, 24.0, 26.0])
    post = np.array([10.0, 14.0, 12.0, 20.0])
    # SD1^2 = 6.667, SD2^2 = 18.667, r12 = 0.8367 (cross term 18.667); with r = 0.8:
    # r_dd = (0.8 * 25.333 - 18.667) / (25.333 - 18.667) = 1.6 / 6.667 = 0.24.
    sd1, sd2 = float(np.std(pre, ddof=1)), float(np.std(post, ddof=1))
    r12 = float(np.corrcoef(pre, post)[0, 1])
    r_dd = (0.8 * sd1**2 + 0.8 * sd2**2 - 2 * r12 * sd1 * sd2) / (
        sd1**2 + sd2**2 - 2 * r12 * sd1 * sd2
    )
    se2 = (sd1**2 + sd2**2) * 0.2
    expected = ((post - pre) * r_dd + (-9.0) * (1 - r_dd)) / math.sqrt(r_dd * se2)
    got = hageman_arrindell_index(pre, post, reliability=0.8)
    assert got == pytest.approx(expected)
    assert r_dd == pytest.approx(0.24)
    assert hageman_arrindell(pre, post, reliability=0.8, lower_is_better=True).tolist() == [
        1,
        1,
        1,
        1,
    ]


def test_errors_say_what_to_fix() -> None:
    with pytest.raises(ValueError, match="reliability must be in"):
        jacobson_truax(np.ones(2), np.ones(2), sd_pre=1, reliability=1.0, lower_is_better=True)
    with pytest.raises(ValueError, match="at least three clients"):
        hageman_arrindell_index(np.ones(2), np.ones(2), reliability=0.8)


@given(st.lists(st.floats(0, 60), min_size=1, max_size=20), st.floats(0.5, 0.95))
def test_no_change_is_never_reliable(scores: list[float], r: float) -> None:
    x = np.array(scores)
    assert not jacobson_truax(x, x, sd_pre=8, reliability=r, lower_is_better=True).any()


@given(st.floats(0, 60), st.floats(0, 60), st.floats(0.5, 0.95), st.booleans())
def test_direction_flips_with_the_scale(a: float, b: float, r: float, low: bool) -> None:
    pre, post = np.array([a]), np.array([b])
    one = jacobson_truax(pre, post, sd_pre=8, reliability=r, lower_is_better=low)
    other = jacobson_truax(pre, post, sd_pre=8, reliability=r, lower_is_better=not low)
    assert one.tolist() == (-other).tolist()
