"""Batch analysis of a whole data set: what ``bordin analyze`` runs.

A first pass over the whole data fits what every client is compared with (the expected-trajectory
model, :func:`plan`). Clients are then grouped into blocks of similar series length; each block's
scores of a measure become one tight :class:`~bordin.measures.series.SeriesMatrix` and every
applicable method runs over the block's clients at once (:func:`analyze_partition`), so memory
and time grow with the number of scores, not with the longest series:

=====================  ===========================================================  ===========
output                 method                                                       applies to
=====================  ===========================================================  ===========
``sudden_changes.csv``  :mod:`bordin.measures.sudden_gains` (suddengains 0.7.2)      outcome
``change.csv``          :mod:`bordin.measures.reliable_change` (Jacobson & Truax)    with an RC
``outcomes.csv``        :mod:`bordin.measures.outcomes` (NHS Talking Therapies)      phq9 + gad7
``ruptures.csv``        :mod:`bordin.measures.ruptures`                              alliance
``trajectories.csv``    :mod:`bordin.measures.trajectories` (Lambert & Finch)        outcome
``summary.json``        counts, rates and what was excluded, and why
=====================  ===========================================================  ===========

Results are written into a temporary folder beside ``out`` that then replaces ``out`` as a whole
(:func:`staged_output`): the folder holds exactly one run's results, and a failure leaves it as
it was. Text cells that a spreadsheet would run as formulas are made inert
(:mod:`bordin.measures.csvsafe`).
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import polars as pl

from bordin.measures import growth, longdata, rupture_rules, sudden_gains, trajectories
from bordin.measures.csvsafe import neutralise_formulas
from bordin.measures.instruments import Instrument
from bordin.measures.intervals import annotate_summary
from bordin.measures.longdata import client_order, dense_codes
from bordin.measures.outcomes import paired_from_matrices
from bordin.measures.reliable_change import change_table
from bordin.measures.series import SeriesMatrix

Step = Callable[[str], None]
FitCounts = trajectories.FitCounts

SCHEMAS: dict[str, list[str]] = {
    "sudden_changes": [
        "kind",
        "client_id",
        "measure",
        "pregain_session",
        "postgain_session",
        "pregain_score",
        "postgain_score",
        "magnitude",
    ],
    "change": [
        "client_id",
        "measure",
        "first_session",
        "last_session",
        "baseline",
        "final",
        "change",
        "rci",
        "category",
    ],
    "outcomes": [
        "client_id",
        "first_session",
        "last_session",
        "case_at_start",
        "recovered",
        "reliable_improvement",
        "reliable_deterioration",
        "reliable_recovery",
    ],
    "ruptures": [
        "client_id",
        "measure",
        "session",
        "previous_session",
        "drop",
        "status",
        "repair_session",
    ],
    "trajectories": ["client_id", "measure", "session", "score", "expected", "upper", "status"],
}


@dataclass
class Results:
    """Every output table plus the summary, ready to write."""

    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _with_measure(frame: pl.DataFrame, code: str, name: str) -> pl.DataFrame:
    keys = [trajectories.TAIL_KEY] if trajectories.TAIL_KEY in frame.columns else []
    return frame.with_columns(pl.lit(code).alias("measure")).select(*SCHEMAS[name], *keys)


def empty_table(name: str) -> pl.DataFrame:
    """An output table with no rows (its CSV is the header line)."""
    return pl.DataFrame(schema=dict.fromkeys(SCHEMAS[name], pl.String))


def _concat(frames: list[pl.DataFrame], name: str) -> pl.DataFrame:
    frames = [f for f in frames if f.height]
    if not frames:
        return empty_table(name)
    return pl.concat(frames, how="vertical_relaxed")


#: Most cells (clients × sessions) in the dense matrix of one block of clients: bounds the
#: memory a block takes (8 bytes a cell) whatever the data.
BLOCK_CELLS = 1 << 22
#: Clients whose series are at most ``2**SHORT_CLASS`` sessions long are blocked in client order.
SHORT_CLASS = 6


@dataclass(frozen=True)
class Plan:
    """What every partition of clients needs from the whole data set (the first pass)."""

    measures: Mapping[str, Instrument]
    present: tuple[str, ...]
    models: dict[str, trajectories.TrajectoryModel | growth.GrowthModel | None]
    model_notes: dict[str, dict[str, Any]]


def plan(
    data: pl.DataFrame | pl.LazyFrame,
    measures: Mapping[str, Instrument],
    *,
    reference: pl.DataFrame | pl.LazyFrame | None = None,
    reference_source: str | None = None,
    present: tuple[str, ...] | None = None,
    fit_counts: Mapping[str, FitCounts] | None = None,
    trajectory_model: str = "ols",
) -> Plan:
    """First pass over the whole data: the measures present and each trajectory model.

    Models are fitted on ``reference`` when it has scores of the measure, else on ``data``,
    from long data (:func:`bordin.measures.trajectories.fit_long`): memory grows with the
    number of scores, not with the highest session number. A partitioned run passes the
    measures ``present`` and the input's ``fit_counts`` (counted triples,
    :class:`~bordin.measures.trajectories.FitCounts`), gathered partition by partition.
    ``trajectory_model="growth"`` fits :mod:`bordin.measures.growth` instead where it can
    (:func:`growth_or_ols`).
    """
    if present is None:
        codes = data.lazy().select(pl.col("measure").unique().cast(pl.String)).collect()
        present = tuple(sorted(codes.to_series()))
    if trajectory_model not in TRAJECTORY_MODELS:
        raise ValueError(f"trajectory model must be ols or growth, got '{trajectory_model}'")
    models: dict[str, trajectories.TrajectoryModel | growth.GrowthModel | None] = {}
    notes: dict[str, dict[str, Any]] = {}
    for code in present:
        inst = measures[code]
        if inst.role != "outcome":
            continue
        ref_part = _rows_of(reference, code) if reference is not None else None
        if ref_part is not None and ref_part.height == 0:
            ref_part = None
        fitted_on = reference_source if ref_part is not None else "input"
        note = None
        if reference is not None and ref_part is None:
            note = (
                f"the reference file has no '{code}' scores, so the model was fitted on the input"
            )
        if trajectory_model == "growth":
            if ref_part is not None or fit_counts is not None:
                rows = ref_part  # None in a partitioned run without a reference
            else:
                rows = _rows_of(data, code)
            grown, why_not = growth_or_ols(rows, inst)
            if grown is not None:
                models[code] = grown
                notes[code] = {"fitted_on": fitted_on, "note": note}
                continue
            note = "; ".join(n for n in (note, why_not) if n)
        try:
            if ref_part is None and fit_counts is not None:
                inputs = fit_counts[code]
            else:
                inputs = trajectories.fit_inputs(
                    ref_part if ref_part is not None else _rows_of(data, code)
                )
            models[code] = trajectories.fit_counts(*inputs, lower_is_better=inst.lower_is_better)
            notes[code] = {"fitted_on": fitted_on, "note": note}
        except ValueError as exc:
            models[code] = None
            notes[code] = {"fitted_on": fitted_on, "why": str(exc)}
    return Plan(measures=measures, present=present, models=models, model_notes=notes)


#: The expected-trajectory models ``bordin analyze --trajectory-model`` accepts.
TRAJECTORY_MODELS = ("ols", "growth")


def growth_or_ols(
    rows: pl.DataFrame | None, inst: Instrument
) -> tuple[growth.GrowthModel | None, str | None]:
    """The growth model fitted on ``rows`` (long ``client_id, session, score``), or ``None``
    with why the least-squares curve is used instead (too few clients, a failed fit, or no
    client rows in a partitioned run without a reference file)."""
    if rows is None:
        return None, (
            "the growth model needs the clients' rows in memory: this partitioned run used the "
            "least-squares curve (pass --reference to fit the growth model on a reference file)"
        )
    try:
        model = growth.fit_long(
            rows, lower_is_better=inst.lower_is_better, scale_min=inst.min, scale_max=inst.max
        )
    except ValueError as exc:
        return None, f"{exc}: the least-squares curve was used instead"
    return model, None


def plan_from_parts(
    measures: Mapping[str, Instrument],
    *,
    present: tuple[str, ...],
    fit_counts: Mapping[str, FitCounts],
    reference: pl.DataFrame | pl.LazyFrame | None = None,
    reference_source: str | None = None,
    trajectory_model: str = "ols",
) -> Plan:
    """:func:`plan` for a partitioned run (local or Spark): the measures ``present`` and the
    trajectory ``fit_counts`` were gathered part by part, so the input itself is not read again.
    """
    no_rows = pl.DataFrame(
        schema={"client_id": pl.String, "session": pl.Int64, "score": pl.Float64}
    )
    return plan(
        no_rows,
        measures,
        reference=reference,
        reference_source=reference_source,
        present=present,
        fit_counts=fit_counts,
        trajectory_model=trajectory_model,
    )


def measure_stats(data: pl.DataFrame | pl.LazyFrame) -> dict[str, Any]:
    """Counts over the input the summary needs (additive over disjoint sets of clients)."""
    return stats_of_rows(row_arrays(data.lazy().collect()))


def stats_of_rows(cols: RowArrays) -> dict[str, Any]:
    """:func:`measure_stats` from the rows as arrays: counts into (client, measure) cells.

    The rows are in client order, so a chunk of rows counts into the cells of its own range
    of clients (small temporaries, reused, instead of arrays as long as the data).
    """
    n_codes = len(cols.codes)
    cells = cols.ids.len() * n_codes
    counts = np.zeros((3, cells), dtype=np.int64)  # rows, rows from session 4, intakes
    for a in range(0, cols.client.size, longdata.CHUNK_ROWS):
        part = slice(a, a + longdata.CHUNK_ROWS)
        client, session = cols.client[part], cols.session[part]
        low, high = int(client[0]) * n_codes, (int(client[-1]) + 1) * n_codes
        key = client * n_codes + cols.measure[part] - low
        for k, rows in enumerate((key, key[session >= 4], key[session == 1])):
            counts[k, low:high] += np.bincount(rows, minlength=high - low)
    n = counts[0].reshape(-1, n_codes)
    four_plus = counts[1].reshape(-1, n_codes) > 0
    intake = counts[2].reshape(-1, n_codes) > 0
    present = n > 0
    out: dict[str, Any] = {"rows": int(cols.client.size), "clients": int(cols.ids.len())}
    paired = np.zeros(cols.ids.len(), dtype=np.bool_)
    for m, code in enumerate(cols.codes):
        if code in ("phq9", "gad7"):
            paired |= present[:, m]
    out["phq9_or_gad7_clients"] = int(paired.sum())
    for m, code in enumerate(cols.codes):
        here, rows = present[:, m], n[:, m]
        if not here.any():
            continue
        out[code] = {
            "rows": int(rows.sum()),
            "clients": int(here.sum()),
            "single": int((rows == 1).sum()),
            "four_plus": int(four_plus[:, m].sum()),
            "no_intake_clients": int((here & ~intake[:, m]).sum()),
            "no_intake_rows": int(rows[~intake[:, m]].sum()),
        }
    return out


@dataclass(frozen=True)
class RowArrays:
    """Checked long rows as arrays, in client order: clients as dense codes of their sorted
    ids (so ``client`` never decreases), measures as indices into ``codes`` (sorted)."""

    ids: pl.Series
    client: npt.NDArray[np.int64]
    measure: npt.NDArray[np.int16]
    codes: tuple[str, ...]
    session: npt.NDArray[np.int64]
    score: npt.NDArray[np.float64]


def row_arrays(
    data: pl.DataFrame, codes: tuple[pl.Series, npt.NDArray[np.int64]] | None = None
) -> RowArrays:
    """The checked rows of ``data`` as :class:`RowArrays`, built once for every later step.

    Rows out of client order are put in client order first (a stable sort: each client's rows
    keep their order), one sort that spares every later step its own sort or gather; the
    results do not depend on the order of the rows. ``codes``: the ids' :func:`dense_codes`
    if already known (:func:`~bordin.measures.longdata.check_long` gives them), used when the
    rows are in client order.
    """
    if data.height > 1 and not data.get_column("client_id").is_sorted():
        data, codes = data.sort("client_id", maintain_order=True), None
    ids, client = codes if codes is not None else dense_codes(data.get_column("client_id"))
    measure = data.get_column("measure")
    if not isinstance(measure.dtype, pl.Enum):
        text = measure.cast(pl.String)
        measure = text.cast(pl.Enum(sorted(text.unique().drop_nulls().to_list())))
    return RowArrays(
        ids=ids,
        client=client,
        measure=measure.to_physical().cast(pl.Int16).to_numpy(),
        codes=tuple(measure.dtype.categories.to_list()),  # type: ignore[attr-defined]
        session=data.get_column("session").cast(pl.Int64).to_numpy(),
        score=data.get_column("score").cast(pl.Float64).to_numpy(),
    )


def stable_order(key: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
    """``np.argsort(key, kind="stable")``; a radix sort when the keys fit 16 bits (``key`` >= 0).

    >>> stable_order(np.array([2, 0, 2, 1])).tolist()
    [1, 3, 0, 2]
    """
    if key.size and int(key.max()) < 1 << 15:
        return np.argsort(key.astype(np.int16), kind="stable")
    return np.argsort(key, kind="stable")


#: Most keys (measure × session × intake value × score value) :func:`fit_counts_by_code`
#: counts in one dense array; beyond, the rows are sorted and counted.
DENSE_KEYS = 1 << 24
#: Widest range of integer scores coded by their value (else by their rank among the distinct
#: scores).
INTEGER_RANGE = 1 << 16


def fit_counts_by_code(cols: RowArrays, codes: Collection[str]) -> dict[str, FitCounts]:
    """:func:`bordin.measures.trajectories.fit_inputs` from the arrays, for each of ``codes``
    present: the counted ``(session, intake score, score)`` triples of the later scores of
    clients with an intake score, and the number of those clients (rows in any order).

    The rows are read in chunks of :data:`~bordin.measures.longdata.CHUNK_ROWS`: first the
    intake scores (and whether the measures' scores are integers in a narrow range), then
    each later score's key ``((measure, session) * V + intake code) * V + score code`` is
    counted, with ``V`` codes for the values: ``score - lowest`` for integer scores, else the
    rank among the distinct scores. When there are at most :data:`DENSE_KEYS` keys they are
    counted in a dense array (:func:`numpy.bincount`); else (scores with many distinct
    values, where triples are nearly as many as scores) the later scores are sorted once by
    ``(measure, session, intake code)`` and score, and equal neighbours counted.
    """
    wanted = [c for c in codes if c in cols.codes]
    if cols.client.size == 0 or not wanted:
        return {}
    n_ids, width = cols.ids.len(), int(cols.session.max()) + 1
    slot_of = np.full(len(cols.codes), -1, dtype=np.int64)
    for k, code in enumerate(wanted):
        slot_of[cols.codes.index(code)] = k
    intake = np.full((len(wanted), n_ids), np.nan)
    starts = range(0, cols.client.size, longdata.CHUNK_ROWS)

    def chunk(a: int) -> tuple[Any, Any, Any, Any]:
        part = slice(a, a + longdata.CHUNK_ROWS)
        return cols.client[part], slot_of[cols.measure[part]], cols.session[part], part

    lowest, highest, integers = np.inf, -np.inf, True
    for a in starts:
        client, slot, session, part = chunk(a)
        first = (session == 1) & (slot >= 0)
        intake[slot[first], client[first]] = cols.score[part][first]
        scores = cols.score[part][slot >= 0]
        if scores.size:
            lowest, highest = min(lowest, scores.min()), max(highest, scores.max())
            integers = integers and bool(np.all(scores == np.floor(scores)))
    if not np.isfinite(lowest):  # no rows of the wanted measures
        return {}
    has_intake = ~np.isnan(intake)
    most = DENSE_KEYS
    if integers and highest - lowest < INTEGER_RANGE and max(-lowest, highest) < 2.0**53:
        base = int(lowest)
        values = np.arange(base, int(highest) + 1, dtype=np.float64) + 0.0

        def code_of(x: Any) -> Any:
            return x.astype(np.int64) - base
    else:
        seen_values: list[Any] = []
        most = math.isqrt(DENSE_KEYS // (len(wanted) * width))  # more values: not dense
        for a in starts:
            _, slot, _, part = chunk(a)
            seen_values.append(pl.Series(cols.score[part][slot >= 0]).unique().to_numpy())
            if seen_values[-1].size > most:
                break  # too many for dense counting: the values themselves are not needed
        values = np.unique(np.concatenate(seen_values) + 0.0)

        def code_of(x: Any) -> Any:
            return np.searchsorted(values, x)

    n_values = values.size
    space = len(wanted) * width * n_values * n_values  # a Python int: no overflow
    dense = space <= DENSE_KEYS and n_values <= most
    if dense:  # intake scores coded as the scores are
        intake_values, intake_code = values, code_of(np.where(has_intake, intake, values[0]))
    else:  # by their rank among the distinct intake scores; later scores stay floats
        intake_values, inverse = np.unique(intake[has_intake] + 0.0, return_inverse=True)
        intake_code = np.zeros(intake.shape, dtype=np.int64)
        intake_code[has_intake] = inverse.ravel()
    n_intake = intake_values.size
    counts = np.zeros(space if dense else 0, dtype=np.int64)
    highs: list[Any] = []
    lows: list[Any] = []
    seen = np.zeros((len(wanted), n_ids), dtype=np.bool_)
    for a in starts:
        client, slot, session, part = chunk(a)
        later = np.flatnonzero((session >= 2) & (slot >= 0))
        later = later[has_intake[slot[later], client[later]]]
        client, slot = client[later], slot[later]
        seen[slot, client] = True
        high = (slot * width + session[later]) * n_intake + intake_code[slot, client]
        if dense:
            low = code_of(cols.score[part][later])
            counts += np.bincount(high * n_values + low, minlength=space)
        else:
            highs.append(high)
            lows.append(cols.score[part][later] + 0.0)
    if dense:
        key = np.flatnonzero(counts)
        n = counts[key]
        high, low = np.divmod(key, n_values)
        score = values[low]
    else:  # one sort of the rows by (measure, session, intake code), then score
        high, score = np.concatenate(highs), np.concatenate(lows)
        del highs, lows
        order = np.argsort(score)  # equal scores are the same number: any order of them
        order = order[np.argsort(high[order], kind="stable")]
        high, score = high[order], score[order]
        new = np.ones(high.size, dtype=np.bool_)
        new[1:] = (high[1:] != high[:-1]) | (score[1:] != score[:-1])
        first = np.flatnonzero(new)
        n = np.diff(np.append(first, high.size))
        high, score = high[first], score[first]
    key, y1_code = np.divmod(high, n_intake)
    slot, session = np.divmod(key, width)
    ends = np.searchsorted(slot, np.arange(len(wanted) + 1))
    found: dict[str, FitCounts] = {}
    for k, code in enumerate(wanted):
        part = slice(int(ends[k]), int(ends[k + 1]))
        found[code] = FitCounts(
            session[part],
            intake_values[y1_code[part]],
            score[part],
            n[part],
            int(np.count_nonzero(seen[k])),
        )
    return found


def analyze_partition(data: pl.DataFrame, plan: Plan) -> dict[str, pl.DataFrame]:
    """Every output table for the clients in ``data`` (whole clients, all their rows).

    Clients are grouped into blocks of similar series length, each block one tight dense
    matrix per measure (at most :data:`BLOCK_CELLS` cells), so memory and time follow the
    number of scores rather than the longest series. Rows come out sorted as each method
    documents (by ``client_id``, then session), exactly as one matrix for all would give.
    """
    return analyze_rows(row_arrays(data), plan)


#: One block's matrices, per measure code (see :func:`_blocks`).
Block = list[tuple[str, SeriesMatrix]]


def analyze_rows(
    cols: RowArrays,
    plan: Plan,
    only: Collection[str] | None = None,
    *,
    blocks: Iterable[Block] | None = None,
    keep_outcomes: list[Block] | None = None,
    tail_keys: bool = False,
) -> dict[str, pl.DataFrame]:
    """:func:`analyze_partition` on the rows as arrays; ``only`` names the tables wanted (all
    by default): a worker process computes the tables that need no trajectory model while the
    model is fitted (:mod:`bordin.measures.parallel`).

    ``keep_outcomes`` (a list) receives each block's outcome-measure matrices, and ``blocks``
    replaces the blocks built from ``cols``: the worker's second step (the trajectories, which
    read only the outcome measures) then reuses the first step's matrices instead of building
    them again.

    ``tail_keys``: the trajectories table keeps the column
    :data:`~bordin.measures.trajectories.TAIL_KEY` where the model gives it, for
    :func:`write_keyed_csv` (a worker writing CSV).
    """
    parts: dict[tuple[str, str], list[pl.DataFrame]] = {}
    wanted = set(SCHEMAS) if only is None else set(only)
    if not {"phq9", "gad7"} <= set(plan.present):
        wanted.discard("outcomes")

    def keep(name: str, code: str, frame: pl.DataFrame) -> None:
        if frame.height:
            parts.setdefault((name, code), []).append(frame)

    for block in _blocks(cols) if blocks is None else blocks:
        matrices = dict(block)
        if keep_outcomes is not None:
            keep_outcomes.append([(c, m) for c, m in block if plan.measures[c].role == "outcome"])
        for code, matrix in matrices.items():
            inst = plan.measures[code]
            lower = inst.lower_is_better
            if inst.reliable_change is not None and "change" in wanted:
                table = change_table(
                    matrix,
                    threshold=inst.reliable_change,
                    lower_is_better=lower,
                    caseness=inst.caseness,
                )
                keep("change", code, table)
            if inst.role == "outcome":
                cutoff = inst.effective_sudden_gain_cutoff
                if cutoff is not None and "sudden_changes" in wanted:
                    sg = sudden_gains.identify(matrix, cutoff=cutoff, lower_is_better=lower)
                    keep("sudden_changes", code, sg)
                model = plan.models.get(code)
                if model is not None and "trajectories" in wanted:
                    if tail_keys and isinstance(model, trajectories.TrajectoryModel):
                        table = model.evaluate(matrix, tail_range=(inst.min, inst.max))
                    else:
                        table = model.evaluate(matrix)
                    keep("trajectories", code, table)
            rule = rupture_rules.setting_for(inst) if inst.role == "alliance" else None
            if rule is not None and "ruptures" in wanted:
                keep("ruptures", code, rupture_rules.detect(matrix, rule))
        if "phq9" in matrices and "gad7" in matrices and "outcomes" in wanted:
            paired = paired_from_matrices(
                matrices["phq9"],
                matrices["gad7"],
                phq9=plan.measures["phq9"],
                gad7=plan.measures["gad7"],
            )
            keep("outcomes", "", paired.table.select(SCHEMAS["outcomes"]))

    def assemble(name: str, codes: tuple[str, ...]) -> pl.DataFrame:
        frames = []
        for code in codes:
            found = parts.pop((name, code), None)  # each block's frame freed once joined
            if not found:
                continue
            frame = pl.concat(found)
            del found
            # The client codes in one piece: NumPy reads them in place, twice.
            frame = client_order(frame.with_columns(frame.get_column("client_id").rechunk()))
            client = frame.get_column("client_id").to_numpy()
            frame = frame.with_columns(cols.ids.gather(client).alias("client_id"))
            frames.append(_with_measure(frame, code, name) if code else frame)
        return _concat(frames, name)

    return {
        name: assemble(name, ("",) if name == "outcomes" else plan.present)
        for name in ("sudden_changes", "change", "ruptures", "trajectories", "outcomes")
        if name in wanted
    }


def _blocks(cols: RowArrays, *, ranges: bool = True) -> Iterator[Block]:
    """Split the rows into blocks of clients whose longest series are of similar length.

    A client's width is its highest session over all measures (so a block holds every
    measure of its clients, as paired outcomes need); widths are grouped by powers of two,
    and each group is cut so that no block's matrix exceeds :data:`BLOCK_CELLS` cells. Yields
    each block's matrices per measure code (as :meth:`SeriesMatrix.from_long` on the block's
    rows would give, ids as client codes), short-series blocks first.

    The rows are in client order (:func:`row_arrays`), so they are not sorted again: a
    short-series block holds consecutive clients, whose rows lie in one range of rows, read
    measure by measure (``ranges=False``, for tests: sorted by block and measure as the
    long-series blocks are).
    """
    if cols.client.size == 0:
        return
    n_clients = cols.ids.len()
    row_start = np.searchsorted(cols.client, np.arange(n_clients + 1))
    w = np.maximum.reduceat(cols.session, row_start[:-1])  # each client's highest session
    cls = np.ceil(np.log2(np.maximum(w, 1))).astype(np.int64)
    per_block = np.maximum(BLOCK_CELLS // np.left_shift(np.int64(1), cls), 1)
    order = np.argsort(cls, kind="stable")
    sorted_cls = cls[order]
    position = np.empty_like(order)
    position[order] = np.arange(order.size) - np.searchsorted(sorted_cls, sorted_cls)
    # Short series (up to SHORT_WIDTH sessions) share blocks of consecutive clients, first:
    # their tables then come out already in client order, with no sort (nor its copy).
    short = cls <= SHORT_CLASS
    if short.any():
        per_short = max(BLOCK_CELLS >> int(cls[short].max()), 1)
        per_block[short] = per_short
        position[short] = np.arange(int(short.sum()))
    slot = position // per_block
    _, block = np.unique(np.where(short, slot, (cls + 1) * (1 << 40) + slot), return_inverse=True)
    local = position % per_block  # row of each client in its block (clients in code order)
    members = np.argsort(block, kind="stable")  # clients grouped by block, in code order
    member_start = np.concatenate(([0], np.cumsum(np.bincount(block))))
    n_codes = len(cols.codes)

    def matrices(b: int, rows_of: Iterable[tuple[int, npt.NDArray[np.intp]]]) -> Block:
        """Block ``b``'s matrix of each measure ``m`` from its rows ``here`` (in row order)."""
        found: Block = []
        for m, here in rows_of:
            client = cols.client[here]
            row = local[client]
            col = cols.session[here] - 1
            clients = members[member_start[b] : member_start[b + 1]]
            values = np.full((clients.size, int(col.max()) + 1), np.nan)
            values[row, col] = cols.score[here]
            last = np.zeros(clients.size, dtype=np.int64)
            np.maximum.at(last, row, col + 1)
            scored = np.bincount(row, minlength=clients.size) > 0
            if not scored.all():
                values, last, clients = values[scored], last[scored], clients[scored]
            ids = pl.Series("client_id", clients, dtype=pl.Int64)
            found.append((cols.codes[m], SeriesMatrix(ids, values, last)))
        return found

    n_short = 0
    if ranges and short.any():
        n_short = int(block[short].max()) + 1  # short blocks are numbered first
        mixed = not short.all()
        for b in range(n_short):
            first, end = members[member_start[b]], members[member_start[b + 1] - 1] + 1
            r0, r1 = int(row_start[first]), int(row_start[end])
            measure = cols.measure[r0:r1]
            inside = short[cols.client[r0:r1]] if mixed else None
            rows_of = []
            for m in range(n_codes):
                mask = measure == m
                if inside is not None:
                    mask &= inside
                here = np.flatnonzero(mask)
                if here.size:
                    rows_of.append((m, here + r0))
            if rows_of:
                yield matrices(b, rows_of)
        if not mixed:
            return
    # The other blocks: rows sorted by block, then measure (stable: in row order within).
    if n_short:
        rest = np.flatnonzero(~short[cols.client])
        key = block[cols.client[rest]] * n_codes + cols.measure[rest]
        rows = rest[stable_order(key)]
    else:
        key = block[cols.client] * n_codes + cols.measure
        rows = stable_order(key)
    sizes = np.bincount(key)
    del key
    ends = np.cumsum(sizes)
    current: list[tuple[int, npt.NDArray[np.intp]]] = []
    previous = -1
    for k in np.flatnonzero(sizes):
        start, end = int(ends[k] - sizes[k]), int(ends[k])
        b, m = divmod(int(k), n_codes)
        if b != previous and current:
            yield matrices(previous, current)
            current = []
        previous = b
        current.append((m, rows[start:end]))
    if current:
        yield matrices(previous, current)


