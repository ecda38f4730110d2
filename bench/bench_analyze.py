"""Benchmark ``bordin analyze`` at scale against a naive per-client loop in the same run.

Usage (from the repository root)::

    .venv/bin/python bench/bench_analyze.py                 # 1,000,000 clients (the target)
    .venv/bin/python bench/bench_analyze.py --clients 20000 # a quick run
    .venv/bin/python bench/bench_analyze.py --baseline e1e20c8  # also the engine at that commit

What it measures, all in one run on this machine (the load average and the CPU time of a fixed
reference work are printed first and last: the machine may be shared, and these virtual
machines run the same work faster at some times than at others, so read the figures beside
them):

1. ``bordin analyze`` on synthetic data (``bordin synth``: 3 measures, up to 20 sessions) read
   from Parquet, as a separate process: wall time and peak resident memory of that process and
   its worker processes together, and their CPU time (user and system); ``--repeat`` runs (2 by
   default), the fastest giving the ratios below. Then the same with ``--workers 1`` (one
   process), as a ratio. On these virtual machines memory the system has not touched lately
   costs about 2 s of system CPU a gigabyte when first touched (freed memory goes back to the
   host), so a first run after a pause can be much slower than the next: the system CPU shows
   it.
   With ``--baseline REV`` the same command from that git revision runs on the same file, for a
   before/after in the same run.
2. The skewed case: the same data plus ``--skewed`` clients with 2,000 sessions each
   (``--repeat`` runs).
3. Spark ``local[2]`` (``--engine spark``) on the first ``--spark-clients`` clients, beside the
   local engine on the same file, as a ratio (skipped without Java or PySpark).
4. The baseline: a naive per-client Python loop (the plain rule implementations the tests use
   as oracles) for sudden gains on PHQ-9 and GAD-7 and ruptures on the alliance, over a sample
   of clients.
5. The vectorised engine on the same sample and the same methods.

It prints throughput and the ratios. Nothing here is asserted: speed is reported, not tested.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.measures.test_ruptures import oracle as rupture_loop  # noqa: E402
from tests.measures.test_sudden_gains import oracle as sudden_gain_loop  # noqa: E402

from bench import proctree  # noqa: E402
from bordin.measures import ruptures, sudden_gains  # noqa: E402
from bordin.measures.instruments import builtin_registry  # noqa: E402
from bordin.measures.series import SeriesMatrix  # noqa: E402
from bordin.measures.synth import synthesize, write  # noqa: E402

#: The issue's figure for the R package suddengains on this kind of machine: about 30 s for
#: 1,000 clients. Quoted, not measured here (R is not available on these machines).
R_SUDDENGAINS_SECONDS_PER_CLIENT = 30.0 / 1000


def machine_speed() -> str:
    """A fixed piece of work timed now (the fastest of three): these virtual machines run the
    same work up to a third slower at some times than at others, whatever their load average
    says, so figures from different runs are read beside this one."""
    rng = np.random.default_rng(0)
    values = rng.random(5_000_000)
    best = math.inf
    for _ in range(3):
        started = time.process_time()
        np.sort(values)
        sum(range(3_000_000))
        best = min(best, time.process_time() - started)
    started = time.perf_counter()
    np.ones(256 * 1024**2 // 8)  # memory this process has not touched yet
    fresh = time.perf_counter() - started
    return (
        f"reference work (sort 5 M floats, sum 3 M ints in Python) {best * 1000:.0f} ms CPU; "
        f"256 MiB of fresh memory touched in {fresh * 1000:.0f} ms"
    )


def load() -> str:
    """The machine's load averages (1, 5, 15 minutes) and CPU count, to read figures beside."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


class Run(NamedTuple):
    """One ``bordin analyze`` run: wall seconds, peak memory (GiB), CPU seconds (user, system)."""

    seconds: float
    peak_gib: float
    user: float
    system: float

    def cpu(self) -> str:
        """The CPU time of the run's processes, user and system (page faults are system)."""
        return f"CPU {self.user:.1f} s user + {self.system:.1f} s system"


