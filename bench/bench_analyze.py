"""Benchmark ``bordin analyze`` at scale against a naive per-client loop in the same run.

Usage (from the repository root)::

    .venv/bin/python bench/bench_analyze.py                 # 1,000,000 clients (the target)
    .venv/bin/python bench/bench_analyze.py --clients 20000 # a quick run

What it measures, all in one run on this machine:

1. ``bordin analyze`` on synthetic data (``bordin synth``: 3 measures, up to 20 sessions) read
   from Parquet, as a separate process: wall time and peak resident memory of that process.
2. The baseline: a naive per-client Python loop (the plain rule implementations the tests use
   as oracles) for sudden gains on PHQ-9 and GAD-7 and ruptures on the alliance, over a sample
   of clients.
3. The vectorised engine on the same sample and the same methods.

It prints throughput and the ratios. Nothing here is asserted: speed is reported, not tested.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.measures.test_ruptures import oracle as rupture_loop  # noqa: E402
from tests.measures.test_sudden_gains import oracle as sudden_gain_loop  # noqa: E402

from bordin.measures import ruptures, sudden_gains  # noqa: E402
from bordin.measures.instruments import builtin_registry  # noqa: E402
from bordin.measures.series import SeriesMatrix  # noqa: E402
from bordin.measures.synth import synthesize, write  # noqa: E402

#: The issue's figure for the R package suddengains on this kind of machine: about 30 s for
#: 1,000 clients. Quoted, not measured here (R is not available on these machines).
R_SUDDENGAINS_SECONDS_PER_CLIENT = 30.0 / 1000


def run_analyze(data: Path, out: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (GiB) of one ``bordin analyze`` process."""
    cmd = [sys.executable, "-m", "bordin.cli", "analyze", str(data), "--out", str(out)]
    started = time.perf_counter()
    # This interpreter running bordin on our own files: fixed argv, no shell.
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(
            f"bordin analyze failed: {proc.stderr.read().decode() if proc.stderr else ''}"
        )
    return seconds, usage.ru_maxrss / 1024**2  # ru_maxrss is in KiB on Linux


def per_client_series(sample: pl.DataFrame) -> dict[tuple[object, str], list[float | None]]:
    series: dict[tuple[object, str], list[float | None]] = {}
    for (client, measure), group in sample.group_by("client_id", "measure"):
        sessions = group.get_column("session").to_list()
        scores: list[float | None] = [None] * max(sessions)
        for s, v in zip(sessions, group.get_column("score").to_list(), strict=True):
            scores[s - 1] = v
        series[(client, str(measure))] = scores
    return series


def naive_loop(series: dict[tuple[object, str], list[float | None]]) -> float:
    reg = builtin_registry()
    started = time.perf_counter()
    for (_, measure), scores in series.items():
        inst = reg[measure]
        if inst.role == "alliance":
            rupture_loop(scores, threshold=inst.rupture_threshold or 1.5)
        else:
            sudden_gain_loop(
                [None if v is None else int(v) for v in scores],
                cutoff=inst.effective_sudden_gain_cutoff or 1,
                lower_is_better=inst.lower_is_better,
            )
    return time.perf_counter() - started


def vectorised(sample: pl.DataFrame) -> float:
    reg = builtin_registry()
    started = time.perf_counter()
    for (measure,), part in sample.partition_by("measure", as_dict=True).items():
        inst = reg[str(measure)]
        matrix = SeriesMatrix.from_long(part)
        if inst.role == "alliance":
            ruptures.detect(matrix, threshold=inst.rupture_threshold or 1.5)
        else:
            sudden_gains.identify(
                matrix,
                cutoff=inst.effective_sudden_gain_cutoff or 1,
                lower_is_better=inst.lower_is_better,
            )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=2_000, help="clients in the naive loop")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    data = args.workdir / f"synthetic-{args.clients}.parquet"
    if not data.exists():
        started = time.perf_counter()
        write(synthesize(args.clients, seed=2026, max_sessions=20), data)
        print(f"generated {data.name} in {time.perf_counter() - started:.1f} s")
    rows = pl.scan_parquet(data).select(pl.len()).collect().item()

    seconds, peak_gib = run_analyze(data, args.workdir / f"out-{args.clients}")
    per_client = seconds / args.clients

    sample = pl.scan_parquet(data).filter(pl.col("client_id") <= args.sample).collect()
    series = per_client_series(sample)
    naive = naive_loop(series)
    fast = vectorised(sample)
    naive_per_client = naive / args.sample

    print(
        f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, polars {pl.__version__}"
    )
    print(
        f"data: {args.clients:,} clients, {rows:,} scores (3 measures, up to 20 sessions), Parquet"
    )
    print(f"bordin analyze (whole pipeline, own process): {seconds:.1f} s wall,", end=" ")
    print(f"peak RSS {peak_gib:.2f} GiB")
    print(f"  throughput: {args.clients / seconds:,.0f} clients/s, {rows / seconds:,.0f} scores/s")
    print(f"  per client: {per_client * 1e6:.1f} µs")
    print(f"naive per-client Python loop (sudden gains + ruptures only), {args.sample:,} clients:")
    print(f"  {naive:.2f} s, {naive_per_client * 1e6:.0f} µs per client")
    print(f"vectorised engine, same {args.sample:,} clients and methods: {fast:.3f} s")
    print(f"ratio naive loop / vectorised, same sample and methods: {naive / fast:,.0f}x")
    whole_ratio = naive_per_client / per_client
    print(f"ratio naive loop per client / whole analyze per client: {whole_ratio:,.0f}x")
    print(
        "ratio R suddengains (30 ms per client, the issue's figure, not measured here) / "
        f"whole analyze per client: {R_SUDDENGAINS_SECONDS_PER_CLIENT / per_client:,.0f}x"
    )


if __name__ == "__main__":
    main()
