"""The outcomes report: what ``bordin report`` and the admin's outcomes page show.

:func:`build` turns checked long data (:mod:`bordin.measures.longdata`) into a plain,
JSON-ready structure of sections; every number is a :class:`Row` with its n, its method and its
source. :mod:`bordin.measures.report_html` renders it as one self-contained HTML page (inline
SVG, no network) and as PDF. The methods, formulas and citations are in ``docs/report.md``.

Episode information is optional: a per-client ``ending_reason`` (``planned``,
``dropped_out``, ...; empty while the episode is open) makes the NHS Talking Therapies outcome
"finished" for ended courses and gives dropout by rupture status; without it the outcome is
labelled *interim* and dropout is not shown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from bordin.measures import (
    alliance_outcome,
    clinical_significance,
    effect_sizes,
    growth,
    rci_variants,
    rupture_noise,
    rupture_rules,
    sudden_gains,
    therapist_effects,
    trajectories,
)
from bordin.measures.instruments import Instrument
from bordin.measures.intervals import wilson
from bordin.measures.outcomes import anxiety_measure, course_status, paired_from_matrices
from bordin.measures.reliable_change import change_table
from bordin.measures.series import SeriesMatrix

#: Published reference values, carried as numbers with their sources (docs/report.md says how
#: each was checked).
NHS_TT_SOURCE = "NHS England 2025"
NHS_TT_RI_SOURCE = "NHS Digital 2018"
DELGADILLO = "Delgadillo et al. 2014"
BENCHMARK_RATES: dict[str, tuple[float, str]] = {
    "reliable_recovery": (0.484, NHS_TT_SOURCE),
    "reliable_improvement": (0.664, NHS_TT_RI_SOURCE),
}
#: Pre-post effect-size benchmarks (poor, average, high performance) for routine services.
EFFECT_BENCHMARKS: dict[str, tuple[tuple[str, float], ...]] = {
    "phq9": (("poor", 0.46), ("average", 0.73), ("high", 0.91)),
    "gad7": (("poor", 0.52), ("average", 0.78), ("high", 1.02)),
}
#: Full citations of the short source names used in the report's rows.
REFERENCES: dict[str, str] = {
    NHS_TT_SOURCE: "NHS England (2025). NHS Talking Therapies Monthly Statistics, performance "
    "April 2025: 26,457 of 54,672 finished courses at caseness (48.4%) reliably recovered.",
    NHS_TT_RI_SOURCE: "NHS Digital (2018). Psychological Therapies: Annual report on the use of "
    "IAPT services, England 2017-18: 66.4% of finished courses showed reliable improvement.",
    DELGADILLO: "Delgadillo, J., McMillan, D., Leach, C., Lucock, M., Gilbody, S., & Wood, N. "
    "(2014). Benchmarking routine psychological services: a discussion of challenges and "
    "methods. Behavioural and Cognitive Psychotherapy, 42(1), 16-30. Pre-post d benchmarks "
    "(poor / average / high): PHQ-9 0.46 / 0.73 / 0.91; GAD-7 0.52 / 0.78 / 1.02.",
    "Wilson 1927": "Wilson, E. B. (1927). Probable inference, the law of succession, and "
    "statistical inference. JASA, 22(158), 209-212.",
    "Jacobson & Truax 1991": "Jacobson, N. S., & Truax, P. (1991). Clinical significance: a "
    "statistical approach to defining meaningful change in psychotherapy research. J Consult "
    "Clin Psychol, 59(1), 12-19.",
    "Becker 1988": "Becker, B. J. (1988). Synthesizing standardized mean-change measures. Br J "
    "Math Stat Psychol, 41, 257-278.",
    "NHS TT manual": "NHS England (2024). NHS Talking Therapies for anxiety and depression "
    "manual, v7.",
    "Baldwin & Imel 2013": "Baldwin, S. A., & Imel, Z. E. (2013). Therapist effects. In "
    "Bergin and Garfield's Handbook of Psychotherapy and Behavior Change (6th ed.), 258-297.",
    "Searle 1971": "Searle, S. R. (1971). Linear Models. Wiley (F-based ICC interval).",
    "Falkenström et al. 2013": "Falkenström, F., Granström, F., & Holmqvist, R. (2013). "
    "Therapeutic alliance predicts symptomatic improvement session by session. J Couns "
    "Psychol, 60(3), 317-328.",
    "Zilcha-Mano 2017": "Zilcha-Mano, S. (2017). Is the alliance really therapeutic? "
    "American Psychologist, 72(4), 311-325.",
    "Tang & DeRubeis 1999": "Tang, T. Z., & DeRubeis, R. J. (1999). Sudden gains and critical "
    "sessions in cognitive-behavioral therapy for depression. J Consult Clin Psychol, 67(6), "
    "894-904.",
    "Speer 1992": "Speer, D. C. (1992). Clinically significant change: Jacobson and Truax "
    "(1991) revisited. J Consult Clin Psychol, 60(3), 402-408 (Edwards-Nunnally).",
    "Hageman & Arrindell 1993": "Hageman, W. J. J. M., & Arrindell, W. A. (1993). A further "
    "refinement of the reliable change (RC) index. Behav Res Ther, 31(7), 693-700.",
}
WILSON = "Wilson 95% interval"
VARIANT_SOURCES = {
    "Jacobson–Truax": "this data set; Jacobson & Truax 1991",
    "Edwards–Nunnally": "this data set; Speer 1992",
    "Hageman–Arrindell": "this data set; Hageman & Arrindell 1993",
}


@dataclass
class Row:
    """One reported number: what it is, its value and CI, its n, method and source."""

    what: str
    value: str
    ci: str = ""
    n: str = ""
    method: str = ""
    source: str = ""


@dataclass
class Section:
    key: str
    title: str
    intro: str = ""
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    charts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Report:
    title: str
    source: str
    sections: list[Section]
    interim: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def references(self) -> list[tuple[str, str]]:
        """Full citations of every source named in the report's rows, in a stable order."""
        text = " ".join(r.source + " " + r.method for s in self.sections for r in s.rows)
        return [(key, cite) for key, cite in REFERENCES.items() if key in text]


