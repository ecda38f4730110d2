"""The ``bordin`` command: analyse data sets, make synthetic data, run the web app.

Run ``bordin --help`` for the list of commands and ``bordin COMMAND --help`` for each.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(
    name="bordin",
    help="Bordin: alliance-informed care. Measures, analyses and the clinic web app.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)

BAD_INPUT = 2


def fail(message: str) -> typer.Exit:
    """Print an error that says what to fix and return the exit for bad input."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(BAD_INPUT)


def parse_assignments(values: list[str] | None, option: str) -> dict[str, float]:
    """``["alliance=1.5"]`` → ``{"alliance": 1.5}``, with a clear error for anything else."""
    out: dict[str, float] = {}
    for raw in values or []:
        code, sep, number = raw.partition("=")
        try:
            if not sep or not code.strip():
                raise ValueError
            value = float(number)
        except ValueError:
            raise fail(f"{option} expects CODE=VALUE (e.g. alliance=1.5), got '{raw}'") from None
        if not value > 0:
            raise fail(f"{option} {code}: the value must be a positive number, got {number}")
        out[code.strip()] = value
    return out


def parse_rules(values: list[str] | None) -> dict[str, str]:
    """``--rupture-rule``: ``["ceiling"]`` → every measure, ``["alliance=fixed"]`` → one."""
    out: dict[str, str] = {}
    for raw in values or []:
        code, sep, rule = raw.rpartition("=")
        code = code.strip() if sep else "*"
        if not code:
            raise fail(
                f"--rupture-rule expects RULE or CODE=RULE (e.g. alliance=fixed), got '{raw}'"
            )
        out[code] = rule.strip()
    return out


RUPTURE_RULE_HELP = (
    "reliable (default: threshold from the measure's reliability and SD, repair beyond "
    "regression to the mean), fixed (the measure's fixed threshold, e.g. 1.5) or ceiling "
    "(reliable, scaled to each client's own variability); RULE for every measure or "
    "CODE=RULE, repeatable."
)


@contextmanager
def progress_steps(total: int | None = None) -> Iterator[Any]:
    """A Rich progress display on a terminal; silent otherwise (CI, pipes)."""
    if not console.is_terminal:
        yield lambda _label: None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=total)

        def step(label: str) -> None:
            progress.update(task, description=label, advance=1)

        yield step


