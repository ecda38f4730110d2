from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bordin.measures.rupture_noise import noise_rates, reliable_threshold, within_client_sd
from bordin.measures.series import SeriesMatrix


def test_reproduces_the_review_figures_for_the_fixed_rule() -> None:
    # The independent review: the fixed 1.5-point rule flags 45% of noise-only clients at a
    # within-client SD of 0.6 and 83% at 0.9, and calls most of them repaired.
    at_06 = noise_rates(within_sd=0.6, threshold=1.5, sessions=12)
    at_09 = noise_rates(within_sd=0.9, threshold=1.5, sessions=12)
    assert at_06.clients_flagged == pytest.approx(0.45, abs=0.05)
    assert at_09.clients_flagged == pytest.approx(0.83, abs=0.05)
    assert at_09.repaired_share > 0.5


def test_reliable_threshold_holds_single_drops_near_two_and_a_half_percent() -> None:
    # A one-sided drop beyond 1.96 * sqrt(2) * SD happens in 2.5% of noise session pairs.
    r = noise_rates(
        within_sd=1.0, threshold=reliable_threshold(1.0), sessions=12, step=1e-6, low=-100, high=100
    )
    per_pair = r.ruptures_per_100_sessions * 12 / 11
    assert per_pair == pytest.approx(2.5, abs=0.4)


def test_within_client_sd_ignores_level_differences_and_missing() -> None:
    m = SeriesMatrix(
        client_ids=pl.Series("client_id", ["a", "b", "c"]),
        values=np.array([[7.0, np.nan, 9.0], [1.0, 3.0, np.nan], [5.0, np.nan, np.nan]]),
        last_session=np.array([3, 2, 1]),
    )
    # deviations: a: -1, +1; b: -1, +1; c: none -> SS 4, df = 5 scores - 3 clients = 2.
    assert within_client_sd(m) == pytest.approx(math.sqrt(2))
    with pytest.raises(ValueError, match="within_sd must be positive"):
        noise_rates(within_sd=0, threshold=1.5)


@settings(max_examples=15, deadline=None)
@given(st.floats(0.2, 1.2), st.floats(0.5, 3.0))
def test_a_higher_threshold_never_flags_more(sd: float, t: float) -> None:
    lower = noise_rates(within_sd=sd, threshold=t, clients=300, sessions=8)
    higher = noise_rates(within_sd=sd, threshold=t + 0.5, clients=300, sessions=8)
    assert higher.clients_flagged <= lower.clients_flagged