def _pct(k: int, n: int) -> tuple[str, str]:
    if n == 0:
        return "–", ""
    low, high = wilson(k, n)
    return f"{100 * k / n:.1f}%", f"{100 * low:.1f}–{100 * high:.1f}%"


def _rate_row(
    what: str, k: int, n: int, *, of: str, source: str = "this data set; Wilson 1927"
) -> Row:
    value, ci = _pct(k, n)
    return Row(what, f"{value} ({k:,} of {n:,})", ci, f"{n:,} {of}", WILSON, source)


def _num(x: float, digits: int = 2) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _mean_ci(values: np.ndarray) -> tuple[float, float, float]:
    n = values.size
    mean = float(values.mean())
    if n < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half


def build(
    data: pl.DataFrame,
    measures: Mapping[str, Instrument],
    *,
    source: str = "input",
    endings: Mapping[Any, str] | None = None,
    adsm: str | None = None,
    d_ci: effect_sizes.CiMethod = "analytic",
    title: str = "Outcomes report",
    rupture_threshold_from_data: bool = False,
) -> Report:
    """Compute every section of the report from checked long data.

    ``rupture_threshold_from_data``: derive the reliable rupture threshold from these data when
    they are enough (as the web app's alerts do on a clinic's data), else from the measure.
    """
    present = sorted(data.get_column("measure").cast(pl.String).unique().to_list())
    matrices = {
        code: SeriesMatrix.from_long(
            data.filter(pl.col("measure").cast(pl.String) == code).select(
                "client_id", "session", "score"
            )
        )
        for code in present
    }
    outcome_codes = [c for c in present if measures[c].role == "outcome"]
    alliance_codes = [c for c in present if measures[c].role == "alliance"]
    primary = "phq9" if "phq9" in outcome_codes else (outcome_codes[0] if outcome_codes else None)
    has_therapist = "therapist_id" in data.columns
    sections = [
        _overview(data, present, source, has_therapist, endings),
        _completion(data, present, has_therapist),
    ]
    for code in outcome_codes:
        sections.append(_change(code, measures[code], matrices[code], d_ci))
    interim = False  # only the NHS Talking Therapies outcome has a finished/interim status
    anx = anxiety_measure(adsm, frozenset(present))
    if "phq9" in present and anx is not None:
        section, interim = _nhs_tt(matrices, measures, anx, endings)
        sections.append(section)
    if outcome_codes:
        sections.append(_therapists(data, outcome_codes, matrices, has_therapist))
    if alliance_codes and primary is not None:
        sections.append(_alliance_outcome(data, alliance_codes, primary, measures))
    if alliance_codes:
        sections.append(
            _ruptures(
                alliance_codes, matrices, measures, primary, endings, rupture_threshold_from_data
            )
        )
    if outcome_codes:
        sections.append(_sudden_gains(outcome_codes, matrices, measures))
    if outcome_codes:
        sections.append(_alarms(outcome_codes, matrices, measures))
    return Report(title=title, source=source, sections=sections, interim=interim)


def _overview(
    data: pl.DataFrame,
    present: list[str],
    source: str,
    has_therapist: bool,
    endings: Mapping[Any, str] | None,
) -> Section:
    clients = data.get_column("client_id").n_unique()
    sessions = data.select("client_id", "session").unique().height
    rows = [
        Row("clients", f"{clients:,}", n=f"{clients:,}", method="count", source=source),
        Row(
            "sessions with any score",
            f"{sessions:,}",
            n=f"{sessions:,}",
            method="count",
            source=source,
        ),
        Row("scores", f"{data.height:,}", n=f"{data.height:,}", method="count", source=source),
        Row("measures", ", ".join(present), method="as given", source=source),
    ]
    if has_therapist:
        k = data.get_column("therapist_id").n_unique()
        rows.append(Row("therapists", f"{k:,}", n=f"{k:,}", method="count", source=source))
    notes = []
    if endings is None:
        notes.append(
            "The data carry no episode endings, so every course counts as still open: the "
            "NHS Talking Therapies results below are interim, and dropout is not shown."
        )
    return Section("overview", "The data", rows=rows, notes=notes)


