"""Wilson score interval for a proportion (every rate Bordin reports carries one).

Source: Wilson, E. B. (1927). Probable inference, the law of succession, and statistical
inference. *Journal of the American Statistical Association*, 22(158), 209-212; recommended
over the Wald interval by Brown, Cai & DasGupta (2001), *Statistical Science*, 16(2), 101-133.

For ``k`` successes in ``n`` trials, ``p = k / n`` and ``z = 1.96`` (95%)::

    centre = (p + z^2 / (2n)) / (1 + z^2 / n)
    half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / (4 n^2))
    interval = [centre - half, centre + half]

The interval stays inside [0, 1] and is not degenerate at ``k = 0`` or ``k = n``.

>>> [round(x, 4) for x in wilson(8, 10)]
[0.4902, 0.9433]
>>> [round(x, 4) for x in wilson(0, 20)]
[0.0, 0.1611]
>>> rate_with_interval(3, 4)
{'n': 4, 'count': 3, 'rate': 0.75, 'ci_low': 0.3006, 'ci_high': 0.9544, 'ci_method': 'Wilson 95%'}
>>> rate_with_interval(0, 0)["rate"] is None
True
"""

from __future__ import annotations

import math
from typing import Any

Z_95 = 1.959963984540054
METHOD = "Wilson 95%"


def wilson(k: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval ``(low, high)`` for ``k`` successes out of ``n`` (``n >= 1``)."""
    if n < 1:
        raise ValueError(f"wilson: n must be at least 1, got {n}")
    if not 0 <= k <= n:
        raise ValueError(f"wilson: k must be in 0..n, got k={k}, n={n}")
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


def rate_with_interval(k: int, n: int, digits: int = 4) -> dict[str, Any]:
    """``{"n", "count", "rate", "ci_low", "ci_high", "ci_method"}``; ``None``s when ``n == 0``."""
    if n == 0:
        return {
            "n": 0,
            "count": k,
            "rate": None,
            "ci_low": None,
            "ci_high": None,
            "ci_method": METHOD,
        }
    low, high = wilson(k, n)
    return {
        "n": n,
        "count": k,
        "rate": round(k / n, digits),
        "ci_low": round(low, digits),
        "ci_high": round(high, digits),
        "ci_method": METHOD,
    }


#: Where each rate of ``summary.json`` comes from: section, rate key, numerator, denominator
#: (a key, or a tuple of keys that are summed).
_SUMMARY_RATES: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("change", "reliable_improvement_rate", ("recovered", "improved"), ("clients",)),
    ("change", "deterioration_rate", ("deteriorated",), ("clients",)),
    (
        "sudden_changes",
        "gain_rate",
        ("clients_with_gain",),
        ("clients_with_four_or_more_sessions",),
    ),
    ("trajectories", "not_on_track_share", ("not_on_track",), ("sessions",)),
    ("trajectories", "clients_not_on_track_share", ("clients_not_on_track",), ("clients",)),
    ("ruptures", "repair_rate", ("repaired",), ("repaired", "unrepaired")),
)
_OUTCOME_RATES: tuple[tuple[str, str, str], ...] = (
    ("recovery_rate", "recovered", "case_at_start"),
    ("reliable_improvement_rate", "reliable_improvement", "clients"),
    ("reliable_deterioration_rate", "reliable_deterioration", "clients"),
    ("reliable_recovery_rate", "reliable_recovery", "case_at_start"),
)


def annotate_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """Add ``<rate>_ci: [low, high]`` (Wilson 95%) beside every rate of a batch summary.

    >>> s = {"change": {"phq9": {"clients": 10, "recovered": 5, "improved": 3,
    ...      "deteriorated": 1, "reliable_improvement_rate": 0.8, "deterioration_rate": 0.1}}}
    >>> annotate_summary(s)["change"]["phq9"]["reliable_improvement_rate_ci"]
    [0.4902, 0.9433]
    """

    def put(row: dict[str, Any], key: str, k: int, n: int) -> None:
        if n > 0:
            row[f"{key}_ci"] = [round(x, 4) for x in wilson(k, n)]
        else:
            row[f"{key}_ci"] = None

    for section, key, num, den in _SUMMARY_RATES:
        for row in (summary.get(section) or {}).values():
            if isinstance(row, dict) and key in row and all(c in row for c in (*num, *den)):
                put(row, key, sum(int(row[c]) for c in num), sum(int(row[c]) for c in den))
    outcomes = summary.get("outcomes")
    if isinstance(outcomes, dict):
        for key, num_key, den_key in _OUTCOME_RATES:
            if key in outcomes:
                put(outcomes, key, int(outcomes[num_key]), int(outcomes[den_key]))
    summary["rate_intervals"] = METHOD + " (Wilson 1927), one per rate, key <rate>_ci"
    return summary
