"""Synthetic clinic data for demos, tests and benchmarks (``bordin synth``).

The generator is plainly a simulation, not a model of any real service; it only aims to look
like routine-outcome data so that every analysis has something to find:

* each client has 3 to ``max_sessions`` sessions, some missed (missing values), and a therapist;
* PHQ-9 and GAD-7 follow a log-linear recovery from an intake score (the shape the
  expected-trajectory model assumes; Finch, Lambert & Schaalje 2001), with client-level
  variation, a small share of deteriorating clients, therapist effects and noise;
* about one client in five has a sudden gain (a large, lasting drop between two sessions);
* the alliance check-in (0-10 mean in quarter points) drifts upwards; about a third of clients
  have a dip of 1.6-3 points, most repaired within two sessions, some not;
* a stronger alliance goes with a little more improvement (the alliance-outcome association;
  Flückiger et al. 2018), so the analyses have a realistic link to find.

Everything is vectorised; a million clients take a few seconds.

>>> frame = synthesize(50, seed=1)
>>> sorted(frame["measure"].unique().to_list())
['alliance', 'gad7', 'phq9']
>>> frame.columns
['client_id', 'therapist_id', 'session', 'measure', 'score', 'date']
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

MEASURES = ("phq9", "gad7", "alliance")


def synthesize(
    n_clients: int,
    *,
    seed: int = 2026,
    max_sessions: int = 20,
    clients_per_therapist: int = 25,
) -> pl.DataFrame:
    """Long-format synthetic data: ``client_id, therapist_id, session, measure, score, date``."""
    if n_clients < 1:
        raise ValueError("n_clients must be at least 1")
    if max_sessions < 3:
        raise ValueError("max_sessions must be at least 3")
    rng = np.random.default_rng(seed)
    n, s_max = n_clients, max_sessions
    session = np.arange(1, s_max + 1, dtype=np.float64)[None, :]
    log_s = np.log(session)

    # Course length: most clients stay 6..max, some leave early.
    early = rng.random(n) < 0.15
    n_sessions = np.where(
        early, rng.integers(3, 6, n), rng.integers(min(6, s_max), s_max + 1, n)
    ).clip(3, s_max)
    attended = session <= n_sessions[:, None]
    missed = (rng.random((n, s_max)) < 0.07) & (session > 1) & (session < n_sessions[:, None])
    present = attended & ~missed

    n_therapists = max(1, -(-n // clients_per_therapist))
    therapist = rng.integers(0, n_therapists, n)
    therapist_effect = rng.normal(0.0, 0.6, n_therapists)[therapist]

    # Alliance: baseline, gentle growth, dips with or without repair.
    base = rng.normal(7.2, 1.1, n)
    alliance = base[:, None] + 0.15 * log_s + rng.normal(0.0, 0.35, (n, s_max))
    dip = rng.random(n) < 0.33
    dip_at = rng.integers(3, np.maximum(n_sessions, 4), n)
    dip_size = rng.uniform(1.6, 3.0, n)
    repaired = rng.random(n) < 0.6
    repair_len = rng.integers(1, 3, n)
    after_dip = session >= dip_at[:, None]
    still_low = ~repaired[:, None] | (session < (dip_at + repair_len)[:, None])
    alliance -= np.where(dip[:, None] & after_dip & still_low, dip_size[:, None], 0.0)
    alliance = np.clip(np.round(alliance * 4) / 4, 0, 10)

    # PHQ-9 and GAD-7: log-linear recovery, sudden gains, deteriorators.
    intake = np.clip(rng.normal(16.0, 4.5, n), 5, 27)
    slope = rng.normal(3.0, 1.5, n) + therapist_effect + 0.4 * (base - 7.2)
    deteriorate = rng.random(n) < 0.08
    slope = np.where(deteriorate, rng.normal(-2.0, 1.0, n), slope)
    gain = rng.random(n) < 0.2
    gain_at = rng.integers(3, np.maximum(n_sessions - 1, 4), n)
    gain_size = np.where(gain, rng.uniform(6.0, 10.0, n), 0.0)
    gain_drop = np.where(session > gain_at[:, None], gain_size[:, None], 0.0)
    phq = intake[:, None] - slope[:, None] * log_s - gain_drop + rng.normal(0, 1.8, (n, s_max))
    phq = np.clip(np.round(phq), 0, 27)
    gad_intake = np.clip(0.62 * intake + rng.normal(2.0, 2.5, n), 0, 21)
    gad = (
        gad_intake[:, None]
        - 0.75 * slope[:, None] * log_s
        - 0.6 * gain_drop
        + rng.normal(0, 1.6, (n, s_max))
    )
    gad = np.clip(np.round(gad), 0, 21)

    stacked = np.stack([phq, gad, alliance], axis=2)  # (client, session, measure)
    rows, cols, meas = np.nonzero(np.broadcast_to(present[:, :, None], stacked.shape))
    start = rng.integers(0, 365, n)
    day = start[:, None] + 7 * (session.astype(np.int64) - 1)
    day = day + rng.integers(-2, 3, (n, s_max)) * (session > 1)
    origin = np.datetime64(date(2025, 1, 6), "D")
    therapist_ids = pl.Series([f"t{k + 1:03d}" for k in range(n_therapists)])
    return pl.DataFrame(
        {
            "client_id": rows.astype(np.int64) + 1,
            "therapist_id": therapist_ids.gather(therapist[rows]),
            "session": cols.astype(np.int64) + 1,
            "measure": pl.Series(MEASURES).gather(meas),
            "score": stacked[rows, cols, meas],
            "date": origin + day[rows, cols].astype("timedelta64[D]"),
        }
    )


def write(frame: pl.DataFrame, path: Path) -> None:
    """Write CSV or Parquet, chosen by the file's extension."""
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in (".parquet", ".pq"):
        frame.write_parquet(path)
    elif suffix == ".csv":
        frame.write_csv(path)
    else:
        raise ValueError(f"{path}: unsupported extension '{suffix}'; use .csv or .parquet")