def analyze(
    data: pl.DataFrame,
    measures: Mapping[str, Instrument],
    *,
    reference: pl.DataFrame | None = None,
    source: str = "input",
    reference_source: str | None = None,
    step: Step | None = None,
    trajectory_model: str = "ols",
) -> Results:
    """Run every applicable method on checked long data (see :mod:`bordin.measures.longdata`)."""
    tell = step or (lambda _label: None)
    cols = row_arrays(data)
    stats = stats_of_rows(cols)
    present = tuple(sorted(k for k, v in stats.items() if isinstance(v, dict)))
    tell("fitting expected trajectories")
    the_plan = plan(
        data,
        measures,
        reference=reference,
        reference_source=reference_source,
        trajectory_model=trajectory_model,
        present=present,
        # The growth model reads the client rows itself; the least-squares fit takes its inputs
        # from the arrays built above.
        fit_counts=None
        if trajectory_model == "growth"
        else fit_counts_by_code(cols, [c for c in present if measures[c].role == "outcome"]),
    )
    tell("analysing clients")
    tables = analyze_rows(cols, the_plan)
    del cols
    counts = table_counts(tables)
    return Results(tables=tables, summary=summarise(the_plan, stats, counts, source=source))


def measure_runs(table: pl.DataFrame) -> Iterator[tuple[str, pl.DataFrame]]:
    """Each measure's rows of ``table`` (sorted by measure) as a slice of it, not a copy."""
    start = 0
    if table.height:
        for n, code in table.get_column("measure").rle().struct.unnest().iter_rows():
            yield str(code), table.slice(start, n)
            start += n


