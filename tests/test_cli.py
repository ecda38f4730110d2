"""`bordin analyze` and `bordin synth` end to end, through the real console script."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from bordin.measures.batch import SCHEMAS

BORDIN = [sys.executable, "-m", "bordin.cli"]
BDI_TOML = """
[measures.bdi]
direction = "lower_is_better"
min = 0
max = 63
reliable_change = 7
caseness = 14
role = "outcome"

[measures.rq]
direction = "lower_is_better"
min = 0
max = 80
reliable_change = 7
role = "outcome"
"""


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BORDIN, *map(str, args)], capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synth") / "clinic.parquet"
    done = run("synth", "--clients", "600", "--out", path)
    assert done.returncode == 0, done.stderr
    return path


@pytest.fixture(scope="module")
def analysed(synthetic: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out")
    done = run("analyze", synthetic, "--out", out)
    assert done.returncode == 0, done.stderr
    assert "What the analysis found" in done.stdout
    return out


def test_writes_every_file_with_the_contract_columns(analysed: Path) -> None:
    for name, columns in SCHEMAS.items():
        frame = pl.read_csv(analysed / f"{name}.csv")
        assert frame.columns == columns, name
        assert frame.height > 0, name
    summary = json.loads((analysed / "summary.json").read_text())
    assert summary["input"]["clients"] == 600
    assert set(summary["input"]["measures"]) == {"phq9", "gad7", "alliance"}
    assert summary["ruptures"]["alliance"]["ruptures"] > 0
    assert summary["sudden_changes"]["phq9"]["gains"] > 0
    assert summary["outcomes"]["clients"] > 0
    assert summary["excluded"], "exclusions are listed with reasons"
    assert all(item["why"] for item in summary["excluded"])
    assert not list(analysed.glob(".bordin-*")), "no staging folder is left behind"


def test_values_are_what_the_contract_says(analysed: Path) -> None:
    sg = pl.read_csv(analysed / "sudden_changes.csv")
    assert set(sg["kind"].unique()) <= {"gain", "loss"}
    assert (sg["postgain_session"] == sg["pregain_session"] + 1).all()
    rup = pl.read_csv(analysed / "ruptures.csv")
    assert set(rup["status"].unique()) <= {"repaired", "unrepaired", "open"}
    assert rup.filter(pl.col("status") == "repaired")["repair_session"].null_count() == 0
    traj = pl.read_csv(analysed / "trajectories.csv")
    assert set(traj["status"].unique()) == {"on_track", "not_on_track"}
    share = (traj["status"] == "not_on_track").mean()
    assert 0.07 < share < 0.13  # fitted on the input itself: about 10% by construction
    outcomes = pl.read_csv(analysed / "outcomes.csv")
    assert outcomes.schema["recovered"] == pl.Boolean  # written as true/false


def test_sgdata_through_the_cli_matches_suddengains(shared_data: Path, tmp_path: Path) -> None:
    measures = tmp_path / "bdi.toml"
    measures.write_text(BDI_TOML)
    out = tmp_path / "out"
    done = run("analyze", shared_data / "sgdata_long.csv", "--out", out, "--measures", measures)
    assert done.returncode == 0, done.stderr
    got = (
        pl.read_csv(out / "sudden_changes.csv")
        .filter(pl.col("measure") == "bdi")
        .select("kind", "client_id", "pregain_session")
    )
    expected = pl.read_csv(shared_data / "sgdata_bdi_sudden_changes_expected.csv")
    assert sorted(got.rows()) == sorted(expected.rows())


def test_overrides_change_thresholds(synthetic: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run(
        "analyze",
        synthetic,
        "--out",
        out,
        "--rupture-threshold",
        "alliance=3",
        "--sg-cutoff",
        "phq9=12",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ruptures"]["alliance"]["threshold"] == 3
    assert summary["sudden_changes"]["phq9"]["cutoff"] == 12


def test_rupture_rule_option(synthetic: Path, analysed: Path, tmp_path: Path) -> None:
    """Default: the reliable rule; ``--rupture-rule fixed`` gives the earlier 1.5-point output
    exactly; ``alliance=ceiling`` the ceiling-aware rule; all with the same columns."""
    from bordin.measures.ruptures import detect
    from bordin.measures.series import SeriesMatrix

    default = json.loads((analysed / "summary.json").read_text())["ruptures"]["alliance"]
    assert (default["rule"], default["threshold_from"]) == ("reliable", "instrument")
    assert default["threshold"] == pytest.approx(1.9957, abs=1e-4)
    found = {}
    for rule in ("fixed", "alliance=ceiling"):
        out = tmp_path / rule
        done = run("analyze", synthetic, "--out", out, "--rupture-rule", rule)
        assert done.returncode == 0, done.stderr
        summary = json.loads((out / "summary.json").read_text())["ruptures"]["alliance"]
        assert summary["rule"] == rule.removeprefix("alliance=")
        found[rule] = pl.read_csv(out / "ruptures.csv")
        assert found[rule].columns == SCHEMAS["ruptures"]
    data = pl.read_parquet(synthetic).filter(pl.col("measure") == "alliance")
    old = detect(SeriesMatrix.from_long(data), threshold=1.5)
    fixed = found["fixed"].drop("measure").sort("client_id", "session")
    assert fixed.rows() == old.sort("client_id", "session").rows()
    reliable = pl.read_csv(analysed / "ruptures.csv")
    assert 0 < reliable.height < fixed.height


def test_reference_file_is_used_for_trajectories(synthetic: Path, tmp_path: Path) -> None:
    ref = tmp_path / "ref.csv"
    assert run("synth", "--clients", "300", "--seed", "7", "--out", ref).returncode == 0
    out = tmp_path / "out"
    done = run("analyze", synthetic, "--out", out, "--reference", ref)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trajectories"]["phq9"]["fitted_on"] == str(ref)


def test_growth_trajectory_model_on_a_reference(synthetic: Path, tmp_path: Path) -> None:
    ref = tmp_path / "ref.csv"
    assert run("synth", "--clients", "300", "--seed", "7", "--out", ref).returncode == 0
    out = tmp_path / "out"
    done = run(
        "analyze", synthetic, "--out", out, "--reference", ref, "--trajectory-model", "growth"
    )
    assert done.returncode == 0, done.stderr
    row = json.loads((out / "summary.json").read_text())["trajectories"]["phq9"]
    assert row["fitted_on"] == str(ref)
    assert row["model"]["method"].startswith("mixed-effects growth model")
    assert row["model"]["n_reference_clients"] == 300
    table = pl.read_csv(out / "trajectories.csv")
    assert table.columns == SCHEMAS["trajectories"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("client_id,session,measure\n1,1,phq9\n", "missing column(s) score"),
        ("client_id,session,measure,score\n1,1,phq9,x\n", "row 1: score 'x' is not a number"),
        ("client_id,session,measure,score\n1,1,phq9,40\n", "outside phq9's range"),
        ("client_id,session,measure,score\n1,1,zz,4\n", "unknown measure code 'zz'"),
        (
            "client_id,session,measure,score\n1,1,phq9,4\n1,1,phq9,5\n",
            "rows 1, 2: duplicate score",
        ),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("earlier results")
    done = run("analyze", bad, "--out", out)
    assert done.returncode == 2
    assert message in " ".join(done.stderr.split())
    assert str(bad) in " ".join(done.stderr.split())
    assert [p.name for p in out.iterdir()] == ["summary.json"]
    assert (out / "summary.json").read_text() == "earlier results", "nothing stored is lost"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rupture-threshold", "alliance"], "expects CODE=VALUE"),
        (["--rupture-threshold", "alliance=-1"], "must be a positive number"),
        (["--sg-cutoff", "nope=3"], "unknown measure code 'nope'"),
        (["--trajectory-model", "spline"], "--trajectory-model must be ols or growth"),
        (["--rupture-rule", "loose"], "rupture rule must be one of fixed, reliable, ceiling"),
        (["--rupture-rule", "=fixed"], "expects RULE or CODE=RULE"),
    ],
)
def test_bad_options_exit_2(synthetic: Path, tmp_path: Path, args: list[str], message: str) -> None:
    done = run("analyze", synthetic, "--out", tmp_path / "o", *args)
    assert done.returncode == 2
    assert message in " ".join(done.stderr.split())
    assert not (tmp_path / "o").exists()


def test_bad_measures_file_exits_2(synthetic: Path, tmp_path: Path) -> None:
    bad = tmp_path / "m.toml"
    bad.write_text("[measures.x]\nmin = 0\n")
    done = run("analyze", synthetic, "--out", tmp_path / "o", "--measures", bad)
    assert done.returncode == 2
    assert "'direction' must be" in done.stderr


def test_synth_rejects_unknown_extension(tmp_path: Path) -> None:
    done = run("synth", "--clients", "5", "--out", tmp_path / "x.xlsx")
    assert done.returncode == 2
    assert "use a .csv or .parquet" in done.stderr


def test_analysis_demo_prints_a_summary(tmp_path: Path) -> None:
    done = run("demo", "--analysis-only", "--data-dir", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "sudden gains" in done.stdout and "ruptures" in done.stdout


def _parquet(path: Path, session: list[int], dtype: pl.DataType = pl.Int64) -> Path:
    pl.DataFrame(
        {
            "client_id": ["a", "a", "b"],
            "session": pl.Series(session, dtype=dtype),
            "measure": ["phq9"] * 3,
            "score": [10.0, 8.0, 5.0],
        }
    ).write_parquet(path)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda p: _parquet(p / "s.parquet", [1, 2**40, 1]),
            "row 2: session 1099511627776 is above the highest session number accepted (10,000)",
        ),
        (
            lambda p: _parquet(p / "s.parquet", [1, 2**31, 1]),
            "row 2: session 2147483648 is above the highest session number accepted",
        ),
        (
            lambda p: _parquet(p / "s.parquet", [1, 2**64 - 1, 1], pl.UInt64),
            "row 2: session 18446744073709551615 is above the highest",
        ),
        (
            lambda p: _parquet(p / "s.parquet", [1, 1_000_000, 1]),
            "row 2: session 1000000 is above the highest session number accepted",
        ),
        (lambda p: _parquet(p / "s.parquet", [1, -3, 1]), "row 2: session -3 must be 1 or more"),
    ],
)
def test_adversarial_parquet_sessions_exit_2(tmp_path: Path, make: Any, message: str) -> None:
    done = run("analyze", make(tmp_path), "--out", tmp_path / "out")
    assert done.returncode == 2, done.stderr
    assert message in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("session", "message"),
    [
        ("1e20", "row 2: session 1e20 is above the highest session number accepted (10,000)"),
        ("10001", "row 2: session 10001 is above the highest"),
        ("inf", "row 2: session inf is above the highest"),
        ("-1", "row 2: session -1 must be 1 or more"),
        ("0", "row 2: session 0 must be 1 or more"),
        ("2.5", "row 2: session 2.5 is not a whole number"),
        ("nan", "row 2: session nan is not a whole number"),
        ("", "row 2: session (empty) is not a whole number"),
    ],
)
def test_adversarial_csv_sessions_exit_2(tmp_path: Path, session: str, message: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(f"client_id,session,measure,score\na,1,phq9,4\na,{session},phq9,5\n")
    done = run("analyze", bad, "--out", tmp_path / "out")
    assert done.returncode == 2, done.stderr
    assert message in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr


def test_session_at_the_ceiling_is_analysed_quickly(tmp_path: Path) -> None:
    data = tmp_path / "ceiling.csv"
    data.write_text(
        "client_id,session,measure,score\na,1,phq9,20\na,10000,phq9,4\nb,1,phq9,12\nb,2,phq9,9\n"
    )
    out = tmp_path / "out"
    done = run("analyze", data, "--out", out)
    assert done.returncode == 0, done.stderr
    change = pl.read_csv(out / "change.csv").filter(pl.col("client_id") == "a")
    assert change.select("first_session", "last_session").row(0) == (1, 10_000)


def test_rerun_replaces_the_whole_out_folder(synthetic: Path, tmp_path: Path) -> None:
    """A one-client run into a folder holding a full run leaves only the new run's files."""
    out = tmp_path / "out"
    assert run("analyze", synthetic, "--out", out).returncode == 0
    assert (out / "outcomes.csv").exists()
    one = tmp_path / "one.csv"
    one.write_text("client_id,session,measure,score\na,1,alliance,5\na,2,alliance,6\n")
    done = run("analyze", one, "--out", out)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "change.csv",
        "ruptures.csv",
        "sudden_changes.csv",
        "summary.json",
        "trajectories.csv",
    ]
    assert json.loads((out / "summary.json").read_text())["input"]["clients"] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging left"


