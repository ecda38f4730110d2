"""Batch analysis of a whole data set: what ``bordin analyze`` runs.

Each measure in the input is turned into one :class:`~bordin.measures.series.SeriesMatrix` and
every applicable method runs over all clients at once:

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

Results are computed in full before anything is written; files are then written into a
temporary folder inside ``out`` and moved into place, so a failure leaves no partial output.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bordin.measures import ruptures, sudden_gains, trajectories
from bordin.measures.instruments import Instrument
from bordin.measures.intervals import annotate_summary
from bordin.measures.outcomes import paired_from_matrices
from bordin.measures.reliable_change import change_table
from bordin.measures.series import SeriesMatrix

Step = Callable[[str], None]

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
    return frame.with_columns(pl.lit(code).alias("measure")).select(SCHEMAS[name])


def _concat(frames: list[pl.DataFrame], name: str) -> pl.DataFrame:
    frames = [f for f in frames if f.height]
    if not frames:
        return pl.DataFrame(schema=dict.fromkeys(SCHEMAS[name], pl.String))
    return pl.concat(frames, how="vertical_relaxed")


def analyze(
    data: pl.DataFrame,
    measures: Mapping[str, Instrument],
    *,
    reference: pl.DataFrame | None = None,
    source: str = "input",
    reference_source: str | None = None,
    step: Step | None = None,
) -> Results:
    """Run every applicable method on checked long data (see :mod:`bordin.measures.longdata`)."""
    tell = step or (lambda _label: None)
    sg_frames: list[pl.DataFrame] = []
    change_frames: list[pl.DataFrame] = []
    rupture_frames: list[pl.DataFrame] = []
    trajectory_frames: list[pl.DataFrame] = []
    summary: dict[str, Any] = {
        "input": {
            "file": source,
            "rows": data.height,
            "clients": data.get_column("client_id").n_unique(),
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
    present = sorted(data.get_column("measure").cast(pl.String).unique().to_list())
    matrices: dict[str, SeriesMatrix] = {}
    for code in present:
        inst = measures[code]
        tell(f"{code}: building series")
        part = _rows_of(data, code)
        matrix = matrices[code] = SeriesMatrix.from_long(part)
        summary["input"]["measures"][code] = {"rows": part.height, "clients": matrix.n_clients}
        scores_per_client = (~np.isnan(matrix.values)).sum(axis=1)
        lower = inst.lower_is_better

        if inst.reliable_change is not None:
            tell(f"{code}: reliable change")
            table = change_table(
                matrix,
                threshold=inst.reliable_change,
                lower_is_better=lower,
                caseness=inst.caseness,
            )
            change_frames.append(_with_measure(table, code, "change"))
            counts = dict(table.get_column("category").value_counts().iter_rows())
            summary["change"][code] = {
                "clients": table.height,
                "threshold": inst.reliable_change,
                "caseness": inst.caseness,
                **{c: int(counts.get(c, 0)) for c in ("recovered", "improved", "unchanged")},
                "deteriorated": int(counts.get("deteriorated", 0)),
                "reliable_improvement_rate": _rate(
                    int(counts.get("recovered", 0)) + int(counts.get("improved", 0)), table.height
                ),
                "deterioration_rate": _rate(int(counts.get("deteriorated", 0)), table.height),
            }
            single = int((scores_per_client == 1).sum())
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
                    "rows": part.height,
                    "why": "the measure has no reliable-change threshold",
                }
            )

        if inst.role == "outcome":
            cutoff = inst.effective_sudden_gain_cutoff
            if cutoff is not None:
                tell(f"{code}: sudden gains and losses")
                sg = sudden_gains.identify(matrix, cutoff=cutoff, lower_is_better=lower)
                sg_frames.append(_with_measure(sg, code, "sudden_changes"))
                kinds = sg.get_column("kind")
                eligible = int((matrix.last_session >= 4).sum())
                gain_clients = sg.filter(pl.col("kind") == "gain").get_column("client_id")
                summary["sudden_changes"][code] = {
                    "cutoff": cutoff,
                    "gains": int((kinds == "gain").sum()),
                    "losses": int((kinds == "loss").sum()),
                    "clients_with_gain": gain_clients.n_unique(),
                    "clients_with_four_or_more_sessions": eligible,
                    "gain_rate": _rate(gain_clients.n_unique(), eligible),
                }
            else:
                excluded.append(
                    {
                        "analysis": "sudden_changes",
                        "measure": code,
                        "rows": part.height,
                        "why": "no sudden-gain cut-off or reliable-change threshold",
                    }
                )
            tell(f"{code}: expected trajectories")
            summary["trajectories"][code] = _trajectories(
                code, inst, matrix, reference, reference_source, trajectory_frames, excluded
            )

        if inst.role == "alliance":
            if inst.rupture_threshold is not None:
                tell(f"{code}: ruptures and repairs")
                rup = ruptures.detect(matrix, threshold=inst.rupture_threshold)
                rupture_frames.append(_with_measure(rup, code, "ruptures"))
                status = dict(rup.get_column("status").value_counts().iter_rows())
                summary["ruptures"][code] = {
                    "threshold": inst.rupture_threshold,
                    "ruptures": rup.height,
                    "clients_with_rupture": rup.get_column("client_id").n_unique(),
                    "clients": matrix.n_clients,
                    **{s: int(status.get(s, 0)) for s in ("repaired", "unrepaired", "open")},
                    "repair_rate": _rate(
                        int(status.get("repaired", 0)),
                        int(status.get("repaired", 0)) + int(status.get("unrepaired", 0)),
                    ),
                }
            else:
                excluded.append(
                    {
                        "analysis": "ruptures",
                        "measure": code,
                        "rows": part.height,
                        "why": "no rupture threshold; set one with --rupture-threshold CODE=VALUE",
                    }
                )

    tables: dict[str, pl.DataFrame] = {
        "sudden_changes": _concat(sg_frames, "sudden_changes"),
        "change": _concat(change_frames, "change"),
        "ruptures": _concat(rupture_frames, "ruptures"),
        "trajectories": _concat(trajectory_frames, "trajectories"),
    }
    if {"phq9", "gad7"} <= set(present):
        tell("phq9+gad7: paired outcomes")
        paired = paired_from_matrices(
            matrices["phq9"], matrices["gad7"], phq9=measures["phq9"], gad7=measures["gad7"]
        )
        tables["outcomes"] = paired.table.select(SCHEMAS["outcomes"])
        t = paired.table
        n_case = int(t.get_column("case_at_start").sum())
        summary["outcomes"] = {
            "clients": t.height,
            "case_at_start": n_case,
            "recovered": int(t.get_column("recovered").sum()),
            "reliable_improvement": int(t.get_column("reliable_improvement").sum()),
            "reliable_deterioration": int(t.get_column("reliable_deterioration").sum()),
            "reliable_recovery": int(t.get_column("reliable_recovery").sum()),
            "recovery_rate": _rate(int(t.get_column("recovered").sum()), n_case),
            "reliable_improvement_rate": _rate(
                int(t.get_column("reliable_improvement").sum()), t.height
            ),
            "reliable_deterioration_rate": _rate(
                int(t.get_column("reliable_deterioration").sum()), t.height
            ),
            "reliable_recovery_rate": _rate(int(t.get_column("reliable_recovery").sum()), n_case),
            "course": "interim",
            "course_note": "long data carry no episode endings, so these are interim results",
        }
        if paired.excluded_clients:
            excluded.append(
                {
                    "analysis": "outcomes",
                    "measure": "phq9+gad7",
                    "clients": paired.excluded_clients,
                    "why": "fewer than two sessions with both PHQ-9 and GAD-7",
                }
            )
    return Results(tables=tables, summary=annotate_summary(summary))


def _rows_of(data: pl.DataFrame, code: str) -> pl.DataFrame:
    return data.filter(pl.col("measure") == code).select("client_id", "session", "score")


def _trajectories(
    code: str,
    inst: Instrument,
    matrix: SeriesMatrix,
    reference: pl.DataFrame | None,
    reference_source: str | None,
    frames: list[pl.DataFrame],
    excluded: list[dict[str, Any]],
) -> dict[str, Any]:
    ref_part = _rows_of(reference, code) if reference is not None else None
    if ref_part is not None and ref_part.height == 0:
        ref_part = None
    fitted_on = reference_source if ref_part is not None else "input"
    ref_matrix = SeriesMatrix.from_long(ref_part) if ref_part is not None else matrix
    try:
        model = trajectories.fit(ref_matrix, lower_is_better=inst.lower_is_better)
    except ValueError as exc:
        excluded.append(
            {"analysis": "trajectories", "measure": code, "rows": None, "why": str(exc)}
        )
        return {"fitted_on": fitted_on, "model": None}
    table = model.evaluate(matrix)
    frames.append(_with_measure(table, code, "trajectories"))
    flagged = int((table.get_column("status") == "not_on_track").sum())
    missing = np.isnan(matrix.values)
    no_intake = missing[:, 0]
    rows_without_intake = int((~missing[no_intake]).sum())
    if rows_without_intake:
        excluded.append(
            {
                "analysis": "trajectories",
                "measure": code,
                "clients": int(no_intake.sum()),
                "rows": rows_without_intake,
                "why": "no session-1 (intake) score to predict from",
            }
        )
    note = None
    if reference is not None and ref_part is None:
        note = f"the reference file has no '{code}' scores, so the model was fitted on the input"
    return {
        "fitted_on": fitted_on,
        "note": note,
        "sessions": table.height,
        "not_on_track": flagged,
        "not_on_track_share": _rate(flagged, table.height),
        "model": model.to_dict(),
    }


@contextmanager
def _staging(out: Path) -> Iterator[Path]:
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".bordin-", dir=out))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_results(results: Results, out: Path) -> list[Path]:
    """Write every table as CSV plus ``summary.json``; all or nothing."""
    written: list[Path] = []
    with _staging(out) as tmp:
        for name, table in results.tables.items():
            table.write_csv(tmp / f"{name}.csv")
        (tmp / "summary.json").write_text(
            json.dumps(results.summary, indent=2, default=str) + "\n", encoding="utf-8"
        )
        for item in sorted(tmp.iterdir()):
            target = out / item.name
            os.replace(item, target)
            written.append(target)
    return written