@app.command()
def analyze(
    input: Annotated[Path, typer.Argument(help="Long-format CSV or Parquet file.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the result files.")],
    measures: Annotated[
        Path | None, typer.Option("--measures", help="TOML file with extra measure definitions.")
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option("--reference", help="Data set to fit expected trajectories on."),
    ] = None,
    rupture_threshold: Annotated[
        list[str] | None,
        typer.Option("--rupture-threshold", help="CODE=VALUE; repeat for several measures."),
    ] = None,
    sg_cutoff: Annotated[
        list[str] | None,
        typer.Option("--sg-cutoff", help="Sudden-gain cut-off, CODE=VALUE; repeatable."),
    ] = None,
    rupture_rule: Annotated[
        list[str] | None, typer.Option("--rupture-rule", help=RUPTURE_RULE_HELP)
    ] = None,
    memory_limit: Annotated[
        str | None,
        typer.Option(
            "--memory-limit",
            help="Peak memory to stay under, e.g. 4G (default: half the free memory, at most "
            "4G); larger data is analysed in partitions of clients.",
        ),
    ] = None,
    engine: Annotated[
        str, typer.Option("--engine", help="local (this machine) or spark (Apache Spark).")
    ] = "local",
    spark_master: Annotated[
        str | None,
        typer.Option(
            "--spark-master", help="Spark master URL, e.g. local[4] or spark://host:7077."
        ),
    ] = None,
    out_format: Annotated[
        str, typer.Option("--format", help="Output tables as csv or parquet.")
    ] = "csv",
    trajectory_model: Annotated[
        str,
        typer.Option(
            "--trajectory-model",
            help="Expected trajectories: ols (one least-squares curve with session bands) or "
            "growth (mixed-effects growth model; needs 200+ reference clients, else ols).",
        ),
    ] = "ols",
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Processes for the local engine (default: every CPU for inputs of 2 million "
            "rows or more, else 1).",
        ),
    ] = None,
) -> None:
    """Analyse a long-format data set and write the results to --out."""
    from bordin.measures.batch import OutputError
    from bordin.measures.engine import UNFORESEEN, run, unforeseen
    from bordin.measures.instruments import DefinitionError, registry
    from bordin.measures.longdata import InputError
    from bordin.measures.stream import parse_size

    started = time.perf_counter()
    if engine not in ("local", "spark"):
        raise fail(f"--engine must be local or spark, got '{engine}'")
    if out_format not in ("csv", "parquet"):
        raise fail(f"--format must be csv or parquet, got '{out_format}'")
    if trajectory_model not in ("ols", "growth"):
        raise fail(f"--trajectory-model must be ols or growth, got '{trajectory_model}'")
    if workers is not None and workers < 1:
        raise fail(f"--workers must be 1 or more, got {workers}")
    try:
        limit = parse_size(memory_limit) if memory_limit else None
    except ValueError as exc:
        raise fail(str(exc)) from None
    try:
        reg = registry(measures).with_overrides(
            rupture_threshold=parse_assignments(rupture_threshold, "--rupture-threshold"),
            sudden_gain_cutoff=parse_assignments(sg_cutoff, "--sg-cutoff"),
            rupture_rule=parse_rules(rupture_rule),
        )
    except DefinitionError as exc:
        raise fail(str(exc)) from None
    with progress_steps() as step:
        try:
            done = run(
                input,
                out,
                reg,
                reference=reference,
                memory_limit=limit,
                engine=engine,
                spark_master=spark_master,
                out_format=out_format,
                step=step,
                trajectory_model=trajectory_model,
                workers=workers,
            )
        except (InputError, OutputError) as exc:
            raise fail(str(exc)) from None
        except OSError as exc:
            raise fail(f"{out}: cannot write results ({exc.strerror})") from None
        except UNFORESEEN as exc:
            raise fail(str(unforeseen(input, exc))) from None
    merged, written = done.merged, done.written
    print_summary(done.summary)
    if merged:
        shown = ", ".join(f"'{a}' → '{b}'" for a, b in merged[:3])
        console.print(
            f"[yellow]note:[/] {len(merged):,} client id(s) had surrounding spaces or another "
            f"Unicode form and were compared trimmed and in NFC form, merging any that then "
            f"matched ({shown}{' ...' if len(merged) > 3 else ''})",
            highlight=False,
        )
    console.print(
        f"Wrote {', '.join(p.name for p in written)} to {out} "
        f"in {time.perf_counter() - started:.2f} s."
    )