def _completion(data: pl.DataFrame, present: list[str], has_therapist: bool) -> Section:
    visits = data.select("client_id", "session").unique()
    n = visits.height
    rows = [
        _rate_row(f"{code}: sessions with a score", k, n, of="sessions")
        for code in present
        for k in [data.filter(pl.col("measure").cast(pl.String) == code).height]
    ]
    charts: list[dict[str, Any]] = []
    notes = [
        "An attended session is one with any score in the data; a session without any score "
        "cannot be seen here, so these rates are upper bounds."
    ]
    if has_therapist:
        therapist_of = data.select("client_id", "session", "therapist_id").unique(
            subset=["client_id", "session"]
        )
        for code in present:
            have = data.filter(pl.col("measure").cast(pl.String) == code).select(
                "client_id", "session", pl.lit(1).alias("_has")
            )
            per = (
                therapist_of.join(have, on=["client_id", "session"], how="left")
                .group_by("therapist_id")
                .agg(pl.len().alias("n"), pl.col("_has").sum().alias("k"))
                .sort("therapist_id")
            )
            rates = (per.get_column("k") / per.get_column("n")).to_numpy()
            rows.append(
                Row(
                    f"{code}: completion per therapist (median, lowest–highest)",
                    f"{100 * float(np.median(rates)):.1f}%",
                    f"{100 * rates.min():.1f}–{100 * rates.max():.1f}%",
                    f"{per.height:,} therapists",
                    "share per therapist; median and range",
                    "this data set",
                )
            )
            charts.append(
                {
                    "kind": "strip",
                    "title": f"{code}: completion per therapist",
                    "values": [float(r) for r in rates],
                    "unit": "share",
                }
            )
    return Section(
        "completion",
        "Completion",
        "Share of attended sessions with a score, per measure (and per therapist).",
        rows,
        notes,
        charts,
    )


def _change(
    code: str, inst: Instrument, matrix: SeriesMatrix, d_ci: effect_sizes.CiMethod
) -> Section:
    section = Section(
        f"change-{code}",
        f"Pre–post change: {inst.name.split(' (')[0]} ({code})",
        "First versus last score of every client with at least two scores.",
    )
    threshold = inst.reliable_change or math.inf
    table = change_table(
        matrix, threshold=threshold, lower_is_better=inst.lower_is_better, caseness=inst.caseness
    )
    pre = table.get_column("baseline").to_numpy()
    post = table.get_column("final").to_numpy()
    try:
        res = effect_sizes.pre_post(pre, post, lower_is_better=inst.lower_is_better, ci=d_ci)
    except ValueError as exc:
        section.notes.append(f"Not computed: {exc}.")
        return section
    better = "lower" if inst.lower_is_better else "higher"
    n = f"{res.n:,} clients"
    section.rows += [
        Row("mean at first score", _num(res.mean_pre), n=n, method="mean", source="this data set"),
        Row("mean at last score", _num(res.mean_post), n=n, method="mean", source="this data set"),
        Row(
            f"mean change (last − first; {better} is better)",
            _num(res.mean_change),
            f"{_num(res.change_low)} to {_num(res.change_high)}",
            n,
            "paired t interval",
            "this data set",
        ),
        Row(
            "within-group effect size d (improvement / SD at intake)",
            _num(res.d),
            f"{_num(res.d_low)} to {_num(res.d_high)}",
            n,
            res.d_method,
            "this data set; Becker 1988; Delgadillo et al. 2014",
        ),
    ]
    refs = EFFECT_BENCHMARKS.get(code, ())
    if refs:
        section.rows.append(
            Row(
                "benchmark d for routine services, " + " / ".join(label for label, _ in refs),
                " / ".join(f"{value:.2f}" for _, value in refs),
                method="meta-analysis of published routine-service data",
                source=DELGADILLO,
            )
        )
    section.charts.append(
        {
            "kind": "effect",
            "title": f"{code}: effect size d with 95% CI and benchmarks",
            "d": res.d,
            "low": res.d_low,
            "high": res.d_high,
            "refs": [{"label": label, "value": v} for label, v in refs],
        }
    )
    if inst.reliable_change is None:
        section.notes.append(
            "No reliable-change threshold is defined for this measure, so reliable change and "
            "clinical significance are not shown (add reliable_change, or reliability and sd)."
        )
        return section
    cut = clinical_significance.cutoffs(
        dys_mean=res.mean_pre,
        dys_sd=res.sd_pre,
        lower_is_better=inst.lower_is_better,
        norm_mean=inst.norm_mean,
        norm_sd=inst.norm_sd,
    )
    cats = clinical_significance.categories(pre, post, threshold=inst.reliable_change, cut=cut)
    jt = "Jacobson & Truax 1991"
    crit = (
        f"criterion {cut.chosen} (cut-off {cut.value:g}; a = {cut.a:g}"
        + (f", b = {cut.b:g}, c = {cut.c:g}" if cut.b is not None else "")
        + f"): {cut.why}"
    )
    section.rows.append(
        Row(
            "clinical significance cut-off",
            f"{cut.value:g}",
            n=n,
            method=crit,
            source=jt + "; norms from the measures file" if cut.b is not None else jt,
        )
    )
    for name in ("recovered", "improved", "unchanged", "deteriorated"):
        k = int((cats == name).sum())
        row = _rate_row(
            f"{name} (reliable change ≥ {inst.reliable_change:.3g})", k, res.n, of="clients"
        )
        row.method = f"{WILSON}; categories of {jt}"
        section.rows.append(row)
    section.charts.append(
        {
            "kind": "categories",
            "title": f"{code}: reliable and clinically significant change",
            "counts": {
                name: int((cats == name).sum())
                for name in ("recovered", "improved", "unchanged", "deteriorated")
            },
        }
    )
    if inst.reliability is not None:
        r = inst.reliability
        variants = {
            "Jacobson–Truax": rci_variants.jacobson_truax(
                pre, post, sd_pre=res.sd_pre, reliability=r, lower_is_better=inst.lower_is_better
            ),
            "Edwards–Nunnally": rci_variants.edwards_nunnally(
                pre,
                post,
                mean_pre=res.mean_pre,
                sd_pre=res.sd_pre,
                reliability=r,
                lower_is_better=inst.lower_is_better,
            ),
        }
        try:
            variants["Hageman–Arrindell"] = rci_variants.hageman_arrindell(
                pre, post, reliability=r, lower_is_better=inst.lower_is_better
            )
        except ValueError as exc:
            section.notes.append(str(exc))
        for name, result in variants.items():
            row = _rate_row(
                f"reliable improvement, {name} RCI (r = {r:g})",
                int((result == 1).sum()),
                res.n,
                of="clients",
            )
            row.method = f"{WILSON}; {name} index, SD and means of this sample"
            row.source = VARIANT_SOURCES[name]
            section.rows.append(row)
    return section