def table_counts(tables: Mapping[str, pl.DataFrame]) -> dict[str, int]:
    """The counts of each output table the summary reports (additive over partitions).

    The tables are sorted by measure, then client: each measure is one run of rows, and a
    client's rows within it are consecutive, so distinct clients are counted as changes of
    ``client_id`` along the run (no grouping, no copies of the tables, which can be large).
    """
    counts: dict[str, int] = {}

    def add(key: str, n: int) -> None:
        counts[key] = counts.get(key, 0) + n

    def clients(ids: pl.Series) -> int:
        return int(ids.ne_missing(ids.shift(1)).sum()) if ids.len() else 0

    for name, column in (
        ("change", "category"),
        ("trajectories", "status"),
        ("ruptures", "status"),
        ("sudden_changes", "kind"),
    ):
        if name not in tables:
            continue
        for code, run in measure_runs(tables[name]):
            key = f"{name}/{code}"
            add(key, run.height)
            ids = run.get_column("client_id")
            if name == "trajectories":  # two statuses: one comparison instead of a hash count
                flagged = run.get_column("status") == trajectories.NOT_ON_TRACK
                n_flagged = int(flagged.sum())
                for value, k in (
                    (trajectories.ON_TRACK, run.height - n_flagged),
                    (trajectories.NOT_ON_TRACK, n_flagged),
                ):
                    if k:
                        add(f"{key}/{value}", k)
                add(f"{key}/flagged_clients", clients(ids.filter(flagged)))
            else:
                for value, k in run.get_column(column).value_counts().iter_rows():
                    add(f"{key}/{value}", int(k))
            if name == "sudden_changes":
                add(f"{key}/gain_clients", clients(ids.filter(run.get_column("kind") == "gain")))
            elif name != "change":
                add(f"{key}/clients", clients(ids))
    outcomes = tables.get("outcomes")
    if outcomes is not None and outcomes.height:
        counts["outcomes"] = outcomes.height
        for column in SCHEMAS["outcomes"][3:]:
            counts[f"outcomes/{column}"] = int(outcomes.get_column(column).sum())
    return counts


