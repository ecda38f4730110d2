"""The batch engine (bordin.measures.batch): blocks of clients give exactly the dense results."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bordin.measures import batch, longdata, rupture_rules, sudden_gains, trajectories
from bordin.measures.instruments import builtin_registry
from bordin.measures.outcomes import paired_from_matrices
from bordin.measures.reliable_change import change_table
from bordin.measures.series import SeriesMatrix

REG = builtin_registry()
MEASURES = {"phq9": 27, "gad7": 21, "alliance": 7}


def long_data(seed: int, clients: int, lengths: list[int]) -> pl.DataFrame:
    """Random long data: client ``i`` has ``lengths[i % len(lengths)]`` sessions, some missing."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, int, str, float]] = []
    for i in range(clients):
        n = lengths[i % len(lengths)]
        for code, top in MEASURES.items():
            if rng.random() < 0.1:
                continue  # some clients lack a measure
            for s in range(1, n + 1):
                if rng.random() < 0.85:
                    rows.append((f"c{i:05d}", s, code, float(rng.integers(0, top + 1))))
    return pl.DataFrame(
        rows,
        schema={
            "client_id": pl.String,
            "session": pl.Int64,
            "measure": pl.String,
            "score": pl.Float64,
        },
        orient="row",
    )


def dense_oracle(data: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """What the engine gave before blocks: one dense matrix per measure for all clients."""
    out: dict[str, list[pl.DataFrame]] = {}
    matrices = {}
    for code in sorted(MEASURES):
        part = data.filter(pl.col("measure") == code).select("client_id", "session", "score")
        m = matrices[code] = SeriesMatrix.from_long(part)
        inst = REG[code]
        lit = pl.lit(code).alias("measure")
        if inst.reliable_change is not None:
            change = change_table(
                m,
                threshold=inst.reliable_change,
                lower_is_better=inst.lower_is_better,
                caseness=inst.caseness,
            )
            out.setdefault("change", []).append(change.with_columns(lit))
        if inst.role == "outcome":
            sg = sudden_gains.identify(
                m,
                cutoff=inst.effective_sudden_gain_cutoff or 1,
                lower_is_better=inst.lower_is_better,
            )
            out.setdefault("sudden_changes", []).append(sg.with_columns(lit))
            model = trajectories.fit(m, lower_is_better=inst.lower_is_better)
            out.setdefault("trajectories", []).append(model.evaluate(m).with_columns(lit))
        else:
            rule = rupture_rules.setting_for(inst)
            assert rule is not None
            rup = rupture_rules.detect(m, rule)
            out.setdefault("ruptures", []).append(rup.with_columns(lit))
    paired = paired_from_matrices(
        matrices["phq9"], matrices["gad7"], phq9=REG["phq9"], gad7=REG["gad7"]
    )
    tables = {k: pl.concat(v).select(batch.SCHEMAS[k]) for k, v in out.items()}
    tables["outcomes"] = paired.table.select(batch.SCHEMAS["outcomes"])
    return tables


@pytest.mark.parametrize("block_cells", [1, 97, batch.BLOCK_CELLS])
def test_blocks_give_the_dense_results_row_for_row(
    block_cells: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = long_data(3, 300, [1, 2, 3, 5, 9, 14, 20, 33, 70])
    expected = dense_oracle(data)
    monkeypatch.setattr(batch, "BLOCK_CELLS", block_cells)
    got = batch.analyze(data, REG).tables
    for name, table in expected.items():
        assert got[name].equals(table), name


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    clients=st.integers(12, 40),
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=5),
    block_cells=st.integers(1, 400),
)
def test_blocks_match_the_dense_matrix_on_any_data(
    seed: int, clients: int, lengths: list[int], block_cells: int
) -> None:
    data = long_data(seed, clients, lengths)
    whole = batch.analyze(data, REG)
    original = batch.BLOCK_CELLS
    batch.BLOCK_CELLS = block_cells
    try:
        blocked = batch.analyze(data, REG)
    finally:
        batch.BLOCK_CELLS = original
    for name, table in whole.tables.items():
        assert blocked.tables[name].equals(table), name
    assert blocked.summary == whole.summary


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    clients=st.integers(12, 30),
    lengths=st.lists(st.sampled_from([1, 3, 8, 20, 70]), min_size=1, max_size=4),
)
def test_rows_in_any_order_give_the_same_results(
    seed: int, clients: int, lengths: list[int]
) -> None:
    """``row_arrays`` puts rows in client order (a stable sort), so shuffled rows give the
    tables and summary of the rows in order."""
    data = long_data(seed, clients, lengths)
    shuffled = data.sample(fraction=1.0, shuffle=True, seed=seed % 1000)
    assume(not shuffled.get_column("client_id").is_sorted())
    ordered, mixed = batch.analyze(data, REG), batch.analyze(shuffled, REG)
    for name, table in ordered.tables.items():
        assert mixed.tables[name].equals(table), name
    assert mixed.summary == ordered.summary


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    clients=st.integers(3, 25),
    lengths=st.lists(st.sampled_from([1, 3, 8, 40, 70, 130]), min_size=1, max_size=4),
    block_cells=st.integers(1, 400),
)
def test_blocks_read_from_row_ranges_are_those_of_sorted_rows(
    seed: int, clients: int, lengths: list[int], block_cells: int
) -> None:
    """Short-series blocks read from row ranges (with long series between them too) are the
    blocks the sorting path gives."""
    cols = batch.row_arrays(long_data(seed, clients, lengths))
    original = batch.BLOCK_CELLS
    batch.BLOCK_CELLS = block_cells
    try:
        ranged = list(batch._blocks(cols))
        sorted_ = list(batch._blocks(cols, ranges=False))
    finally:
        batch.BLOCK_CELLS = original
    assert len(ranged) == len(sorted_)
    for one, other in zip(ranged, sorted_, strict=True):
        assert [code for code, _ in one] == [code for code, _ in other]
        for (_, a), (_, b) in zip(one, other, strict=True):
            assert a.client_ids.equals(b.client_ids)
            assert np.array_equal(a.values, b.values, equal_nan=True)
            assert np.array_equal(a.last_session, b.last_session)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    clients=st.integers(10, 60),
    lengths=st.lists(st.integers(2, 30), min_size=1, max_size=4),
)
def test_fit_long_is_fit_on_the_dense_matrix_bit_for_bit(
    seed: int, clients: int, lengths: list[int]
) -> None:
    part = long_data(seed, clients, lengths).filter(pl.col("measure") == "phq9")
    try:
        dense = trajectories.fit(SeriesMatrix.from_long(part), lower_is_better=True)
    except ValueError as exc:
        with pytest.raises(ValueError, match=str(exc)[:30]):
            trajectories.fit_long(part, lower_is_better=True)
        return
    assert trajectories.fit_long(part, lower_is_better=True) == dense