def test_out_folder_with_other_files_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("client_id,session,measure,score\na,1,alliance,5\n")
    out = tmp_path / "home"
    out.mkdir()
    (out / "thesis.docx").write_text("precious")
    done = run("analyze", data, "--out", out)
    assert done.returncode == 2
    assert "holds files that are not results of bordin analyze (thesis.docx)" in " ".join(
        done.stderr.split()
    )
    assert (out / "thesis.docx").read_text() == "precious"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"client_id,session,measure,score\n", "no rows"),
        (b"client_id,session,measure,score\na,1,PHQ9,4\n", "did you mean phq9?"),
        (
            b"client_id,session,measure,score\na,1,phq9 ,4\n",
            "did you mean phq9? the code has spaces",
        ),
        (b"client_id,session,measure,score\na,1,phq-9,4\n", "'phq-9' (did you mean phq9?)"),
        (b"client_id,session,measure ,score\na,1,phq9,4\n", "'measure ' for measure"),
        (b"client_id;session;measure;score\na;1;phq9;4\n", "looks semicolon-separated"),
        (b"client_id\tsession\tmeasure\tscore\na\t1\tphq9\t4\n", "looks tab-separated"),
        ("client_id,session,measure,score\na,1,phq9,4\n".encode("utf-16"), "looks UTF-16"),
        (
            "client_id,session,measure,score\na,1,phq9,4\nZoë,1,phq9,4\n".encode("latin-1"),
            "row 2: the file is not UTF-8",
        ),
        (
            b"client_id,session,measure,score\na,1,phq9,4\na,2,phq9,4,5\n",
            "row 2: 5 fields where the header has 4; a decimal comma",
        ),
        (
            b"client_id,session,measure,score\na,1,phq9,4\na,2,phq9\n",
            "row 2: score '(empty)' is not a number",  # a short row: its missing fields are empty
        ),
        (
            b"client_id,session,measure,score\na ,1,phq9,4\na,1,phq9,5\n",
            "rows 1, 2: duplicate score for client a",
        ),
    ],
)
def test_rejections_name_the_likely_cause(tmp_path: Path, content: bytes, message: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    done = run("analyze", bad, "--out", tmp_path / "out")
    assert done.returncode == 2, done.stdout
    assert message in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr


def test_empty_parquet_says_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    pl.DataFrame(
        schema={
            "client_id": pl.String,
            "session": pl.Int64,
            "measure": pl.String,
            "score": pl.Float64,
        }
    ).write_parquet(path)
    done = run("analyze", path, "--out", tmp_path / "out")
    assert done.returncode == 2
    assert "no rows" in done.stderr


@pytest.mark.parametrize(
    "columns",
    [
        {"client_id": [[1, 2]], "session": [1], "measure": ["phq9"], "score": [3.0]},
        {"client_id": ["a"], "session": [[1]], "measure": ["phq9"], "score": [3.0]},
        {"client_id": ["a"], "session": [1], "measure": ["phq9"], "score": [{"x": 1}]},
        {"client_id": ["a"], "session": [date(2024, 1, 1)], "measure": ["phq9"], "score": [3.0]},
        {"client_id": ["a"], "session": [True], "measure": [1], "score": [3.0]},
    ],
)
def test_odd_parquet_types_give_no_traceback(tmp_path: Path, columns: dict[str, Any]) -> None:
    path = tmp_path / "odd.parquet"
    pl.DataFrame(columns).write_parquet(path)
    done = run("analyze", path, "--out", tmp_path / "out")
    assert done.returncode in (0, 2)
    assert "Traceback" not in done.stderr


def test_client_ids_are_trimmed_and_nfc_and_merges_reported(tmp_path: Path) -> None:
    data = tmp_path / "ids.csv"
    data.write_text(
        "client_id,session,measure,score\n"
        "Zoe\u0308,1,phq9,20\nZo\u00eb,2,phq9,5\n a,1,phq9,3\na,2,phq9,4\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    done = run("analyze", data, "--out", out)
    assert done.returncode == 0, done.stderr
    assert "2 client id(s) had surrounding spaces or another Unicode form" in " ".join(
        done.stdout.split()
    )
    change = pl.read_csv(out / "change.csv")
    assert set(change.get_column("client_id").to_list()) == {"a", "Zo\u00eb"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["input"]["clients"] == 2
    assert summary["input"]["merged_client_ids"] == 2


def test_formula_cells_are_neutralised_in_every_csv(tmp_path: Path) -> None:
    data = tmp_path / "inject.csv"
    rows = ["client_id,session,measure,score"]
    for cid in ('=HYPERLINK(""http://x"",""y"")', "+1", "-2", "@SUM(A1)"):
        for s, score in enumerate((20, 19, 18, 5, 4, 3), start=1):
            rows.append(f'"{cid}",{s},phq9,{score}')
            rows.append(f'"{cid}",{s},alliance,{7 if s < 3 else 2}')
    data.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    done = run("analyze", data, "--out", out)
    assert done.returncode == 0, done.stderr
    for name in ("change", "sudden_changes", "ruptures"):
        ids = set(pl.read_csv(out / f"{name}.csv").get_column("client_id").to_list())
        # Plain numbers are data, not formulas (bordin.csvsafe): "+1" and "-2" stay.
        assert ids == {'\'=HYPERLINK("http://x","y")', "+1", "-2", "'@SUM(A1)"}, name
    change = pl.read_csv(out / "change.csv")
    assert change.get_column("change").to_list() == [-17.0] * 4, "numbers stay numbers"


def test_ids_that_need_quotes_or_neutralising_are_written_alike_by_worker_processes(
    tmp_path: Path,
) -> None:
    """Worker processes skip the formula scan and CSV quoting only when nothing needs them:
    ids with separators, quotes or formulas come out as the one-process run writes them (the
    first partition holds those, the second only plain ids)."""
    data = tmp_path / "ids.csv"
    rows = ["client_id,session,measure,score"]
    plain = [f"p{i}" for i in range(10)]  # enough clients for the trajectory model
    for k, cid in enumerate(('"a,b"', '"Say ""hi"""', '"=1+1"', "7", *plain)):
        for s, score in enumerate((20 - k % 7, 19, 18 - k % 3, 5 + k % 4, 4, 3), start=1):
            rows.append(f"{cid},{s},phq9,{score}")
            rows.append(f"{cid},{s},gad7,{min(score, 21)}")
            rows.append(f"{cid},{s},alliance,{7 if s < 3 else 2}")
    data.write_text("\n".join(rows) + "\n")
    one, two = tmp_path / "one", tmp_path / "two"
    assert run("analyze", data, "--out", one).returncode == 0
    done = run("analyze", data, "--out", two, "--workers", "2")
    assert done.returncode == 0, done.stderr
    for name in SCHEMAS:
        assert (two / f"{name}.csv").read_bytes() == (one / f"{name}.csv").read_bytes(), name
    for name in ("change", "trajectories"):
        ids = set(pl.read_csv(two / f"{name}.csv").get_column("client_id").cast(pl.String))
        assert ids == {"a,b", 'Say "hi"', "'=1+1", "7", *plain}, name


def test_more_worker_processes_than_clients(tmp_path: Path) -> None:
    """Workers start before the client ranges are known; one with no range just ends."""
    data = tmp_path / "one.csv"
    data.write_text("client_id,session,measure,score\na,1,phq9,20\na,2,phq9,10\na,3,phq9,5\n")
    one, three = tmp_path / "one", tmp_path / "three"
    assert run("analyze", data, "--out", one).returncode == 0
    done = run("analyze", data, "--out", three, "--workers", "3")
    assert done.returncode == 0, done.stderr
    for name in ("change", "sudden_changes", "ruptures", "trajectories"):
        assert (three / f"{name}.csv").read_bytes() == (one / f"{name}.csv").read_bytes(), name


PARTITIONED = [
    pytest.param(["--memory-limit", "1M"], id="one-process"),
    pytest.param(["--workers", "2"], id="two-processes"),
    pytest.param(["--workers", "2", "--memory-limit", "1M"], id="two-processes-many-parts"),
]


@pytest.mark.parametrize("how", PARTITIONED)
def test_partitioned_run_gives_the_same_files_byte_for_byte(
    synthetic: Path, analysed: Path, tmp_path: Path, how: list[str]
) -> None:
    out = tmp_path / "parts"
    done = run("analyze", synthetic, "--out", out, *how)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in analysed.iterdir())
    for name in SCHEMAS:
        assert (out / f"{name}.csv").read_bytes() == (analysed / f"{name}.csv").read_bytes(), name
    assert json.loads((out / "summary.json").read_text()) == json.loads(
        (analysed / "summary.json").read_text()
    )


BAD_CELLS = [
    pytest.param("score", pl.lit(99.0), "score 99 is outside", id="score-out-of-range"),
    # A partition reads its measure codes already cast; a code it does not know sends it back
    # to the text, for the message to name the code and the likely fix.
    pytest.param(
        "measure",
        pl.col("measure").str.to_uppercase(),
        "unknown measure code '{value}' (did you mean",
        id="measure-code-in-capitals",
    ),
]


@pytest.mark.parametrize("how", PARTITIONED)
@pytest.mark.parametrize(("column", "bad", "message"), BAD_CELLS)
def test_partitioned_run_reports_rows_by_their_number_in_the_file(
    synthetic: Path,
    tmp_path: Path,
    how: list[str],
    column: str,
    bad: pl.Expr,
    message: str,
) -> None:
    frame = pl.read_parquet(synthetic)
    bad_row = frame.height - 3
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == bad_row).then(bad).otherwise(pl.col(column)).alias(column)
    )
    value = frame.row(bad_row, named=True)[column]
    path = tmp_path / "bad.parquet"
    frame.write_parquet(path)
    done = run("analyze", path, "--out", tmp_path / "out", *how)
    assert done.returncode == 2
    assert f"row {bad_row + 1}: " + message.format(value=value) in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out*")), "staging removed"