def _nhs_tt(
    matrices: Mapping[str, SeriesMatrix],
    measures: Mapping[str, Instrument],
    anx: str,
    endings: Mapping[Any, str] | None,
) -> tuple[Section, bool]:
    finished: dict[Any, bool] = {}
    phq = matrices["phq9"]
    if endings is not None:
        counts = (~np.isnan(phq.values)).sum(axis=1)
        for cid, contacts in zip(phq.client_ids.to_list(), counts.tolist(), strict=True):
            ended = bool(endings.get(cid))
            finished[cid] = course_status(ended, int(contacts)) == "finished"
    paired = paired_from_matrices(
        phq, matrices[anx], phq9=measures["phq9"], gad7=measures[anx], finished=finished
    )
    table = paired.table
    done = table.filter(pl.col("course") == "finished")
    interim = done.height == 0
    use = table if interim else done
    label = "interim" if interim else "finished courses"
    section = Section(
        "nhs-tt",
        f"NHS Talking Therapies paired outcome (PHQ-9 + {anx.upper()}) — {label}",
        "Recovery and reliable change as the NHS Talking Therapies manual defines them, on the "
        "first and last session with both measures.",
    )
    if interim:
        section.notes.append(
            "INTERIM: no course in these data has a recorded ending with at least two attended "
            "treatment contacts, so these figures include clients still in treatment and are "
            "not comparable with the national figures for finished courses."
        )
    cases = use.filter(pl.col("case_at_start"))
    src = "this data set; NHS TT manual; Wilson 1927"
    method = "paired outcome of the NHS TT manual"
    for what, k, n, of in (
        ("recovery", int(cases.get_column("recovered").sum()), cases.height, "cases at start"),
        (
            "reliable improvement",
            int(use.get_column("reliable_improvement").sum()),
            use.height,
            "clients",
        ),
        (
            "reliable recovery",
            int(cases.get_column("reliable_recovery").sum()),
            cases.height,
            "cases at start",
        ),
        (
            "reliable deterioration",
            int(use.get_column("reliable_deterioration").sum()),
            use.height,
            "clients",
        ),
    ):
        row = _rate_row(f"{what} ({label})", k, n, of=of, source=src)
        row.method = f"{WILSON}; {method}"
        section.rows.append(row)
    bars = []
    for key, (value, source) in BENCHMARK_RATES.items():
        section.rows.append(
            Row(
                f"national reference: {key.replace('_', ' ')}",
                f"{100 * value:.1f}%",
                method="published national statistics (finished courses)",
                source=source,
            )
        )
    for what, col, base in (
        ("reliable improvement", "reliable_improvement", use),
        ("reliable recovery", "reliable_recovery", cases),
    ):
        k, n = int(base.get_column(col).sum()), base.height
        if n:
            low, high = wilson(k, n)
            bars.append(
                {
                    "label": what,
                    "value": k / n,
                    "low": low,
                    "high": high,
                    "ref": BENCHMARK_RATES[col][0],
                }
            )
    section.charts.append(
        {"kind": "rates", "title": "Against the national reference", "bars": bars}
    )
    if paired.excluded_clients:
        section.notes.append(
            f"{paired.excluded_clients:,} clients had fewer than two sessions with both measures "
            "and are left out."
        )
    return section, interim