def test_one_very_long_series_beside_many_short_ones_costs_its_scores() -> None:
    """The issue's first case, scaled down: a dense matrix would be 20,001 × 5,000 cells."""
    short = long_data(1, 2_000, [3, 8, 12])
    scores = np.random.default_rng(2).integers(0, 28, 5_000).astype(np.float64)
    long_one = pl.DataFrame(
        {
            "client_id": ["zlong"] * 5_000,
            "session": np.arange(1, 5_001),
            "measure": ["phq9"] * 5_000,
            "score": scores,
        }
    )
    data = pl.concat([short, long_one])
    results = batch.analyze(data, REG)
    traj = results.tables["trajectories"].filter(pl.col("client_id") == "zlong")
    assert traj.height == 4_999
    assert traj.get_column("session").to_list() == list(range(2, 5_001))
    change = results.tables["change"].filter(pl.col("client_id") == "zlong").row(0, named=True)
    assert (change["first_session"], change["last_session"]) == (1, 5_000)
    assert change["baseline"] == scores[0] and change["final"] == scores[-1]
    # The long client's sudden gains are those of its own series alone.
    alone = sudden_gains.identify(
        SeriesMatrix.from_long(long_one.select("client_id", "session", "score")),
        cutoff=REG["phq9"].effective_sudden_gain_cutoff or 6,
        lower_is_better=True,
    )
    got = results.tables["sudden_changes"].filter(pl.col("client_id") == "zlong")
    assert got.drop("measure").equals(alone)


def _rows_frame(rows: list[tuple[int, int, str, float]], in_client_order: bool) -> pl.DataFrame:
    cells = {(c, s, m): v for c, s, m, v in rows}  # one score a cell, as checked data has
    items = sorted(cells.items()) if in_client_order else list(cells.items())
    return pl.DataFrame(
        {
            "client_id": [k[0] for k, _ in items],
            "session": [k[1] for k, _ in items],
            "measure": [k[2] for k, _ in items],
            "score": [float(v) for _, v in items],
        },
        schema={
            "client_id": pl.Int64,
            "session": pl.Int64,
            "measure": pl.String,
            "score": pl.Float64,
        },
    )