def run_analyze(data: Path, out: Path, *extra: str, src: Path | None = None) -> Run:
    """Wall seconds, peak memory (GiB) and CPU time of one ``bordin analyze`` run.

    The memory is the peak, sampled every 0.2 s, of the resident memory of the command's whole
    process tree (its worker processes included), and at least the command's own peak RSS. The
    CPU time is the command's and its worker processes' (they are waited for). ``src`` runs the
    ``bordin`` package found there instead (a baseline revision's ``src``).

    ``out`` is removed first: each run writes a new folder, as a first analysis does (a run
    into a folder of earlier results also deletes them, about 0.1-0.3 s for these sizes).
    """
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "bordin.cli", "analyze", str(data), "--out", str(out), *extra]
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    started = time.perf_counter()
    # This interpreter running bordin on our own files: fixed argv, no shell.
    proc = subprocess.Popen(  # noqa: S603
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    peak = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, proctree.rss_bytes(proc.pid))
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(
            f"bordin analyze failed: {proc.stderr.read().decode() if proc.stderr else ''}"
        )
    own = usage.ru_maxrss * 1024  # ru_maxrss is in KiB on Linux
    if own <= proctree.status_bytes("self", "VmHWM"):
        # The child inherits this process's high-water mark when it starts (fork, then exec):
        # a figure no higher than ours may be ours, not the command's; the samples decide.
        own = 0
    return Run(seconds, max(peak, own) / 1024**3, usage.ru_utime, usage.ru_stime)