def add_counts(total: dict[str, Any], more: Mapping[str, Any]) -> dict[str, Any]:
    """Sum two count mappings key by key (nested mappings too): partitions' counts add up."""
    for key, value in more.items():
        if isinstance(value, Mapping):
            total[key] = add_counts(dict(total.get(key, {})), value)
        else:
            total[key] = total.get(key, 0) + value
    return total


def summarise(
    plan: Plan, stats: Mapping[str, Any], counts: Mapping[str, int], *, source: str
) -> dict[str, Any]:
    """``summary.json`` from the plan, the input's counts and the output tables' counts."""

    def n(key: str) -> int:
        return int(counts.get(key, 0))

    summary: dict[str, Any] = {
        "input": {
            "file": source,
            "rows": stats["rows"],
            "clients": stats["clients"],
            "measures": {},
        },
        "sudden_changes": {},
        "change": {},
        "ruptures": {},
        "trajectories": {},
        "outcomes": None,
        "excluded": [],
    }
    excluded: list[dict[str, Any]] = summary["excluded"]
    for code in plan.present:
        inst = plan.measures[code]
        st = stats[code]
        summary["input"]["measures"][code] = {"rows": st["rows"], "clients": st["clients"]}

        if inst.reliable_change is not None:
            c = f"change/{code}"
            summary["change"][code] = {
                "clients": n(c),
                "threshold": inst.reliable_change,
                "caseness": inst.caseness,
                **{k: n(f"{c}/{k}") for k in ("recovered", "improved", "unchanged")},
                "deteriorated": n(f"{c}/deteriorated"),
                "reliable_improvement_rate": _rate(n(f"{c}/recovered") + n(f"{c}/improved"), n(c)),
                "deterioration_rate": _rate(n(f"{c}/deteriorated"), n(c)),
            }
            single = st["single"]
            if single:
                excluded.append(
                    {
                        "analysis": "change",
                        "measure": code,
                        "clients": single,
                        "rows": single,
                        "why": "only one score, so there is no change to measure",
                    }
                )
        else:
            excluded.append(
                {
                    "analysis": "change",
                    "measure": code,
                    "rows": st["rows"],
                    "why": "the measure has no reliable-change threshold",
                }
            )

        if inst.role == "outcome":
            cutoff = inst.effective_sudden_gain_cutoff
            if cutoff is not None:
                s = f"sudden_changes/{code}"
                eligible = st["four_plus"]
                summary["sudden_changes"][code] = {
                    "cutoff": cutoff,
                    "gains": n(f"{s}/gain"),
                    "losses": n(f"{s}/loss"),
                    "clients_with_gain": n(f"{s}/gain_clients"),
                    "clients_with_four_or_more_sessions": eligible,
                    "gain_rate": _rate(n(f"{s}/gain_clients"), eligible),
                }
            else:
                excluded.append(
                    {
                        "analysis": "sudden_changes",
                        "measure": code,
                        "rows": st["rows"],
                        "why": "no sudden-gain cut-off or reliable-change threshold",
                    }
                )
            summary["trajectories"][code] = _trajectories(code, plan, st, counts, excluded)

        if inst.role == "alliance":
            rule = rupture_rules.setting_for(inst)
            if rule is not None:
                r = f"ruptures/{code}"
                summary["ruptures"][code] = {
                    "threshold": round(rule.threshold, 4),
                    "rule": rule.rule,
                    "threshold_from": rule.source,
                    "ruptures": n(r),
                    "clients_with_rupture": n(f"{r}/clients"),
                    "clients": st["clients"],
                    **{k: n(f"{r}/{k}") for k in ("repaired", "unrepaired", "open")},
                    "repair_rate": _rate(
                        n(f"{r}/repaired"), n(f"{r}/repaired") + n(f"{r}/unrepaired")
                    ),
                }
            else:
                excluded.append(
                    {
                        "analysis": "ruptures",
                        "measure": code,
                        "rows": st["rows"],
                        "why": "no rupture threshold; set one with --rupture-threshold CODE=VALUE",
                    }
                )

    if {"phq9", "gad7"} <= set(plan.present):
        total = n("outcomes")
        n_case = n("outcomes/case_at_start")
        summary["outcomes"] = {
            "clients": total,
            "case_at_start": n_case,
            "recovered": n("outcomes/recovered"),
            "reliable_improvement": n("outcomes/reliable_improvement"),
            "reliable_deterioration": n("outcomes/reliable_deterioration"),
            "reliable_recovery": n("outcomes/reliable_recovery"),
            "recovery_rate": _rate(n("outcomes/recovered"), n_case),
            "reliable_improvement_rate": _rate(n("outcomes/reliable_improvement"), total),
            "reliable_deterioration_rate": _rate(n("outcomes/reliable_deterioration"), total),
            "reliable_recovery_rate": _rate(n("outcomes/reliable_recovery"), n_case),
            "course": "interim",
            "course_note": "long data carry no episode endings, so these are interim results",
        }
        left_out = stats["phq9_or_gad7_clients"] - total
        if left_out:
            excluded.append(
                {
                    "analysis": "outcomes",
                    "measure": "phq9+gad7",
                    "clients": left_out,
                    "why": "fewer than two sessions with both PHQ-9 and GAD-7",
                }
            )
    return annotate_summary(summary)