def _counts_with(cols: batch.RowArrays, chunk: int, dense: int) -> dict[str, batch.FitCounts]:
    default_chunk, default_dense = longdata.CHUNK_ROWS, batch.DENSE_KEYS
    try:
        longdata.CHUNK_ROWS, batch.DENSE_KEYS = chunk, dense
        return batch.fit_counts_by_code(cols, ["gad7", "phq9"])
    finally:
        longdata.CHUNK_ROWS, batch.DENSE_KEYS = default_chunk, default_dense


def _same_counts(a: trajectories.FitCounts, b: trajectories.FitCounts) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a[:4], b[:4], strict=True)) and (
        a.n_clients == b.n_clients
    )


#: Integer scores (coded by value), halves, and scores with many decimals (coded by rank).
SCORES = st.one_of(
    st.integers(0, 21).map(float),
    st.integers(0, 42).map(lambda k: k / 2),
    st.floats(-5, 30, allow_nan=False, width=32),
)
ROWS = st.lists(
    st.tuples(
        st.integers(0, 12),
        st.integers(1, 9),
        st.sampled_from(["gad7", "phq9", "alliance"]),
        SCORES,
    ),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(ROWS, st.booleans(), st.integers(1, 40), st.sampled_from([1, 1 << 24]))
def test_fit_counts_from_the_arrays_are_those_of_long_data(
    rows: list[tuple[int, int, str, float]], in_client_order: bool, chunk: int, dense: int
) -> None:
    """Any chunk size (runs of a measure across chunks), dense or sorted counting, integer or
    fractional scores, rows in any order: the counted triples of the long data."""
    frame = _rows_frame(rows, in_client_order)
    if not frame.height:
        return
    cols = batch.row_arrays(frame)
    got = _counts_with(cols, chunk, dense)
    for code in ("gad7", "phq9"):
        part = frame.filter(pl.col("measure") == code).select("client_id", "session", "score")
        if not part.height:
            assert code not in got
            continue
        assert _same_counts(got[code], trajectories.fit_inputs(part))


@settings(max_examples=200, deadline=None)
@given(ROWS, st.lists(st.integers(1, 12), max_size=4), st.sampled_from([1, 1 << 24]))
def test_partitions_counts_merge_into_the_counts_of_the_whole(
    rows: list[tuple[int, int, str, float]], cuts: list[int], dense: int
) -> None:
    """Counting each range of clients and merging (as the partitioned, worker and Spark engines
    do) gives the counts of the whole data."""
    frame = _rows_frame(rows, True)
    if not frame.height:
        return
    whole = _counts_with(batch.row_arrays(frame), 7, dense)
    bounds = [0, *sorted(set(cuts)), 13]
    parts: dict[str, list[batch.FitCounts]] = {}
    for lo, hi in itertools.pairwise(bounds):
        piece = frame.filter((pl.col("client_id") >= lo) & (pl.col("client_id") < hi))
        if piece.height:
            for code, counted in _counts_with(batch.row_arrays(piece), 7, dense).items():
                parts.setdefault(code, []).append(counted)
    assert sorted(parts) == sorted(whole)
    for code, counted in whole.items():
        assert _same_counts(trajectories.merge_counts(parts[code]), counted)
    empty = trajectories.merge_counts([])
    assert empty.n_clients == 0 and empty.session.size == 0


def test_fit_counts_by_code_hand_worked() -> None:
    """Two PHQ-9 clients, one without an intake (left out); a GAD-7 client; alliance ignored."""
    frame = pl.DataFrame(
        {
            "client_id": [1, 1, 1, 1, 2, 2, 3, 3, 3],
            "session": [1, 2, 3, 2, 2, 3, 1, 2, 3],
            "measure": ["phq9", "phq9", "phq9", "alliance", "phq9", "phq9"] + ["gad7"] * 3,
            "score": [20.0, 15.0, 15.0, 5.5, 9.0, 8.0, 12.0, 12.0, 10.0],
        }
    )
    got = batch.fit_counts_by_code(batch.row_arrays(frame), ["phq9", "gad7"])
    phq9, gad7 = got["phq9"], got["gad7"]
    assert phq9.session.tolist() == [2, 3] and phq9.y1.tolist() == [20.0, 20.0]
    assert phq9.score.tolist() == [15.0, 15.0] and phq9.counts.tolist() == [1, 1]
    assert phq9.n_clients == 1
    assert gad7.session.tolist() == [2, 3] and gad7.score.tolist() == [12.0, 10.0]
    assert gad7.n_clients == 1
    twice = pl.concat([frame, frame.with_columns(pl.col("client_id") + 10)])
    doubled = batch.fit_counts_by_code(batch.row_arrays(twice), ["phq9"])["phq9"]
    assert doubled.counts.tolist() == [2, 2] and doubled.n_clients == 2


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    clients=st.integers(1, 30),
    lengths=st.lists(st.integers(1, 9), min_size=1, max_size=4),
    chunk=st.integers(1, 50),
)
def test_summary_counts_agree_with_a_group_by(
    seed: int, clients: int, lengths: list[int], chunk: int
) -> None:
    """The input counts of the summary, counted chunk by chunk, are those of a group-by."""
    data = long_data(seed, clients, lengths)
    assume(data.height > 0)  # checked input always has rows
    cells = data.group_by("client_id", "measure").agg(
        pl.len().alias("n"),
        (pl.col("session").max() >= 4).alias("four"),
        (pl.col("session") == 1).any().alias("intake"),
    )
    default = longdata.CHUNK_ROWS
    try:
        longdata.CHUNK_ROWS = chunk
        got = batch.stats_of_rows(batch.row_arrays(data))
    finally:
        longdata.CHUNK_ROWS = default
    assert got["rows"] == data.height
    assert got["clients"] == data.get_column("client_id").n_unique()
    for code in MEASURES:
        mine = cells.filter(pl.col("measure") == code)
        if not mine.height:
            assert code not in got
            continue
        no_intake = mine.filter(~pl.col("intake"))
        assert got[code] == {
            "rows": mine.get_column("n").sum(),
            "clients": mine.height,
            "single": mine.filter(pl.col("n") == 1).height,
            "four_plus": mine.filter(pl.col("four")).height,
            "no_intake_clients": no_intake.height,
            "no_intake_rows": no_intake.get_column("n").sum(),
        }


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_the_joiner_appends_parts_in_order_whatever_the_order_of_reports(
    data: st.DataObject,
) -> None:
    """Workers report parts as they write them, interleaved in any way, a part written in
    place when it is the next one: each CSV file is the header and the parts by code, then
    partition, as joining them at the end gives."""
    import tempfile
    from pathlib import Path

    from bordin.measures import parallel

    present = ("gad7", "phq9")
    partitions = data.draw(st.integers(1, 4))
    written = {(code, q): data.draw(st.booleans()) for q in range(partitions) for code in present}
    expected = batch.empty_table("trajectories").write_csv() + "".join(
        f"{code} {q}\n" for code in present for q in range(partitions) if written[code, q]
    )
    with tempfile.TemporaryDirectory() as tmp:
        work, out = Path(tmp) / "work", Path(tmp) / "out"
        work.mkdir()
        out.mkdir()
        queues = []
        for q in range(partitions):
            codes = [c for c in present if written[c, q]]
            for code in codes:
                (work / f"trajectories-{code}-{q:05d}.csv").write_text(f"{code} {q}\n")
            queues.append([(q, [c], False) for c in codes] + [(q, codes, True)])
        joiner = parallel._Joiner(work, out, present, partitions)
        while any(queues):
            q = data.draw(st.sampled_from([k for k, left in enumerate(queues) if left]))
            p, codes, whole = queues[q].pop(0)
            at = None if whole else joiner.where(p, "trajectories", codes[0])
            if at is None:
                joiner.add(p, "trajectories", codes, whole)
                continue
            # The next part to place: the worker writes it in the file itself.
            part = work / f"trajectories-{codes[0]}-{p:05d}.csv"
            text = part.read_bytes()
            part.unlink()
            with (out / "trajectories.csv").open("r+b") as target:
                target.seek(at)
                target.write(text)
            joiner.add(p, "trajectories", codes, whole, len(text))
        joiner.finish(["trajectories"])
        assert (out / "trajectories.csv").read_text() == expected
        assert not list(work.iterdir()), "every part appended once and removed"


def test_a_worker_that_ends_without_its_results_is_a_message() -> None:
    import multiprocessing

    from bordin.measures import parallel

    ours, theirs = multiprocessing.Pipe()
    theirs.close()  # as when the worker was killed
    with pytest.raises(parallel.WorkerError, match="ended without its results"):
        parallel._gather([ours], 1, "checked")
