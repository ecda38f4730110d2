from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from bordin.measures.therapist_effects import MIN_CLIENTS, estimate, f_interval


def simulate(seed: int, icc: float, k: int = 20, m: int = 12) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    therapist = np.repeat(np.arange(k), m)
    u = rng.normal(0, np.sqrt(icc), k)
    intake = rng.normal(16, 4, k * m)
    final = 2 + 0.5 * intake + 3 * (u[therapist] + rng.normal(0, np.sqrt(1 - icc), k * m))
    return pl.DataFrame(
        {"therapist_id": [f"t{t:02d}" for t in therapist], "baseline": intake, "final": final}
    )


def test_hand_worked_f_interval() -> None:
    # Groups (1,2,3), (7,8,9), (4,5,6): MS_between = 54 / 2 = 27, MS_within = 6 / 6 = 1,
    # F = 27, n0 = 3; F_L = 27 / F(.975; 2, 6) = 27 / 7.2599 = 3.719 -> (3.719 - 1) / (3.719 + 2)
    low, high = f_interval(
        np.array([1.0, 2, 3, 7, 8, 9, 4, 5, 6]), np.array([0, 0, 0, 1, 1, 1, 2, 2, 2]), extra_df=0
    )
    assert low == pytest.approx(2.719 / 5.719, abs=1e-3)
    assert high == pytest.approx(0.997, abs=1e-3)


def test_refuses_too_few_therapists_and_says_why() -> None:
    small = simulate(1, 0.1, k=8, m=12)
    res = estimate(small)
    assert not res.shown
    assert "at least 10 therapists" in res.why_not
    assert "8 such therapist" in res.why_not
    thin = simulate(1, 0.1, k=20, m=MIN_CLIENTS - 1)
    assert "0 such therapist" in estimate(thin).why_not


def test_shrunken_estimates_have_intervals_and_no_raw_ranking() -> None:
    res = estimate(simulate(3, 0.2))
    assert res.shown and res.therapists == 20 and res.clients == 240
    assert 0 <= res.icc_low <= res.icc <= res.icc_high <= 1
    for e in res.estimates:
        assert e["low"] < e["estimate"] < e["high"]
    # Shrinkage: the spread of the estimates is below the spread of raw therapist means.
    frame = simulate(3, 0.2)
    raw = frame.group_by("therapist_id").agg(
        (pl.col("final") - res.slope * (pl.col("baseline") - pl.col("baseline").mean()))
        .mean()
        .alias("m")
    )
    assert np.std([e["estimate"] for e in res.estimates]) < raw.get_column("m").std()


@pytest.mark.slow
def test_planted_icc_is_recovered_in_at_least_45_of_50_simulations() -> None:
    planted = 0.15
    hits = 0
    for seed in range(50):
        res = estimate(simulate(seed, planted))
        hits += res.icc_low <= planted <= res.icc_high
    assert hits >= 45, hits


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="Rscript (r-cran-lme4) not installed")
def test_icc_matches_lme4(tmp_path: Path) -> None:
    frame = simulate(11, 0.15)
    path = tmp_path / "d.csv"
    frame.write_csv(path)
    script = (
        "suppressMessages(library(lme4));"
        f"d <- read.csv('{path}'); d$x <- d$baseline - mean(d$baseline);"
        "m <- lmer(final ~ x + (1 | therapist_id), data = d, REML = TRUE);"
        "v <- as.data.frame(VarCorr(m))$vcov; cat(v[1] / sum(v))"
    )
    done = subprocess.run(
        ["Rscript", "-e", script], capture_output=True, text=True, check=False, timeout=120
    )
    if done.returncode != 0:
        pytest.skip(f"lme4 not available: {done.stderr.strip()[:200]}")
    assert estimate(frame).icc == pytest.approx(float(done.stdout), abs=1e-3)