def _client_frame(matrix: SeriesMatrix, code: str, inst: Instrument) -> pl.DataFrame:
    table = change_table(
        matrix, threshold=inst.reliable_change or math.inf, lower_is_better=inst.lower_is_better
    )
    return table.select("client_id", "baseline", "final")


def _therapists(
    data: pl.DataFrame,
    outcome_codes: list[str],
    matrices: Mapping[str, SeriesMatrix],
    has_therapist: bool,
) -> Section:
    section = Section(
        "therapists",
        "Therapist effects",
        "How much of the outcome (final score adjusted for intake) lies between therapists: "
        "the intra-class correlation (ICC) from a random-intercept mixed model.",
    )
    if not has_therapist:
        section.notes.append("Not shown: the data have no therapist_id column.")
        return section
    therapist_of = data.sort("session").group_by("client_id").agg(pl.col("therapist_id").first())
    for code in outcome_codes:
        frame = (
            change_table(matrices[code], threshold=math.inf, lower_is_better=True)
            .select("client_id", "baseline", "final")
            .join(therapist_of, on="client_id")
        )
        res = therapist_effects.estimate(frame)
        if not res.shown:
            section.notes.append(f"{code}: not shown: {res.why_not}.")
            continue
        section.rows.append(
            Row(
                f"{code}: ICC (therapist share of intake-adjusted outcome variance)",
                f"{100 * res.icc:.1f}%",
                f"{100 * res.icc_low:.1f}–{100 * res.icc_high:.1f}%",
                f"{res.therapists:,} therapists, {res.clients:,} clients",
                "statsmodels MixedLM (REML) random intercept; F-based CI",
                "Baldwin & Imel 2013; Searle 1971",
            )
        )
        section.charts.append(
            {
                "kind": "caterpillar",
                "title": f"{code}: therapist estimates (shrunken, 95% intervals)",
                "estimates": res.estimates,
                "lower_is_better": True,
            }
        )
    if section.rows:
        section.notes.append(
            "Therapist estimates are shrunken (empirical Bayes) deviations from the average, not "
            "rankings; most intervals cross zero. Only therapists with at least "
            f"{therapist_effects.MIN_CLIENTS} clients enter."
        )
    return section


def _alliance_outcome(
    data: pl.DataFrame, alliance_codes: list[str], primary: str, measures: Mapping[str, Instrument]
) -> Section:
    section = Section(
        "alliance-outcome",
        f"Alliance → next-session outcome ({primary})",
        "Multilevel model of next session's outcome on this session's alliance, split into the "
        "client's own average (between clients) and this session's deviation from it (within "
        "the client), controlling for this session's outcome (Falkenström et al. 2013; "
        "Zilcha-Mano 2017).",
    )
    outcome = data.filter(pl.col("measure").cast(pl.String) == primary).select(
        "client_id", "session", "score"
    )
    better = "negative" if measures[primary].lower_is_better else "positive"
    for code in alliance_codes:
        alliance = data.filter(pl.col("measure").cast(pl.String) == code).select(
            "client_id", "session", "score"
        )
        res = alliance_outcome.estimate(alliance_outcome.pairs(alliance, outcome))
        if not res.shown:
            section.notes.append(f"{code}: not fitted: {res.why_not}.")
            continue
        n = f"{res.pairs:,} session pairs, {res.clients:,} clients"
        method = "statsmodels MixedLM (REML), random intercept per client; Wald 95% CI"
        src = "Falkenström et al. 2013; Zilcha-Mano 2017"
        section.rows += [
            Row(
                f"{code}: WITHIN-client coefficient (the causal-ish one)",
                _num(res.within, 3),
                f"{_num(res.within_low, 3)} to {_num(res.within_high, 3)}",
                n,
                method,
                src,
            ),
            Row(
                f"{code}: between-client coefficient",
                _num(res.between, 3),
                f"{_num(res.between_low, 3)} to {_num(res.between_high, 3)}",
                n,
                method,
                src,
            ),
        ]
        section.charts.append(
            {
                "kind": "coefficients",
                "title": f"{code} → next {primary}: points per alliance point",
                "items": [
                    {
                        "label": "within client",
                        "value": res.within,
                        "low": res.within_low,
                        "high": res.within_high,
                    },
                    {
                        "label": "between clients",
                        "value": res.between,
                        "low": res.between_low,
                        "high": res.between_high,
                    },
                ],
            }
        )
    section.notes.append(
        f"Read the within-client coefficient: a session with a better alliance than usual for "
        f"that client, followed by a better next-session {primary} (for {primary} a {better} "
        "coefficient means better), is the pattern that stable client traits cannot produce. "
        "The between-client coefficient mixes the alliance with who the clients are."
    )
    return section


