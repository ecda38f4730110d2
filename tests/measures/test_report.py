from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from bordin.measures.instruments import builtin_registry, parse_definitions
from bordin.measures.longdata import InputError, check_long
from bordin.measures.report import build, endings_from
from bordin.measures.report_html import render
from bordin.measures.synth import synthesize

ENRICHD = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "enrichd_bdi_long.csv"
BDI = """[measures.bdi]
direction = "lower_is_better"
min = 0
max = 63
reliability = 0.9
sd = 8.1
caseness = 14
norm_mean = 7.0
norm_sd = 5.5
"""


@pytest.fixture(scope="module")
def synthetic() -> pl.DataFrame:
    raw = synthesize(300, seed=5, clients_per_therapist=25)
    return check_long(
        raw.with_columns(pl.col("client_id").cast(pl.String)), builtin_registry(), source="synth"
    )


def test_every_section_and_every_number_has_n_method_and_source(
    synthetic: pl.DataFrame,
) -> None:
    report = build(synthetic, builtin_registry(), source="synth")
    keys = [s.key for s in report.sections]
    for key in (
        "overview",
        "completion",
        "change-phq9",
        "change-gad7",
        "nhs-tt",
        "therapists",
        "alliance-outcome",
        "ruptures",
        "sudden-gains",
        "alarms",
    ):
        assert key in keys
    for section in report.sections:
        for row in section.rows:
            assert row.method and row.source, (section.key, row.what)
            if row.ci:
                assert row.n, (section.key, row.what)
    assert report.interim
    therapists = next(s for s in report.sections if s.key == "therapists")
    assert any("ICC" in r.what for r in therapists.rows)
    alliance = next(s for s in report.sections if s.key == "alliance-outcome")
    assert "causal-ish" in alliance.rows[0].what
    alarms = next(s for s in report.sections if s.key == "alarms")
    assert any("clients flagged at least once" in r.what for r in alarms.rows)


def test_alarms_use_the_growth_model_and_report_out_of_sample_calibration(
    synthetic: pl.DataFrame,
) -> None:
    report = build(synthetic, builtin_registry(), source="synth")
    alarms = next(s for s in report.sections if s.key == "alarms")
    rows = {r.what: r for r in alarms.rows}
    # 300 clients: the growth model in sample; a half of 150 is below the minimum of 200, so
    # the out-of-sample fit is the least-squares curve (and no interval coverage is shown).
    assert rows["phq9: in sample, sessions flagged not on track (nominal 10%)"].method.startswith(
        "growth model"
    )
    held = rows["phq9: out of sample, clients flagged at least once"]
    assert held.method.startswith("least-squares curve fitted on 150 random clients")
    assert not any("prediction interval" in w for w in rows)
    assert any("Minimum reference: 200 clients" in n for n in alarms.notes)
    assert any(n.startswith("phq9: growth model y = ") for n in alarms.notes)


def test_html_is_self_contained_and_says_interim(synthetic: pl.DataFrame) -> None:
    html = render(build(synthetic, builtin_registry(), source="synth"))
    assert 'data-interim="true"' in html
    assert "<script" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert html.count("<svg") >= 6
    assert "Delgadillo" in html and "NHS England (2025)" in html


def test_endings_make_finished_courses_and_dropout_by_rupture(synthetic: pl.DataFrame) -> None:
    ids = synthetic.get_column("client_id").unique().sort().to_list()
    endings = {cid: ("dropped_out" if i % 5 == 0 else "planned") for i, cid in enumerate(ids)}
    report = build(synthetic, builtin_registry(), source="synth", endings=endings)
    assert not report.interim
    nhs = next(s for s in report.sections if s.key == "nhs-tt")
    assert "finished courses" in nhs.title
    ruptures = next(s for s in report.sections if s.key == "ruptures")
    assert any(r.what.startswith("dropout, clients with") for r in ruptures.rows)


def test_ruptures_section_states_the_rule_in_force(synthetic: pl.DataFrame) -> None:
    def section(rule: str | None) -> tuple[list[str], int]:
        reg = builtin_registry()
        if rule:
            reg = reg.with_overrides(rupture_rule={"alliance": rule})
        found = next(s for s in build(synthetic, reg).sections if s.key == "ruptures")
        per100 = next(r for r in found.rows if r.what.startswith("alliance: ruptures per 100"))
        return found.notes, int(per100.value.split("(")[1].split(" of")[0].replace(",", ""))

    notes, reliable = section(None)
    assert any(
        "rule 'reliable', threshold 2.00" in n and "regression to the mean" in n for n in notes
    )
    notes, fixed = section("fixed")
    assert any("rule 'fixed', threshold 1.50" in n for n in notes)
    notes, _ceiling = section("ceiling")
    assert any("rule 'ceiling'" in n for n in notes)
    assert 0 < reliable < fixed


def test_too_few_therapists_is_explained() -> None:
    raw = synthesize(60, seed=2, clients_per_therapist=25)
    data = check_long(
        raw.with_columns(pl.col("client_id").cast(pl.String)), builtin_registry(), source="s"
    )
    section = next(s for s in build(data, builtin_registry()).sections if s.key == "therapists")
    assert not section.rows
    assert "at least 10 therapists" in section.notes[0]


def test_endings_column_is_checked() -> None:
    raw = pl.DataFrame({"client_id": ["a"], "ending_reason": ["finished"]})
    with pytest.raises(InputError, match="ending_reason 'finished' is not one of"):
        endings_from(raw, source="x.csv")


@pytest.mark.skipif(not ENRICHD.is_file(), reason="shared ENRICHD data not present")
def test_enrichd_with_norms_uses_criterion_c_and_all_rci_variants() -> None:
    reg = builtin_registry().merged(parse_definitions(BDI, "bdi.toml"))
    raw = pl.read_csv(ENRICHD, infer_schema=False)
    report = build(check_long(raw, reg, source="enrichd"), reg, source="enrichd")
    change = next(s for s in report.sections if s.key == "change-bdi")
    cut = next(r for r in change.rows if r.what == "clinical significance cut-off")
    assert cut.method.startswith("criterion c")
    whats = " ".join(r.what for r in change.rows)
    for name in ("Jacobson–Truax", "Edwards–Nunnally", "Hageman–Arrindell"):
        assert name in whats
    therapists = next(s for s in report.sections if s.key == "therapists")
    assert "no therapist_id" in therapists.notes[0]


def test_cli_writes_html_and_pdf(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    synthesize(120, seed=4).write_csv(data)
    out = tmp_path / "r.html"
    cmd = [sys.executable, "-m", "bordin.cli", "report", str(data), "--out", str(out), "--pdf"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert out.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
    bad = subprocess.run(
        [sys.executable, "-m", "bordin.cli", "report", str(data), "--out", str(tmp_path / "r.txt")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2
    assert "must be an .html file" in bad.stderr