def test_worker_processes_report_the_first_partition_that_fails(
    synthetic: Path, tmp_path: Path
) -> None:
    frame = pl.read_parquet(synthetic)
    bad = {10, frame.height - 3}  # one in the first partition, one in the last
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()).is_in(list(bad)))
        .then(pl.lit(99.0))
        .otherwise(pl.col("score"))
        .alias("score")
    )
    path = tmp_path / "bad.parquet"
    frame.write_parquet(path)
    done = run("analyze", path, "--out", tmp_path / "out", "--workers", "2", "--memory-limit", "1M")
    assert done.returncode == 2
    assert "row 11: score 99 is outside" in done.stderr
    assert f"row {frame.height - 2}:" not in done.stderr, "as a part-by-part run reports it"
    assert "Traceback" not in done.stderr


def test_worker_processes_write_the_same_parquet_tables(synthetic: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    assert run("analyze", synthetic, "--out", one, "--format", "parquet").returncode == 0
    done = run("analyze", synthetic, "--out", two, "--format", "parquet", "--workers", "2")
    assert done.returncode == 0, done.stderr
    for name in SCHEMAS:
        assert pl.read_parquet(two / f"{name}.parquet").equals(
            pl.read_parquet(one / f"{name}.parquet")
        ), name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--memory-limit", "lots"], "expects a size such as 4G"),
        (["--memory-limit", "-1G"], "must be a positive size"),
        (["--engine", "hadoop"], "--engine must be local or spark"),
        (["--format", "xlsx"], "--format must be csv or parquet"),
        (["--workers", "0"], "--workers must be 1 or more"),
    ],
)
def test_bad_engine_options_exit_2(
    synthetic: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    done = run("analyze", synthetic, "--out", tmp_path / "o", *args)
    assert done.returncode == 2
    assert message in " ".join(done.stderr.split())


def test_parquet_output_format(synthetic: Path, analysed: Path, tmp_path: Path) -> None:
    out = tmp_path / "pq"
    assert run("analyze", synthetic, "--out", out, "--format", "parquet").returncode == 0
    for name in SCHEMAS:
        got = pl.read_parquet(out / f"{name}.parquet")
        expected = pl.read_csv(analysed / f"{name}.csv")
        assert got.height == expected.height, name
        assert got.columns == expected.columns, name


def test_start_up_imports_nothing_heavy() -> None:
    """`bordin --help` imports neither Polars nor SciPy; the engine never imports scipy.stats."""
    code = (
        "import sys, bordin.cli; heavy = [m for m in ('polars', 'numpy', 'scipy') "
        "if m in sys.modules]; import bordin.measures.batch; "
        "print(heavy, 'scipy.stats' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["[]", "False"]