def print_summary(summary: dict[str, Any]) -> None:
    """A readable digest of ``summary.json``."""
    info = summary["input"]
    console.print(
        f"[bold]{info['file']}[/]: {info['rows']:,} scores from {info['clients']:,} clients "
        f"({', '.join(sorted(info['measures']))})."
    )
    table = Table(title="What the analysis found", show_lines=False)
    table.add_column("measure")
    table.add_column("finding")
    table.add_column("count", justify="right")
    table.add_column("rate", justify="right")

    def pct(value: float | None) -> str:
        return "–" if value is None else f"{100 * value:.1f}%"

    for code, row in summary["change"].items():
        table.add_row(code, "reliable improvement (incl. recovered)", "", "")
        table.add_row(
            "",
            f"  of {row['clients']:,} clients with 2+ scores",
            f"{row['recovered'] + row['improved']:,}",
            pct(row["reliable_improvement_rate"]),
        )
        table.add_row(
            "",
            "  reliable deterioration",
            f"{row['deteriorated']:,}",
            pct(row["deterioration_rate"]),
        )
    for code, row in summary["sudden_changes"].items():
        table.add_row(
            code,
            f"sudden gains / losses (cut-off {row['cutoff']:g})",
            f"{row['gains']:,} / {row['losses']:,}",
            pct(row["gain_rate"]),
        )
    for code, row in summary["trajectories"].items():
        if row.get("model"):
            table.add_row(
                code,
                "sessions not on track",
                f"{row['not_on_track']:,}",
                pct(row["not_on_track_share"]),
            )
            table.add_row(
                "",
                f"  clients flagged at least once, of {row['clients']:,}",
                f"{row['clients_not_on_track']:,}",
                pct(row["clients_not_on_track_share"]),
            )
    for code, row in summary["ruptures"].items():
        table.add_row(
            code,
            f"alliance ruptures ({row['rule']}, T {row['threshold']:.2f})",
            f"{row['ruptures']:,}",
            "",
        )
        table.add_row(
            "",
            "  repaired / unrepaired / open",
            f"{row['repaired']:,} / {row['unrepaired']:,} / {row['open']:,}",
            pct(row["repair_rate"]),
        )
    outcomes = summary.get("outcomes")
    if outcomes:
        table.add_row(
            "phq9+gad7",
            f"recovery (NHS Talking Therapies), of {outcomes['case_at_start']:,} cases",
            f"{outcomes['recovered']:,}",
            pct(outcomes["recovery_rate"]),
        )
        table.add_row(
            "",
            "  reliable recovery",
            f"{outcomes['reliable_recovery']:,}",
            pct(outcomes["reliable_recovery_rate"]),
        )
    console.print(table)
    for item in summary["excluded"]:
        who = f"{item['clients']:,} clients" if item.get("clients") else "all rows"
        console.print(
            f"[dim]left out of {item['analysis']} ({item['measure']}): {who}: {item['why']}[/]"
        )


@app.command()
def report(
    input: Annotated[Path, typer.Argument(help="Long-format CSV or Parquet file.")],
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write.")],
    measures: Annotated[
        Path | None, typer.Option("--measures", help="TOML file with extra measure definitions.")
    ] = None,
    pdf: Annotated[bool, typer.Option("--pdf", help="Also write a PDF beside the HTML.")] = False,
    adsm: Annotated[
        str | None,
        typer.Option("--adsm", help="Anxiety disorder-specific measure code (else GAD-7)."),
    ] = None,
    bootstrap: Annotated[
        bool, typer.Option("--bootstrap", help="Bootstrap CIs for d (fixed seed).")
    ] = False,
    rupture_rule: Annotated[
        list[str] | None, typer.Option("--rupture-rule", help=RUPTURE_RULE_HELP)
    ] = None,
) -> None:
    """Write a self-contained outcomes report (HTML, optionally PDF) for a data set."""
    from bordin.measures.instruments import DefinitionError, registry
    from bordin.measures.longdata import InputError, check_long, read_table
    from bordin.measures.report import build, endings_from
    from bordin.measures.report_html import render, write_pdf

    if out.suffix.lower() not in (".html", ".htm"):
        raise fail(f"{out}: --out must be an .html file")
    try:
        reg = registry(measures).with_overrides(rupture_rule=parse_rules(rupture_rule))
    except DefinitionError as exc:
        raise fail(str(exc)) from None
    if adsm is not None and adsm not in reg:
        raise fail(f"--adsm {adsm}: unknown measure code (known: {', '.join(sorted(reg))})")
    with progress_steps() as step:
        try:
            step(f"reading {input}")
            raw = read_table(input)
            endings = endings_from(raw, source=str(input))
            data = check_long(raw, reg, source=str(input))
        except InputError as exc:
            raise fail(str(exc)) from None
        step("computing the report")
        result = build(
            data,
            reg,
            source=input.name,
            endings=endings,
            adsm=adsm,
            d_ci="bootstrap" if bootstrap else "analytic",
        )
        step(f"writing {out}")
        html = render(result)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(html, encoding="utf-8")
            if pdf:
                write_pdf(html, out.with_suffix(".pdf"))
        except OSError as exc:
            raise fail(f"{out}: cannot write the report ({exc.strerror})") from None
    written = f"{out}" + (f" and {out.with_suffix('.pdf')}" if pdf else "")
    console.print(f"Wrote the outcomes report to {written}.")


