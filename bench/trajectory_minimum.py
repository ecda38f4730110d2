"""Simulation behind :data:`bordin.measures.growth.MIN_REFERENCE_CLIENTS`.

For each reference size, seeded references of that many ``bordin synth`` clients (PHQ-9) are
drawn; the growth model and the least-squares curve (with its session bands) are fitted on each
and judged on 3,000 other clients of the same population. Prints, per size, the range of the
out-of-sample share of sessions flagged not on track (nominal 10%) and of clients flagged at
least once. Run: ``.venv/bin/python -m bench.trajectory_minimum [seeds]``.
"""

from __future__ import annotations

import sys

import numpy as np
import polars as pl

from bordin.measures import growth, synth, trajectories
from bordin.measures.series import SeriesMatrix

SIZES = (25, 50, 100, 200, 500, 1000)
TEST_CLIENTS = 3000


def _subset(matrix: SeriesMatrix, idx: np.ndarray) -> SeriesMatrix:
    idx = np.sort(idx)
    return SeriesMatrix(matrix.client_ids.gather(idx), matrix.values[idx], matrix.last_session[idx])


def main(seeds: int = 10) -> None:
    pool = (
        synth.synthesize(TEST_CLIENTS + max(SIZES) * 2, seed=13)
        .filter(pl.col("measure") == "phq9")
        .select("client_id", "session", "score")
    )
    matrix = SeriesMatrix.from_long(pool)
    print(f"{'size':>6} {'growth sessions':>18} {'OLS sessions':>16} {'growth clients':>16}")
    for size in SIZES:
        rates: dict[str, list[float]] = {"growth": [], "ols": [], "clients": []}
        for seed in range(seeds):
            order = np.random.default_rng(seed).permutation(matrix.n_clients)
            test = _subset(matrix, order[:TEST_CLIENTS])
            ref = _subset(matrix, order[TEST_CLIENTS : TEST_CLIENTS + size])
            g = growth.fit(ref, lower_is_better=True, scale_min=0, scale_max=27, min_clients=1)
            o = trajectories.fit(ref, lower_is_better=True)
            cg = growth.judge(g, test, fit_clients=size)
            co = growth.judge(o, test, fit_clients=size)
            rates["growth"].append(cg.flagged_sessions / cg.sessions)
            rates["ols"].append(co.flagged_sessions / co.sessions)
            rates["clients"].append(cg.flagged_clients / cg.clients)

        def span(v: list[float]) -> str:
            return f"{100 * min(v):.1f}-{100 * max(v):.1f}%"

        print(
            f"{size:>6} {span(rates['growth']):>18} {span(rates['ols']):>16} "
            f"{span(rates['clients']):>16}",
            flush=True,
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