def write_summary(
    out: Path,
    plan: Plan,
    stats: Mapping[str, Any],
    counts: Mapping[str, int],
    *,
    source: str,
    merged: list[tuple[str, str]],
) -> dict[str, Any]:
    """``summary.json`` of a run done in parts (:func:`summarise`, plus how many client ids
    normalisation merged), written into ``out``; returns the summary."""
    summary = summarise(plan, stats, counts, source=source)
    if merged:
        summary["input"]["merged_client_ids"] = len(merged)
    (out / "summary.json").write_text(
        json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8"
    )
    return summary


def _rows_of(data: pl.DataFrame | pl.LazyFrame, code: str) -> pl.DataFrame:
    return (
        data.lazy()
        .filter(pl.col("measure") == code)
        .select("client_id", "session", "score")
        .collect()
    )


def _trajectories(
    code: str,
    plan: Plan,
    st: Mapping[str, int],
    counts: Mapping[str, int],
    excluded: list[dict[str, Any]],
) -> dict[str, Any]:
    model = plan.models.get(code)
    notes = plan.model_notes[code]
    if model is None:
        excluded.append(
            {"analysis": "trajectories", "measure": code, "rows": None, "why": notes["why"]}
        )
        return {"fitted_on": notes["fitted_on"], "model": None}
    height = int(counts.get(f"trajectories/{code}", 0))
    flagged = int(counts.get(f"trajectories/{code}/not_on_track", 0))
    clients = int(counts.get(f"trajectories/{code}/clients", 0))
    flagged_clients = int(counts.get(f"trajectories/{code}/flagged_clients", 0))
    if st["no_intake_rows"]:
        excluded.append(
            {
                "analysis": "trajectories",
                "measure": code,
                "clients": st["no_intake_clients"],
                "rows": st["no_intake_rows"],
                "why": "no session-1 (intake) score to predict from",
            }
        )
    return {
        "fitted_on": notes["fitted_on"],
        "note": notes["note"],
        "sessions": height,
        "not_on_track": flagged,
        "not_on_track_share": _rate(flagged, height),
        # Per client: a nominal 10% of sessions flags many more clients at least once.
        "clients": clients,
        "clients_not_on_track": flagged_clients,
        "clients_not_on_track_share": _rate(flagged_clients, clients),
        "model": model.to_dict(),
    }


