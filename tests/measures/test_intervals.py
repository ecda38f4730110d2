from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from statsmodels.stats.proportion import proportion_confint

from bordin.measures.intervals import annotate_summary, rate_with_interval, wilson


def test_hand_worked_wilson() -> None:
    # k = 8, n = 10, z = 1.96: centre = (0.8 + 0.19208) / 1.38416 = 0.71673,
    # half = 1.96 / 1.38416 * sqrt(0.016 + 0.0096040) = 0.22656 -> [0.4902, 0.9433].
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_matches_statsmodels_and_contains_the_rate(kn: tuple[int, int]) -> None:
    k, n = kn
    low, high = wilson(k, n)
    ref_low, ref_high = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert low == pytest.approx(ref_low, abs=1e-9)
    assert high == pytest.approx(ref_high, abs=1e-9)
    assert 0 <= low <= k / n <= high <= 1


def test_bad_input_says_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="n must be at least 1"):
        wilson(0, 0)
    with pytest.raises(ValueError, match=r"k must be in 0\.\.n"):
        wilson(5, 3)
    assert rate_with_interval(0, 0)["ci_low"] is None


def test_every_summary_rate_gets_an_interval() -> None:
    summary = {
        "change": {
            "x": {
                "clients": 10,
                "recovered": 5,
                "improved": 3,
                "deteriorated": 0,
                "reliable_improvement_rate": 0.8,
                "deterioration_rate": 0.0,
            }
        },
        "ruptures": {"alliance": {"repaired": 0, "unrepaired": 0, "repair_rate": None}},
        "outcomes": {
            "clients": 4,
            "case_at_start": 2,
            "recovered": 1,
            "reliable_improvement": 2,
            "reliable_deterioration": 0,
            "reliable_recovery": 1,
            "recovery_rate": 0.5,
            "reliable_improvement_rate": 0.5,
            "reliable_deterioration_rate": 0.0,
            "reliable_recovery_rate": 0.5,
        },
    }
    out = annotate_summary(summary)
    assert out["change"]["x"]["reliable_improvement_rate_ci"] == [0.4902, 0.9433]
    assert out["change"]["x"]["deterioration_rate_ci"][0] == 0.0
    assert out["ruptures"]["alliance"]["repair_rate_ci"] is None
    for key in ("recovery_rate", "reliable_improvement_rate", "reliable_recovery_rate"):
        assert len(out["outcomes"][f"{key}_ci"]) == 2
