from __future__ import annotations

import numpy as np
import polars as pl

from bordin.measures.alliance_outcome import estimate, pairs

WITHIN, BETWEEN = -1.0, -0.5


def simulate(seed: int, n: int = 60, sessions: int = 8) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Alliance and outcome series with planted within- and between-client effects."""
    rng = np.random.default_rng(seed)
    own_mean = rng.normal(7, 1, n)
    u = rng.normal(0, 0.5, n)
    alliance = own_mean[:, None] + rng.normal(0, 1, (n, sessions))
    used_mean = alliance[:, : sessions - 1].mean(axis=1)
    y = np.zeros((n, sessions))
    y[:, 0] = rng.normal(15, 3, n)
    for t in range(sessions - 1):
        y[:, t + 1] = (
            5
            + WITHIN * (alliance[:, t] - used_mean)
            + BETWEEN * (used_mean - 7)
            + 0.6 * y[:, t]
            + u
            + rng.normal(0, 1.5, n)
        )
    client = np.repeat(np.arange(n), sessions)
    session = np.tile(np.arange(1, sessions + 1), n)
    a = pl.DataFrame({"client_id": client, "session": session, "score": alliance.ravel()})
    o = pl.DataFrame({"client_id": client, "session": session, "score": y.ravel()})
    return a, o


def test_pairs_need_consecutive_sessions() -> None:
    a = pl.DataFrame({"client_id": [1, 1, 1, 2], "session": [1, 2, 3, 1], "score": [7.0, 8, 9, 5]})
    y = pl.DataFrame(
        {"client_id": [1, 1, 1, 2, 2], "session": [1, 2, 4, 1, 2], "score": [20.0, 15, 9, 10, 8]}
    )
    # Client 1: 1 -> 2 pairs (2 has no session 3 outcome); client 2: 1 -> 2.
    assert pairs(a, y).rows() == [(1, 1, 7.0, 20.0, 15.0), (2, 1, 5.0, 10.0, 8.0)]


def test_too_little_data_says_why() -> None:
    a, o = simulate(1, n=10)
    res = estimate(pairs(a, o))
    assert not res.shown
    assert "at least 20 clients" in res.why_not


def test_between_and_within_are_separated() -> None:
    a, o = simulate(7, n=200)
    res = estimate(pairs(a, o))
    assert res.shown
    assert abs(res.within - WITHIN) < 0.15
    assert abs(res.between - BETWEEN) < 0.25


def test_planted_coefficients_recovered_in_at_least_45_of_50_simulations() -> None:
    within_hits = between_hits = 0
    for seed in range(50):
        a, o = simulate(seed)
        res = estimate(pairs(a, o))
        within_hits += res.within_low <= WITHIN <= res.within_high
        between_hits += res.between_low <= BETWEEN <= res.between_high
    assert within_hits >= 45, within_hits
    assert between_hits >= 45, between_hits