@app.command()
def synth(
    clients: Annotated[int, typer.Option("--clients", min=1, help="How many clients.")],
    out: Annotated[Path, typer.Option("--out", help="Output .csv or .parquet file.")],
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 2026,
    max_sessions: Annotated[int, typer.Option(min=3, help="Longest course.")] = 20,
) -> None:
    """Write realistic synthetic clinic data (for demos and benchmarks)."""
    from bordin.measures.synth import synthesize, write

    if out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise fail(f"{out}: use a .csv or .parquet file name")
    frame = synthesize(clients, seed=seed, max_sessions=max_sessions)
    write(frame, out)
    console.print(f"Wrote {frame.height:,} scores for {clients:,} synthetic clients to {out}.")


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port to serve on (127.0.0.1).")] = 8000,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where the demo database and data live.")
    ] = Path("demo-data"),
    analysis_only: Annotated[
        bool, typer.Option("--analysis-only", help="Only run the batch analysis demo.")
    ] = False,
) -> None:
    """Seed a demo clinic and serve it; or, with --analysis-only, analyse synthetic data."""
    if analysis_only:
        analysis_demo(data_dir)
        return
    from bordin.web.commands import run_demo

    run_demo(port=port, data_dir=data_dir)


def analysis_demo(data_dir: Path) -> None:
    """Generate a synthetic clinic and run the batch analysis on it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "synthetic-clinic.csv"
    synth(clients=400, out=path, seed=2026, max_sessions=20)
    analyze(
        input=path,
        out=data_dir / "analysis",
        measures=None,
        reference=None,
        rupture_threshold=None,
        sg_cutoff=None,
        rupture_rule=None,
        memory_limit=None,
        engine="local",
        spark_master=None,
        out_format="csv",
    )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 2,
    threads: Annotated[int, typer.Option(min=1, help="Threads per worker.")] = 4,
) -> None:
    """Serve the web app with gunicorn against the configured database (see docs/deploy.md)."""
    from bordin.web.commands import run_serve

    run_serve(host=host, port=port, workers=workers, threads=threads)


@app.command()
def worker(
    once: Annotated[
        bool, typer.Option("--once", help="One pass over due work, then exit.")
    ] = False,
) -> None:
    """Run the background worker: sends questionnaires, reminders and follow-ups.

    Run it beside `bordin serve` against the same database (docs/delivery.md).
    """
    from bordin.web.commands import run_worker

    run_worker(once=once)


@app.command()
def backup(
    dest: Annotated[
        Path,
        typer.Argument(help="Backup file to write, or an existing folder (a dated file is made)."),
    ],
    encrypt: Annotated[
        bool,
        typer.Option("--encrypt", help="Encrypt the backup with the key in BORDIN_BACKUP_KEY."),
    ] = False,
) -> None:
    """Back up the clinic database (DATABASE_URL): SQLite online backup, or pg_dump."""
    from bordin.web.backup import BackupError
    from bordin.web.commands import run_backup

    try:
        written = run_backup(dest, encrypt=encrypt)
    except BackupError as exc:
        raise fail(str(exc)) from None
    console.print(f"Backup written to {written}")


@app.command()
def restore(
    src: Annotated[
        Path,
        typer.Argument(help="A file made by `bordin backup` (encrypted: BORDIN_BACKUP_KEY)."),
    ],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Replace the clinic database's contents with a backup, all or nothing."""
    from bordin.web.backup import BackupError
    from bordin.web.commands import run_restore

    if not yes:
        typer.confirm(f"Replace the current database with {src}?", abort=True)
    try:
        run_restore(src)
    except BackupError as exc:
        raise fail(str(exc)) from None
    console.print(
        f"Restored from {src}. Run `bordin manage migrate` if it is from an older version."
    )


