from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bordin.measures.effect_sizes import d_variance, pre_post


def test_hand_worked_change_and_d() -> None:
    pre = np.array([20.0, 18.0, 25.0, 15.0])
    post = np.array([10.0, 12.0, 15.0, 11.0])
    res = pre_post(pre, post, lower_is_better=True)
    # Differences -10, -6, -10, -4: mean -7.5, SD 3.0; t(0.975, 3) = 3.182 -> half 4.774.
    assert res.mean_change == -7.5
    assert res.change_low == pytest.approx(-12.274, abs=1e-3)
    assert res.change_high == pytest.approx(-2.726, abs=1e-3)
    # SD at intake sqrt(53 / 3) = 4.2032, d = 7.5 / 4.2032 = 1.7844.
    assert res.d == pytest.approx(1.7844, abs=1e-4)
    r = float(np.corrcoef(pre, post)[0, 1])
    se = math.sqrt(2 * (1 - r) / 4 + 1.7844**2 / 8)
    assert res.d_low == pytest.approx(res.d - 1.96 * se, abs=1e-3)


def test_bootstrap_is_reproducible_and_brackets_d() -> None:
    rng = np.random.default_rng(1)
    pre = rng.normal(16, 4, 80)
    post = pre - rng.normal(5, 4, 80)
    one = pre_post(pre, post, lower_is_better=True, ci="bootstrap")
    two = pre_post(pre, post, lower_is_better=True, ci="bootstrap")
    assert (one.d_low, one.d_high) == (two.d_low, two.d_high)
    assert one.d_low < one.d < one.d_high
    assert "seed 2026" in one.d_method


def test_errors_say_what_to_fix() -> None:
    with pytest.raises(ValueError, match="at least 3 clients"):
        pre_post(np.ones(2), np.ones(2), lower_is_better=True)
    with pytest.raises(ValueError, match="every intake score is the same"):
        pre_post(np.ones(5), np.zeros(5), lower_is_better=True)
    assert d_variance(0.0, 10, 1.0) == 0.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 27), st.floats(0, 27)), min_size=3, max_size=30))
def test_direction_flips_the_sign_of_d(pairs: list[tuple[float, float]]) -> None:
    pre = np.array([p for p, _ in pairs])
    post = np.array([q for _, q in pairs])
    if np.std(pre) < 1e-6:
        return
    low = pre_post(pre, post, lower_is_better=True)
    high = pre_post(pre, post, lower_is_better=False)
    assert low.d == pytest.approx(-high.d)
    assert low.change_low <= low.mean_change <= low.change_high
