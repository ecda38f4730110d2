"""The batch engine (bordin.measures.batch): blocks of clients give exactly the dense results."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
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


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    clients=st.integers(3, 25),
    lengths=st.lists(st.sampled_from([1, 3, 8, 40, 70, 130]), min_size=1, max_size=4),
    block_cells=st.integers(1, 400),
)
def test_blocks_read_from_rows_in_client_order_are_those_of_sorted_rows(
    seed: int, clients: int, lengths: list[int], block_cells: int
) -> None:
    """Rows in client order take the row-range path (short series, with long ones between
    them too); the same rows marked unordered take the sorting path: the same blocks."""
    cols = batch.row_arrays(long_data(seed, clients, lengths))
    assert cols.in_client_order
    original = batch.BLOCK_CELLS
    batch.BLOCK_CELLS = block_cells
    try:
        ranged = list(batch._blocks(cols))
        sorted_ = list(batch._blocks(dataclasses.replace(cols, in_client_order=False)))
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


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(2, 30), max_size=40), min_size=1, max_size=5))
def test_partitions_fit_inputs_merge_as_a_stable_sort_by_session(sizes: list[list[int]]) -> None:
    from bordin.measures.stream import _merge_fit_inputs

    parts = []
    for k, sessions in enumerate(sizes):
        s = np.sort(np.array(sessions, dtype=np.int64))
        parts.append((s, np.arange(s.size) + 1000.0 * k, np.arange(s.size) * 0.5 + k, len(s)))
    session, y1, score, n = _merge_fit_inputs(parts)
    joined = np.concatenate([p[0] for p in parts])
    order = np.argsort(joined, kind="stable")
    assert np.array_equal(session, joined[order])
    assert np.array_equal(y1, np.concatenate([p[1] for p in parts])[order])
    assert np.array_equal(score, np.concatenate([p[2] for p in parts])[order])
    assert n == sum(len(x) for x in sizes)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 12),
            st.integers(1, 9),
            st.sampled_from(["gad7", "phq9", "alliance"]),
            st.integers(0, 21),
        ),
        max_size=80,
    ),
    st.booleans(),
)
def test_fit_inputs_from_the_arrays_are_those_of_long_data(
    rows: list[tuple[int, int, str, int]], in_client_order: bool
) -> None:
    cells = {(c, s, m): v for c, s, m, v in rows}  # one score a cell, as checked data has
    items = sorted(cells.items()) if in_client_order else list(cells.items())
    if not items:
        return
    frame = pl.DataFrame(
        {
            "client_id": [k[0] for k, _ in items],
            "session": [k[1] for k, _ in items],
            "measure": [k[2] for k, _ in items],
            "score": [float(v) for _, v in items],
        }
    )
    cols = batch.row_arrays(frame)
    got = batch.fit_inputs_by_code(cols, ["gad7", "phq9"])
    default = longdata.CHUNK_ROWS
    try:
        longdata.CHUNK_ROWS = 5  # several chunks, and runs of one measure across them
        small = batch.fit_inputs_by_code(cols, ["gad7", "phq9"])
    finally:
        longdata.CHUNK_ROWS = default
    for code in got:
        for a, b in zip(got[code], small[code], strict=True):
            assert np.array_equal(a, b)
    for code in ("gad7", "phq9"):
        part = frame.filter(pl.col("measure") == code).select("client_id", "session", "score")
        if not part.height:
            assert code not in got
            continue
        session, y1, score, n = trajectories.fit_inputs(part)
        assert np.array_equal(got[code][0], session)
        assert np.array_equal(got[code][1], y1)
        assert np.array_equal(got[code][2], score)
        assert got[code][3] == n


def test_a_worker_that_ends_without_its_results_is_a_message() -> None:
    import multiprocessing

    from bordin.measures import parallel

    ours, theirs = multiprocessing.Pipe()
    theirs.close()  # as when the worker was killed
    with pytest.raises(parallel.WorkerError, match="ended without its results"):
        parallel._gather([ours], 1, "checked")