def _status_by_client(rup: pl.DataFrame) -> dict[Any, str]:
    out: dict[Any, str] = {}
    for cid, status in rup.select("client_id", "status").iter_rows():
        if status == "unrepaired" or (status == "repaired" and out.get(cid) != "unrepaired"):
            out[cid] = status
        else:
            out.setdefault(cid, "open")
    return out


def _ruptures(
    alliance_codes: list[str],
    matrices: Mapping[str, SeriesMatrix],
    measures: Mapping[str, Instrument],
    primary: str | None,
    endings: Mapping[Any, str] | None,
    from_data: bool = False,
) -> Section:
    section = Section(
        "ruptures",
        "Alliance ruptures and repairs",
        "Ruptures found by Bordin's rule (a drop of at least the measure's threshold; repaired "
        "when the alliance returns within three sessions; see docs/measures.md).",
    )
    for code in alliance_codes:
        inst, matrix = measures[code], matrices[code]
        rule = rupture_rules.setting_for(inst, data=matrix if from_data else None)
        if rule is None:
            section.notes.append(f"{code}: no rupture threshold is defined.")
            continue
        section.notes.append(f"{code}: {rule.describe()}.")
        rup = rupture_rules.detect(matrix, rule)
        sessions = int((~np.isnan(matrix.values)).sum())
        k = rup.height
        _value, ci = _pct(k, sessions)
        per100 = f"{100 * k / sessions:.1f}" if sessions else "–"
        section.rows.append(
            Row(
                f"{code}: ruptures per 100 alliance scores",
                f"{per100} ({k:,} of {sessions:,})",
                ci.replace("%", "") if ci else "",
                f"{sessions:,} sessions",
                f"{WILSON} on the share of sessions",
                "this data set",
            )
        )
        repaired = int((rup.get_column("status") == "repaired").sum())
        closed = repaired + int((rup.get_column("status") == "unrepaired").sum())
        section.rows.append(
            _rate_row(
                f"{code}: share repaired (of ruptures whose window has passed)",
                repaired,
                closed,
                of="ruptures",
            )
        )
        section.rows += _noise_rows(code, inst, rule, matrix, repaired, closed)
        status = _status_by_client(rup)
        groups: dict[str, list[Any]] = {"no rupture": [], "repaired": [], "unrepaired": []}
        ids = matrix.client_ids.to_list()
        for cid in ids:
            s = status.get(cid, "no rupture")
            if s in groups:
                groups[s].append(cid)
        if primary is not None:
            inst_p = measures[primary]
            change = _client_frame(matrices[primary], primary, inst_p).with_columns(
                (pl.col("final") - pl.col("baseline")).alias("change")
            )
            for name, members in groups.items():
                vals = change.filter(pl.col("client_id").is_in(members)).get_column("change")
                if vals.len() < 2:
                    continue
                mean, low, high = _mean_ci(vals.to_numpy())
                section.rows.append(
                    Row(
                        f"{primary} change, clients with {name}"
                        if name != "no rupture"
                        else f"{primary} change, clients with no rupture",
                        _num(mean),
                        f"{_num(low)} to {_num(high)}",
                        f"{vals.len():,} clients",
                        "mean last − first; t interval (descriptive, not causal)",
                        "this data set",
                    )
                )
        if endings is not None:
            for name, members in groups.items():
                known = [c for c in members if endings.get(c)]
                dropped = sum(1 for c in known if endings[c] == "dropped_out")
                section.rows.append(
                    _rate_row(
                        f"dropout, clients with {name}", dropped, len(known), of="ended episodes"
                    )
                )
        else:
            section.notes.append(
                "Dropout by rupture status is not shown: the data carry no episode endings."
            )
    return section