def baseline_src(rev: str, into: Path) -> Path:
    """The ``src`` folder of git revision ``rev``, unpacked into ``into``."""
    archive = into / "src.tar"
    with archive.open("wb") as handle:
        subprocess.run(  # noqa: S603
            ["git", "-C", str(REPO), "archive", rev, "src"],  # noqa: S607
            stdout=handle,
            check=True,
        )
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def skewed(data: Path, extra_clients: int, sessions: int, out: Path) -> int:
    """``data`` plus ``extra_clients`` clients with ``sessions`` sessions of each measure."""
    base = pl.read_parquet(data).select("client_id", "session", "measure", "score")
    rng = np.random.default_rng(12)
    top = int(base.get_column("client_id").max()) + 1  # type: ignore[arg-type]
    n = extra_clients * sessions
    parts = [base]
    for code, high in (("phq9", 27), ("gad7", 21), ("alliance", 7)):
        parts.append(
            pl.DataFrame(
                {
                    "client_id": np.repeat(np.arange(top, top + extra_clients), sessions),
                    "session": np.tile(np.arange(1, sessions + 1), extra_clients),
                    "measure": [code] * n,
                    "score": rng.integers(0, high + 1, n).astype(np.float64),
                }
            ).cast(base.schema)  # type: ignore[arg-type]
        )
    frame = pl.concat(parts)
    frame.write_parquet(out)
    return frame.height


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
    parser.add_argument("--skewed", type=int, default=100, help="extra 2,000-session clients")
    parser.add_argument("--spark-clients", type=int, default=100_000)
    parser.add_argument("--baseline", help="git revision whose engine to time as well")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / "results")
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs of the main measurement (the fastest is used)"
    )
    args = parser.parse_args()

    print(f"start: {load()}")
    print(f"machine speed: {machine_speed()}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    data = args.workdir / f"synthetic-{args.clients}.parquet"
    if not data.exists():
        started = time.perf_counter()
        write(synthesize(args.clients, seed=2026, max_sessions=20), data)
        print(f"generated {data.name} in {time.perf_counter() - started:.1f} s")
    rows = pl.scan_parquet(data).select(pl.len()).collect().item()
    print(
        f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, polars {pl.__version__}"
    )
    print(
        f"data: {args.clients:,} clients, {rows:,} scores (3 measures, up to 20 sessions), Parquet"
    )

    runs = [run_analyze(data, args.workdir / f"out-{args.clients}") for _ in range(args.repeat)]
    for k, run in enumerate(runs, start=1):
        print(f"bordin analyze (whole pipeline, own process), run {k}: {run.seconds:.1f} s wall,")
        print(f"  peak memory {run.peak_gib:.2f} GiB (all its processes), {run.cpu()}  [{load()}]")
    seconds, peak_gib = min(run.seconds for run in runs), max(run.peak_gib for run in runs)
    per_client = seconds / args.clients
    print(f"  throughput: {args.clients / seconds:,.0f} clients/s, {rows / seconds:,.0f} scores/s")
    print(f"  per client: {per_client * 1e6:.1f} µs")
    one = run_analyze(data, args.workdir / f"out-{args.clients}-1", "--workers", "1")
    print(
        f"the same in one process (--workers 1): {one.seconds:.1f} s wall, peak memory "
        f"{one.peak_gib:.2f} GiB, {one.cpu()}; ratio one process / default (fastest run): "
        f"{one.seconds / seconds:.2f}x  [{load()}]"
    )
    if args.baseline:
        with tempfile.TemporaryDirectory() as tmp:
            src = baseline_src(args.baseline, Path(tmp))
            before = run_analyze(data, Path(tmp) / "out", src=src)
        print(
            f"same command at {args.baseline} (before): {before.seconds:.1f} s wall, peak memory "
            f"{before.peak_gib:.2f} GiB, {before.cpu()}; ratio before/now: "
            f"{before.seconds / seconds:.2f}x time, {before.peak_gib / peak_gib:.2f}x memory  "
            f"[{load()}]"
        )

    if args.skewed:
        skew = args.workdir / f"skewed-{args.clients}.parquet"
        skew_rows = skewed(data, args.skewed, 2_000, skew)
        for k in range(1, args.repeat + 1):
            skewed_run = run_analyze(skew, args.workdir / f"out-skewed-{args.clients}")
            print(
                f"skewed (+{args.skewed} clients × 2,000 sessions, {skew_rows:,} scores), run "
                f"{k}: {skewed_run.seconds:.1f} s wall, peak memory {skewed_run.peak_gib:.2f} "
                f"GiB, {skewed_run.cpu()}  [{load()}]"
            )

    if args.spark_clients and shutil.which("java"):
        try:
            import pyspark  # noqa: F401
        except ImportError:
            print("spark: skipped (pip install 'bordin[spark]')")
        else:
            small = args.workdir / f"spark-{args.spark_clients}.parquet"
            pl.scan_parquet(data).filter(pl.col("client_id") <= args.spark_clients).sink_parquet(
                small
            )
            local_s = run_analyze(small, args.workdir / "out-spark-local").seconds
            try:
                spark_s = run_analyze(
                    small,
                    args.workdir / "out-spark",
                    "--engine",
                    "spark",
                    "--spark-master",
                    "local[2]",
                ).seconds
            except SystemExit as exc:  # report it and go on with the other figures
                print(f"spark: failed: {str(exc).strip().splitlines()[-1:]}")
                spark_s = float("nan")
            print(
                f"spark local[2], {args.spark_clients:,} clients: {spark_s:.1f} s wall "
                f"({args.spark_clients / spark_s:,.0f} clients/s); local engine {local_s:.1f} s "
                f"({args.spark_clients / local_s:,.0f} clients/s); ratio spark/local "
                f"{spark_s / local_s:.1f}x  [{load()}]"
            )

    sample = pl.scan_parquet(data).filter(pl.col("client_id") <= args.sample).collect()
    series = per_client_series(sample)
    naive = naive_loop(series)
    fast = vectorised(sample)
    naive_per_client = naive / args.sample
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
    print(f"machine speed: {machine_speed()}")
    print(f"end: {load()}")


if __name__ == "__main__":
    main()