@app.command("import-clients")
def import_clients(
    file: Annotated[
        Path, typer.Argument(help="CSV file: display_name, therapist, ... (docs/admin.md).")
    ],
    clinic: Annotated[int, typer.Option("--clinic", help="Id of the clinic to import into.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only check the file and show the preview.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Import clients from a CSV file: checked in full first, stored all or nothing."""
    from bordin.web.commands import run_import_clients

    plan, _ = run_import_clients(file, clinic, commit=False)
    if plan.problems:
        for problem in plan.problems:
            err.print(f"  {problem}", highlight=False, soft_wrap=True)
        raise fail(f"{len(plan.problems)} problem(s) in {file}; nothing was stored.")
    table = Table("Row", "Name", "Therapist", "Email", "Consent email/SMS", title="Preview")
    for row in plan.rows:
        consent = (
            f"{'yes' if row['consent_email'] else 'no'}/{'yes' if row['consent_sms'] else 'no'}"
        )
        table.add_row(
            str(row["line"]),
            row["display_name"],
            row["therapist"].get_username(),
            row["contact_email"],
            consent,
        )
    console.print(table)
    if dry_run:
        console.print(f"Dry run: {len(plan.rows)} clients would be imported; nothing stored.")
        return
    if not yes:
        typer.confirm(f"Import these {len(plan.rows)} clients?", abort=True)
    plan, stored = run_import_clients(file, clinic, commit=True)
    if plan.problems:
        raise fail("The data changed meanwhile: " + "; ".join(map(str, plan.problems)))
    console.print(f"{stored} clients imported.")


@app.command()
def purge(
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Only list the clients and audit events that would be removed."
        ),
    ] = False,
) -> None:
    """Erase clients past their clinic's retention; remove audit events past the audit one."""
    from bordin.web.commands import run_purge

    due, old_events = run_purge(dry_run=dry_run)
    verb = "would be erased" if dry_run else "erased"
    for clinic, client_id in due:
        console.print(f"{clinic.name}: client {client_id} {verb}", highlight=False)
    console.print(f"{len(due)} client(s) {verb}.")
    for clinic, n in old_events:
        console.print(
            f"{clinic.name}: {n} audit event(s) older than the audit retention "
            + ("would be removed." if dry_run else "removed (the purge is itself audited)."),
            highlight=False,
        )


audit_app = typer.Typer(help="The clinic audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit log's hash chain; exit 1 and name the first event that fails."""
    from bordin.web.commands import run_audit_verify

    checked, bad = run_audit_verify()
    if bad is not None:
        err.print(
            f"[bold red]Audit log tampered:[/] the chain breaks at {bad} "
            f"({checked} events before it verified).",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    console.print(f"Audit log intact: {checked} events verified.")


@app.command("import-questionnaire")
def import_questionnaire(
    file: Annotated[Path, typer.Argument(help="A FHIR R4 Questionnaire (JSON).")],
    clinic: Annotated[
        int | None,
        typer.Option("--clinic", help="Clinic id (needed when there is more than one clinic)."),
    ] = None,
) -> None:
    """Import a FHIR Questionnaire onto a clinic's instrument list (see docs/fhir.md)."""
    from bordin.web.commands import run_import_questionnaire

    try:
        lines = run_import_questionnaire(file, clinic)
    except ValueError as exc:
        raise fail(str(exc)) from None
    for line in lines:
        console.print(line)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def manage(ctx: typer.Context) -> None:
    """Run a Django management command, e.g. `bordin manage migrate`."""
    from bordin.web.commands import run_manage

    run_manage(list(ctx.args))


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