def _noise_rows(
    code: str,
    inst: Instrument,
    rule: rupture_rules.RuleSetting,
    matrix: SeriesMatrix,
    repaired: int,
    closed: int,
) -> list[Row]:
    """False alarms of the rule in force on noise of this clinic's variability, and the repair
    share regression to the mean alone gives (:mod:`bordin.measures.rupture_noise`)."""
    sd = rupture_noise.within_client_sd(matrix)
    threshold = rule.threshold
    if not math.isfinite(sd) or sd <= 0:
        return []
    length = int(np.median(matrix.last_session)) if matrix.n_clients else 0
    if length < 3:
        return []
    noise = rupture_noise.noise_rates(
        within_sd=sd,
        threshold=threshold,
        clients=2000,
        sessions=length,
        low=inst.min,
        high=inst.max,
        retest=rule.retest,
    )
    method = (
        f"simulation: 2,000 clients × {length} sessions of pure noise (SD {sd:.2f}), "
        f"seed {rupture_noise.SEED}"
    )
    src = "this data set; Jacobson & Truax 1991"
    rows = [
        Row(
            f"{code}: within-client SD of alliance scores",
            f"{sd:.2f}",
            n=f"{matrix.n_clients:,} clients",
            method="pooled within-client SD",
            source=src,
        ),
        Row(
            f"{code}: reliable-change rupture threshold (1.96·√2·SD)",
            f"{rupture_noise.reliable_threshold(sd):.2f}",
            method=f"the rule in force uses {threshold:.2f}; this is the data-derived value",
            source=src,
        ),
        Row(
            f"{code}: clients the rule flags on noise alone (no true rupture)",
            f"{100 * noise.clients_flagged:.1f}%",
            n="2,000 simulated clients",
            method=method,
            source="this data set; simulation",
        ),
        Row(
            f"{code}: 'repairs' regression to the mean gives on noise",
            f"{100 * noise.repaired_share:.1f}%",
            n="simulated ruptures",
            method=method,
            source="this data set; simulation",
        ),
    ]
    if closed:
        low, high = wilson(repaired, closed)
        verdict = "above" if low > noise.repaired_share else "not clearly above"
        rows.append(
            Row(
                f"{code}: observed repair share vs noise",
                f"{verdict} what noise gives",
                f"{100 * low:.1f}–{100 * high:.1f}% vs {100 * noise.repaired_share:.1f}%",
                f"{closed:,} ruptures",
                "Wilson 95% interval of the observed share against the noise-only share",
                "this data set; Wilson 1927",
            )
        )
    return rows


def _alarms(
    outcome_codes: list[str],
    matrices: Mapping[str, SeriesMatrix],
    measures: Mapping[str, Instrument],
) -> Section:
    section = Section(
        "alarms",
        "Not-on-track signals",
        "How often the expected-trajectory signal fires, per session and per client, fitted on "
        "these data: a mixed-effects growth model conditional on intake (random intercept and "
        "log-slope per client; Finch, Lambert & Schaalje 2001; Lutz et al. 2006) when at least "
        f"{growth.MIN_REFERENCE_CLIENTS:,} clients have an intake and a later score, else the "
        "single least-squares curve with session bands. A session is flagged when its score is "
        "worse than the one-sided 90% prediction bound; a nominal 10% per session adds up over "
        "a course. Out-of-sample: fitted on a random half of the clients, judged on the other.",
    )
    for code in outcome_codes:
        inst, matrix = measures[code], matrices[code]
        try:
            model, name, why = _expected_model(matrix, inst)
        except ValueError as exc:
            section.notes.append(f"{code}: not computed: {exc}.")
            continue
        if why:
            section.notes.append(
                f"{code}: {why}; the least-squares curve was used and its signals are not "
                "reliable at this size (see the simulation in docs/measures.md)."
            )
        if isinstance(model, growth.GrowthModel):
            b0, b1, b2, b3 = model.coef
            t00, t01, t11 = model.re_cov
            section.notes.append(
                f"{code}: growth model y = {b0:.2f} {_signed(b1)}·c + "
                f"({b2:.2f} {_signed(b3, 3)}·c)·d "
                f"+ u0 + u1·d + e with c = intake − {model.centre[0]:.2f}, "
                f"d = ln(session) − {model.centre[1]:.2f}; τ00 = {t00:.2f}, τ01 = {t01:.2f}, "
                f"τ11 = {t11:.2f}, σ² = {model.sigma2:.2f} (REML on {model.n_fit_clients:,} "
                f"of {model.n_reference_clients:,} clients); bounds clipped to "
                f"{inst.min:g}–{inst.max:g}."
            )
        for row in _alarm_rows(code, "in sample", growth.judge(model, matrix, fit_clients=0)):
            row.method = f"{name}; {WILSON}"
            section.rows.append(row)
        train, test = growth.split_halves(matrix)
        try:
            held, held_name, _ = _expected_model(train, inst)
        except ValueError:
            continue
        judged = growth.judge(held, test, fit_clients=train.n_clients)
        for row in _alarm_rows(code, "out of sample", judged):
            row.method = (
                f"{held_name} fitted on {train.n_clients:,} random clients, judged on the other "
                f"{test.n_clients:,}; {WILSON}"
            )
            section.rows.append(row)
        if judged.covered is not None:
            row = _rate_row(
                f"{code}: out of sample, sessions inside the 90% prediction interval (nominal 90%)",
                judged.covered,
                judged.sessions,
                of="sessions after intake",
            )
            row.method = f"growth model, two-sided interval clipped to the scale; {WILSON}"
            section.rows.append(row)
    section.notes.append(
        f"Minimum reference: {growth.MIN_REFERENCE_CLIENTS:,} clients. In our simulation "
        "(docs/measures.md) references of that size gave out-of-sample flag rates of 8.3-12.4% "
        "(nominal 10%), references of 25 clients 5.5-20.8% (least squares: 4.0-30.6%). The "
        "per-client rate is always well above 10%: a client who is off track stays off track."
    )
    return section