#: The files ``bordin analyze`` writes: an output folder holding only these can be replaced.
RESULT_FILES = frozenset(
    {*(f"{name}.{ext}" for name in SCHEMAS for ext in ("csv", "parquet")), "summary.json"}
)


class OutputError(OSError):
    """The output folder cannot be (re)placed; the message says what to do."""


def _check_replaceable(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder; choose a folder name for --out")
    if out.is_dir():
        others = sorted(p.name for p in out.iterdir() if p.name not in RESULT_FILES)
        if others:
            listed = ", ".join(others[:5]) + (" ..." if len(others) > 5 else "")
            raise OutputError(
                f"{out}: holds files that are not results of bordin analyze ({listed}); "
                "the whole folder is replaced by each run, so choose a new or empty folder"
            )


def _fresh_folder(out: Path, kind: str) -> Path:
    """A new, uniquely named hidden folder beside ``out`` (with the usual permissions)."""
    while True:
        folder = out.parent / f".{out.name}.bordin-{kind}-{secrets.token_hex(4)}"
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder


@contextmanager
def staged_output(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out`` that replaces ``out`` as a whole on success.

    The folder then holds exactly one run's results; on any failure ``out`` is left as it was
    (and the temporary folder is removed).
    """
    _check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _fresh_folder(out, "new")
    try:
        yield tmp
        if out.exists():
            old = _fresh_folder(out, "old")
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


#: Rows :func:`write_keyed_csv` writes at a time.
KEYED_ROWS = 1 << 20


def write_keyed_csv(rows: pl.DataFrame, out: BinaryIO, code: str) -> bool:
    """Trajectory rows of measure ``code`` as CSV lines (no header) without formatting each
    row's numbers: every column after ``client_id`` and ``measure`` is a function of the row's
    :data:`~bordin.measures.trajectories.TAIL_KEY`, so each distinct key's columns are
    formatted once (by Polars' CSV writer, as the whole table would be) and each line is
    written as the client id, the code and its key's text. The bytes are those of
    ``rows.drop(TAIL_KEY).write_csv(include_header=False, quote_style="never")`` (tested).

    Only for rows whose client ids and code need no quoting (the caller knows); returns False,
    writing nothing, when a key is missing (a score not a whole number) or the ids are
    neither integers nor text.
    """
    key = rows.get_column(trajectories.TAIL_KEY).to_numpy()
    ids = rows.get_column("client_id")
    if not key.size or int(key.min()) < 0 or not (ids.dtype.is_integer() or ids.dtype == pl.String):
        return False
    n_keys = int(key.max()) + 1
    one = np.full(n_keys, -1, dtype=np.int64)
    one[key] = np.arange(key.size)  # a row of each key (any: they all read the same)
    present = np.flatnonzero(one >= 0)
    text = (
        rows[one[present]]
        .select(SCHEMAS["trajectories"][2:])
        .write_csv(include_header=False, quote_style="never")
    )
    tails = pl.Series(text.split("\n")[:-1], dtype=pl.String)
    index = np.zeros(n_keys, dtype=np.int64)
    index[present] = np.arange(present.size)
    for a in range(0, rows.height, KEYED_ROWS):
        lines = pl.DataFrame(
            {
                "client_id": ids.slice(a, KEYED_ROWS),
                "tail": tails.gather(index[key[a : a + KEYED_ROWS]]),
            }
        ).select("client_id", pl.lit(code).alias("measure"), "tail")
        lines.write_csv(out, include_header=False, quote_style="never")
    return True


#: Output columns whose words Bordin writes itself (``gain``, ``on_track`` ...): never formulas.
OWN_WORDS = frozenset({"kind", "category", "status"})


def write_table(table: pl.DataFrame, path: Path) -> None:
    """One output table as CSV (text cells that would run as formulas made inert) or, for a
    ``.parquet`` path, as Parquet (typed, as computed)."""
    if path.suffix == ".parquet":
        table.write_parquet(path)
    else:
        neutralise_formulas(table, skip=OWN_WORDS).write_csv(path)


def write_results(results: Results, out: Path, *, out_format: str = "csv") -> list[Path]:
    """Write every table (CSV or Parquet) plus ``summary.json``, replacing ``out`` as a whole."""
    with staged_output(out) as tmp:
        for name, table in results.tables.items():
            write_table(table, tmp / f"{name}.{out_format}")
        (tmp / "summary.json").write_text(
            json.dumps(results.summary, indent=2, default=str) + "\n", encoding="utf-8"
        )
        names = sorted(p.name for p in tmp.iterdir())
    return [out / name for name in names]