def _signed(x: float, digits: int = 2) -> str:
    """``x`` as ``+ 0.46`` or ``− 0.46``, for a term of a written formula.

    >>> _signed(-0.1874, 3), _signed(0.5)
    ('− 0.187', '+ 0.50')
    """
    return f"{'−' if x < 0 else '+'} {abs(x):.{digits}f}"


def _expected_model(
    matrix: SeriesMatrix, inst: Instrument
) -> tuple[trajectories.ExpectedTrajectory, str, str | None]:
    """The growth model on ``matrix``, else the least-squares curve with why (raises
    :class:`ValueError` when neither can be fitted)."""
    lower = inst.lower_is_better
    try:
        fitted = growth.fit(matrix, lower_is_better=lower, scale_min=inst.min, scale_max=inst.max)
    except ValueError as exc:
        return trajectories.fit(matrix, lower_is_better=lower), "least-squares curve", str(exc)
    return fitted, "growth model", None


def _alarm_rows(code: str, where: str, judged: growth.Calibration) -> list[Row]:
    """Per-session and per-client alarm rates of one :class:`growth.Calibration`."""
    return [
        _rate_row(
            f"{code}: {where}, sessions flagged not on track (nominal 10%)",
            judged.flagged_sessions,
            judged.sessions,
            of="sessions after intake",
        ),
        _rate_row(
            f"{code}: {where}, clients flagged at least once",
            judged.flagged_clients,
            judged.clients,
            of="clients",
        ),
    ]


def _sudden_gains(
    outcome_codes: list[str],
    matrices: Mapping[str, SeriesMatrix],
    measures: Mapping[str, Instrument],
) -> Section:
    section = Section(
        "sudden-gains",
        "Sudden gains",
        "Tang & DeRubeis (1999) criteria, as the R package suddengains 0.7.2 applies them.",
    )
    for code in outcome_codes:
        inst, matrix = measures[code], matrices[code]
        cutoff = inst.effective_sudden_gain_cutoff
        if cutoff is None:
            section.notes.append(f"{code}: no sudden-gain cut-off.")
            continue
        sg = sudden_gains.identify(
            matrix, cutoff=cutoff, lower_is_better=inst.lower_is_better, kinds=("gain",)
        )
        eligible = int((matrix.last_session >= 4).sum())
        with_gain = sg.get_column("client_id").n_unique()
        section.rows.append(
            _rate_row(
                f"{code}: clients with a sudden gain (cut-off {cutoff:g})",
                with_gain,
                eligible,
                of="clients with 4+ sessions",
            )
        )
        _first, last = matrix.first_last()
        final = dict(
            zip(
                matrix.client_ids.to_list(),
                matrix.values[np.arange(matrix.n_clients), last].tolist(),
                strict=True,
            )
        )
        sign = 1.0 if inst.lower_is_better else -1.0
        durable = 0
        for cid, pre_score, mag in sg.select("client_id", "pregain_score", "magnitude").iter_rows():
            kept = sign * (pre_score - final[cid])
            durable += int(kept >= 0.5 * mag)
        row = _rate_row(
            f"{code}: gains still held at the last score", durable, sg.height, of="sudden gains"
        )
        row.method = f"{WILSON}; held = at least half of the gain kept"
        row.source = "this data set; Tang & DeRubeis 1999"
        section.rows.append(row)
    return section


def endings_from(raw: pl.DataFrame, *, source: str) -> dict[Any, str] | None:
    """Per-client episode endings from an optional ``ending_reason`` column, else ``None``.

    The column may repeat on every row of a client; the last non-empty value counts, an empty
    one means the episode is still open.

    >>> raw = pl.DataFrame({"client_id": ["a", "a", "b"], "ending_reason": ["", "planned", ""]})
    >>> endings_from(raw, source="x.csv")
    {'a': 'planned', 'b': ''}
    """
    if "ending_reason" not in raw.columns:
        return None
    allowed = {"", "planned", "dropped_out", "referred_on", "moved_away", "other"}
    col = pl.col("ending_reason").cast(pl.String).fill_null("").str.strip_chars()
    frame = raw.select(pl.col("client_id").cast(pl.String), col.alias("ending_reason"))
    bad = frame.filter(~pl.col("ending_reason").is_in(sorted(allowed)))
    if bad.height:
        from bordin.measures.longdata import InputError

        raise InputError(
            f"{source}: ending_reason '{bad.item(0, 'ending_reason')}' is not one of "
            f"{', '.join(sorted(allowed - {''}))} (or empty while the episode is open)"
        )
    out: dict[Any, str] = {}
    for cid, reason in frame.iter_rows():
        if reason or cid not in out:
            out[cid] = reason
    return out
