"""The ``radar`` command.

Each command parses its arguments, calls library code and prints the result; the work
itself lives in ``features``, ``training`` and ``serving``. Heavy imports happen inside the
commands so that ``radar --help`` stays instant.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console

from radar.config import Settings, load_settings
from radar.text import noun, plural

if TYPE_CHECKING:  # imported late at run time: `radar --help` stays fast
    import pandas as pd
    from rich.table import Table

app = typer.Typer(
    name="radar",
    help="Radar: which leads and customers to act on, and why.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
# Wide enough for the metrics tables when the output is a log file or a CI page.
console = Console(width=None if sys.stdout.isatty() else 140)

# Text, not a Path: a database URL's "//" would not survive pathlib.
SOURCE_HELP = ("Folder with the CRM tables (raw or validated), or a database URL "
               "(postgresql://user@host:5432/crm, sqlite:///crm.db, duckdb:///crm.duckdb).")
DataDir = Annotated[str, typer.Argument(help=SOURCE_HELP, show_default=False)]
MappingOpt = Annotated[
    Optional[Path],
    typer.Option("--mapping", "-m", help="Column-mapping YAML file (see data/mapping.example.yaml)."),
]
ENGINES = ("pandas", "spark")
EngineOpt = Annotated[
    str,
    typer.Option("--engine", help="pandas (this process) or spark (settings.spark.master; see docs/spark.md)."),
]


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise typer.BadParameter(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")


def _parse_day(value: str) -> "date":
    try:
        return date.fromisoformat(value)
    except ValueError as err:
        raise typer.BadParameter(f"expected a date as YYYY-MM-DD, got {value!r}") from err


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the demo CRM to.")],
    customers: Annotated[int, typer.Option(min=100, help="Number of people in the world.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files.")] = 7,
    end: Annotated[Optional[str], typer.Option(help="Last day of the world, YYYY-MM-DD.")] = None,
    file_format: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
) -> None:
    """Generate a realistic, seeded demo CRM (with ground truth in OUT/truth/)."""
    from radar.demo import DEFAULT_END, generate_world

    if file_format not in ("csv", "parquet"):
        raise typer.BadParameter("--format must be csv or parquet")
    last_day = _parse_day(end) if end else DEFAULT_END
    with console.status(f"Generating a demo world of {customers:,} people..."):
        summary = generate_world(customers, seed, out, end=last_day, file_format=file_format)
    console.print(f"[green]Demo world written to {out}[/] in {summary.seconds:.1f} s")
    for table, rows in summary.rows.items():
        console.print(f"  {table:<13} {rows:>12,} {noun(rows, 'row')}")


def _source(data_dir: "str | Path") -> "str | Path":
    """A database URL as given, anything else as a path."""
    from features.database import is_database_url

    return data_dir if is_database_url(data_dir) else Path(data_dir)


def _load(data_dir: "str | Path", mapping: Optional[Path], settings: Settings):
    from features.ingest import load_crm

    from rich.progress import Progress

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("Loading", total=None)

        def step(message: str, fraction: float | None = None) -> None:
            progress.update(task, description=message, completed=fraction, total=1.0 if fraction is not None else None)

        return load_crm(_source(data_dir), mapping, settings=settings, progress=step)


@app.command()
def validate(
    data_dir: DataDir,
    mapping: MappingOpt = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="Where to write validated tables and rejects.")
    ] = None,
) -> None:
    """Check DIR against the data contract, unify identities and write rejects with reasons."""
    from features.ingest import report_tables, write_validated

    settings = load_settings()
    result = _load(data_dir, mapping, settings)
    out_dir = out or settings.work_dir / "validated"
    write_validated(result, out_dir)
    for table in report_tables(result.report):
        console.print(table)
    console.print(f"Validated tables: {out_dir}   rejects: {out_dir / 'rejects.csv'}")


@app.command()
def features(
    data_dir: DataDir,
    as_of: Annotated[str, typer.Option("--as-of", help="Build features from events strictly before this day.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Parquet file to write.")] = None,
    mapping: MappingOpt = None,
    materialize: Annotated[
        bool, typer.Option("--materialize", help="Also store them in the online feature store the API reads.")
    ] = False,
    store: Annotated[
        Optional[str],
        typer.Option("--store", help="Feature store: a file or a PostgreSQL URL (default: serving.store_url, "
                                     "else WORK_DIR/feature_store.sqlite)."),
    ] = None,
    engine: EngineOpt = "pandas",
) -> None:
    """Build one row of point-in-time features per person as of a day."""
    if out is None and not materialize:
        raise typer.BadParameter("give --out FILE.parquet and/or --materialize")
    _check_engine(engine)
    import pandas as pd

    from features.atomic import write_parquet
    from features.pipeline import build_features

    settings = load_settings()
    moment = pd.Timestamp(_parse_day(as_of))
    loaded = _load(data_dir, mapping, settings)
    started = time.perf_counter()
    with console.status(f"Building features as of {moment.date()} ({engine})..."):
        if engine == "spark":
            from features.spark import build_features_spark

            frame = build_features_spark(loaded.data, moment, settings)
        else:
            frame = build_features(loaded.data, moment, settings.features)
    seconds = time.perf_counter() - started
    if out is not None:
        write_parquet(frame, out)
    console.print(
        f"[green]{plural(len(frame), 'person', 'people')} × {plural(frame.shape[1], 'feature')}[/] as of {moment.date()} "
        f"in {seconds:.1f} s → {out or 'feature store'}"
    )
    if materialize:
        _materialize(loaded.data, moment, frame, store, settings)


def _interval(m: "pd.Series | dict", metric: str) -> str:
    """``+0.0123 [+0.0040, +0.0200]``: a contender minus the served one, with its interval."""
    diff, low, high = (m.get(f"{metric}{k}") for k in ("_diff", "_low", "_high"))
    if diff is None or diff != diff:
        return ""
    bounds = "" if low is None or low != low else f" [{low:+.4f}, {high:+.4f}]"
    return f"{diff:+.4f}{bounds}"


def _metrics_table(results: dict, title: str = "Test snapshot: every contender, the served one in bold") -> "Table":
    """One table for CRM targets and flat tables: each contender's test metrics, its
    difference from the served contender with the gate's interval, and the gate's verdict."""
    from rich.table import Table

    table = Table(title=title)
    columns = ("target", "contender", "AUC / C", "Brier / IBS", "ECE", "n",
               "Δ Brier / IBS vs served", "Δ AUC / C vs served", "gate")
    for column in columns:
        table.add_column(column, justify="left" if column in ("target", "contender", "gate") else "right")
    for target, result in results.items():
        if result.bundle is None:
            table.add_row(target, "—", *[""] * 6, "not trained (see the note)")
            continue
        served = result.decision.served if result.decision else None
        alias = result.registration.get("alias", "not registered") if result.registration else "not registered"
        for contender, m in result.comparison.iterrows():
            loss, rank = ("integrated_brier", "c_index") if "c_index" in m else ("brier", "auc")
            is_served = contender == served
            table.add_row(
                target if contender == result.comparison.index[0] else "",
                f"[bold]{contender}[/]" if is_served else str(contender),
                _fmt(m.get(rank)), _fmt(m.get(loss)), _fmt(m.get("ece")), f"{int(m['n']):,}",
                _interval(m, loss), _interval(m, rank),
                f"serves ({alias})" if is_served else "",
            )
    return table


def _fmt(value: object, digits: int = 3) -> str:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    return "" if number != number else f"{number:.{digits}f}"


@app.command()
def train(
    data_dir: Annotated[Optional[str], typer.Argument(help=SOURCE_HELP, show_default=False)] = None,
    table: Annotated[Optional[Path], typer.Option(help="A flat table: one row per lead/customer.")] = None,
    label: Annotated[Optional[str], typer.Option(help="Flat table: the label column.")] = None,
    id_column: Annotated[Optional[str], typer.Option("--id", help="Flat table: the id column.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Flat table: the model's name.")] = None,
    force_include: Annotated[
        Optional[list[str]], typer.Option("--force-include", help="Flat table: keep a flagged column.")
    ] = None,
    metrics_out: Annotated[Optional[Path], typer.Option("--metrics-out", help="Write the figures as JSON.")] = None,
    no_register: Annotated[bool, typer.Option("--no-register", help="Train and judge only.")] = False,
    horizon: Annotated[
        Optional[int], typer.Option("--horizon", min=1, help="Label window in days (default: training.horizon_days).")
    ] = None,
    mapping: MappingOpt = None,
) -> None:
    """Train every target (or a flat table), judge every contender, register and gate."""
    import json

    from features.atomic import write_text

    settings = load_settings()
    if horizon is not None:
        training = settings.training.model_copy(update={"horizon_days": horizon})
        settings = settings.model_copy(update={"training": training})
    if table is not None:
        payload = _train_flat(table, label, id_column, name, force_include or [], settings, not no_register)
    elif data_dir is not None:
        from training.pipeline import train_all

        with console.status("Training...") as status:
            report = train_all(
                _source(data_dir), settings, register=not no_register, progress=status.update, mapping_path=mapping
            )
        console.print(_metrics_table(report.results))
        _print_gate(report.results)
        for result in report.results.values():
            for note in result.notes:
                console.print(f"[yellow]note:[/] {note}")
        payload = report.to_dict()
    else:
        raise typer.BadParameter("give a CRM folder, or --table FILE --label COL --name NAME")
    if metrics_out:
        write_text(json.dumps(payload, indent=2, default=str), metrics_out)
        console.print(f"Metrics written to {metrics_out}")


def _print_gate(results: dict) -> None:
    """Which contender serves each target, and why (the gate's reasons)."""
    for target, result in results.items():
        if result.decision is not None:
            console.print(f"[bold]{target}[/]: {result.decision.served} serves. {result.decision.summary}")


def _train_flat(
    table: Path, label: Optional[str], id_column: Optional[str], name: Optional[str],
    force_include: list[str], settings: Settings, register: bool,
) -> dict:
    import pandas as pd

    from training.flat import load_flat_table, train_flat
    from training.pipeline import TargetResult

    if not label or not name:
        raise typer.BadParameter("--table needs --label COL and --name NAME")
    flat = load_flat_table(table, label, id_column)
    for message in flat.messages:
        console.print(f"[yellow]{message}[/]")
    bundle, report = train_flat(flat, name, settings, force_include=force_include)
    for warning in report.leakage.warnings():
        console.print(f"[yellow]leakage guard:[/] {warning}")
    result = TargetResult(
        name, bundle, pd.DataFrame.from_dict(report.metrics, orient="index"),
        {"train": report.n_train, "validation": report.n_validation, "test": report.n_test},
        list(report.notes), test_features=report.test_features, test_rows=report.test_rows,
        test_predictions=report.test_predictions, decision=report.decision,
        params={"table": str(table), "label": label},
    )
    if register:
        from training.registry import register_results

        register_results({name: result}, settings)
    console.print(_metrics_table({name: result}, "Held-out test split: every contender, the served one in bold"))
    _print_gate({name: result})
    for note in report.notes:
        console.print(f"note: {note}")
    payload = {
        "name": name,
        "metrics": bundle.metrics,
        "notes": bundle.notes,
        "model_type": bundle.model_type,
        "gate": result.decision.to_dict() if result.decision else None,
        "flagged_columns": [c.column for c in report.leakage.checks if c.flagged],
        "auc_with_flagged_columns": report.auc_with_excluded,
    }
    if register:
        reg = result.registration
        console.print(f"Registered {reg['model_name']} v{reg['version']} as {reg['alias']}")
        payload["registration"] = reg
    return payload


@app.command()
def score(
    data_dir: Annotated[Optional[str], typer.Argument(help=SOURCE_HELP, show_default=False)] = None,
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Score as of this day (default: day after the data).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV, Parquet or Excel (.xlsx) file.")] = Path("scores.csv"),
    table: Annotated[Optional[Path], typer.Option(help="A flat table to score with --model.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Flat table: the registered model's name.")] = None,
    id_column: Annotated[Optional[str], typer.Option("--id", help="Flat table: the id column.")] = None,
    alias: Annotated[str, typer.Option(help="Flat table: which registered version (champion or challenger).")] = "champion",
    top_k: Annotated[int, typer.Option("--top-k", min=0, max=20, help="Reasons per score (0: none).")] = 5,
    mapping: MappingOpt = None,
    engine: EngineOpt = "pandas",
) -> None:
    """Score every eligible person with the champions and write the answers."""
    import pandas as pd

    _check_engine(engine)
    if engine == "spark" and table is not None:
        raise typer.BadParameter("--engine spark scores a CRM folder, not a flat --table")

    from serving.export import write_scores
    from serving.history import record_scores

    settings = load_settings()
    if table is not None:
        from training.flat import score_flat
        from training.registry import load_bundle_with_info

        if not model:
            raise typer.BadParameter("--table needs --model NAME")
        bundle, info = load_bundle_with_info(model, alias, tracking_uri=settings.tracking_uri)
        scores = score_flat(bundle, table, id_column, settings.scoring).assign(model_version=str(info.version))
        scores = record_scores(scores, date.today(), settings, key=str(scores.columns[0]), target=model)
    elif data_dir is not None:
        from features.source_ids import source_ids, with_source_ids
        from serving.scoring import load_champions, score_people
        from training.datasets import data_span

        data = _load(data_dir, mapping, settings).data
        moment = pd.Timestamp(_parse_day(as_of)) if as_of else data_span(data)[1]
        champions = load_champions(settings)
        if not champions:
            raise typer.BadParameter("no champion models yet: run `radar train DIR` first")
        if engine == "spark":
            from serving.spark_scoring import score_people_spark

            scores = score_people_spark(data, moment, champions, settings, top_k=top_k or None)
        else:
            scores = score_people(data, moment, champions, settings, top_k=top_k or None)
        # One cell of plain sentences for CRMs and spreadsheets; the structured list stays
        # in the API's answers. Every row carries the CRM's own ids to upsert on.
        scores = with_source_ids(scores.drop(columns=["reasons"], errors="ignore"), source_ids(data, moment))
        scores = record_scores(scores, moment.date(), settings)
    else:
        raise typer.BadParameter("give a CRM folder, or --table FILE --model NAME")
    write_scores(scores, out)
    console.print(f"[green]{plural(len(scores), 'score')}[/] → {out}")


@app.command()
def lists(
    data_dir: DataDir,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the lists (CSV each, plus lists.xlsx).")] = Path(
        "lists"
    ),
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Day to rank as of (default: day after the data).")] = None,
    channel: Annotated[Optional[list[str]], typer.Option(help="Keep only these lead channels.")] = None,
    segment: Annotated[Optional[list[str]], typer.Option(help="Keep only these segments.")] = None,
    grade: Annotated[Optional[list[str]], typer.Option(help="Keep only these grades (A-D).")] = None,
    owner: Annotated[Optional[list[str]], typer.Option(help="Keep only these deal owners.")] = None,
    mapping: MappingOpt = None,
) -> None:
    """Ranked action lists for today: leads to call, deals, drifting customers, failed payments, buyers."""
    import pandas as pd

    from serving.lists import ListFilters, build_lists, write_lists
    from serving.scoring import load_champions
    from training.datasets import data_span

    settings = load_settings()
    data = _load(data_dir, mapping, settings).data
    moment = pd.Timestamp(_parse_day(as_of)) if as_of else data_span(data)[1]
    filters = ListFilters(channel=channel or None, segment=segment or None, grade=grade or None, owner=owner or None)
    with console.status("Ranking..."):
        ranked = build_lists(data, moment, load_champions(settings), settings, filters=filters)
    paths = write_lists(ranked, out)
    for name, frame in ranked.items():
        console.print(f"  {name:<24} {len(frame):>7,} {noun(len(frame), 'row')}")
    console.print(f"[green]Lists written to {out}[/] ({plural(len(paths), 'file')}, workbook {out / 'lists.xlsx'})")


@app.command()
def report(
    data_dir: DataDir,
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")] = Path("report.html"),
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Report as of this day (default: day after the data).")] = None,
    mapping: MappingOpt = None,
) -> None:
    """One self-contained HTML KPI report: channels, funnel, churn split and model health."""
    import pandas as pd

    from serving.kpis import compute_kpis
    from serving.report import collect_model_health, render_report

    settings = load_settings()
    data = _load(data_dir, mapping, settings).data
    moment = pd.Timestamp(_parse_day(as_of)) if as_of else None
    with console.status("Computing KPIs..."):
        kpis = compute_kpis(data, settings, as_of=moment)
        health = collect_model_health(tracking_uri=settings.tracking_uri)
    render_report(kpis, health, out)
    console.print(f"[green]KPI report written to {out}[/]")


@app.command()
def monitor(
    data_dir: DataDir,
    as_of: Annotated[
        Optional[str], typer.Option("--as-of", help="Compare as of this day (default: day after the data).")
    ] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Report file: .md (Markdown) or .html.")] = None,
    top: Annotated[int, typer.Option(min=1, help="Features listed per target in the report.")] = 15,
    mapping: MappingOpt = None,
) -> None:
    """Drift of today's features and scores from each champion's training profile (PSI,
    missing shares). Exit 0: fine; 3: drift past monitoring.fail_on; 2: bad input."""
    import pandas as pd

    from serving.monitor import EXIT_DRIFT, monitor_crm, summary_lines, write_report
    from serving.scoring import load_champions
    from training.datasets import data_span
    from training.drift import NoProfile, profile_of

    if out is not None and out.suffix.lower() not in (".md", ".html", ".htm"):
        raise typer.BadParameter(f"--out must end in .md or .html, not {out.name!r}")
    moment = pd.Timestamp(_parse_day(as_of)) if as_of else None
    settings = load_settings()
    champions = load_champions(settings)
    if not champions:
        raise typer.BadParameter("no champion models yet: run `radar train DIR` first")
    missing = []
    for champion in champions.values():
        try:
            profile_of(champion.bundle)
        except NoProfile as err:
            missing.append(str(err))
    if len(missing) == len(champions):
        raise typer.BadParameter("no champion has a drift profile to compare with: " + "; ".join(missing))
    data = _load(data_dir, mapping, settings).data
    moment = moment if moment is not None else data_span(data)[1]
    with console.status(f"Comparing {moment.date()} with the champions' training profiles..."):
        drift = monitor_crm(data, moment, champions, settings)
    for line in summary_lines(drift):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if out is not None:
        write_report(drift, out, top)
        console.print(f"Drift report written to {out}")
    if drift.failed:
        raise typer.Exit(EXIT_DRIFT)


@app.command()
def promote(
    target: Annotated[str, typer.Argument(help="Target or flat-table model name.")],
    version: Annotated[Optional[int], typer.Option(help="Version to make champion (default: the challenger).")] = None,
) -> None:
    """Make a version the champion by hand (the old one can be restored with rollback)."""
    from training.registry import promote as promote_version

    change = promote_version(target, version, tracking_uri=load_settings().tracking_uri)
    console.print(change.to_dict())


@app.command()
def rollback(target: Annotated[str, typer.Argument(help="Target or flat-table model name.")]) -> None:
    """Restore the previous champion."""
    from training.registry import rollback as rollback_version

    change = rollback_version(target, tracking_uri=load_settings().tracking_uri)
    console.print(change.to_dict())


@app.command()
def retrain(
    data_dir: DataDir,
    metrics_out: Annotated[Optional[Path], typer.Option("--metrics-out", help="Write the figures as JSON.")] = None,
    mapping: MappingOpt = None,
) -> None:
    """Re-run the whole flow on fresh data through the promotion gate (for a scheduler)."""
    train(data_dir=data_dir, table=None, label=None, id_column=None, name=None, force_include=None,
          metrics_out=metrics_out, no_register=False, mapping=mapping)


@app.command()
def quickstart(
    folder: Annotated[Path, typer.Option(help="Working folder for the demo run.")] = Path(".radar/quickstart"),
    # 20 k people give test snapshots large enough for the calibration check to measure
    # the model rather than noise (a few hundred rows leave ECE around 0.03 by chance).
    customers: Annotated[int, typer.Option(min=100, help="People in the demo world.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Stop after scoring.")] = False,
) -> None:
    """The main job: demo world → validate → features → train and register → score → lists and
    report → serve."""
    import pandas as pd

    from radar.demo import DEFAULT_END

    raw = folder / "crm"
    demo(out=raw, customers=customers, seed=seed, end=None, file_format="csv")
    validated = folder / "validated"
    validate(raw, mapping=None, out=validated)
    as_of = (pd.Timestamp(DEFAULT_END) + pd.Timedelta(days=1)).date().isoformat()
    features(validated, as_of=as_of, out=folder / "features.parquet", mapping=None, materialize=True, store=None)
    train(data_dir=validated, table=None, label=None, id_column=None, name=None, force_include=None,
          metrics_out=folder / "metrics.json", no_register=False, mapping=None)
    scores_file = folder / "scores.csv"
    score(data_dir=validated, as_of=as_of, out=scores_file, table=None, model=None, id_column=None,
          alias="champion", top_k=5, mapping=None)
    lists(validated, out=folder / "lists", as_of=as_of, channel=None, segment=None, grade=None, owner=None, mapping=None)
    report(validated, out=folder / "report.html", as_of=as_of, mapping=None)
    console.print(
        f"[bold green]Quickstart done.[/] Scores {scores_file}, action lists {folder / 'lists'}, "
        f"KPI report {folder / 'report.html'}; MLflow store: {load_settings().tracking_uri}"
    )
    if no_serve:
        return
    _print_first_call(folder, scores_file)
    # The server reads the validated folder for the web page's lists and KPIs.
    os.environ["RADAR_DATA_DIR"] = str(validated.resolve())
    console.print(f"The marketers' page: http://{load_settings().serving.host}:{load_settings().serving.port}/ui/")
    serve(host=None, port=None, from_store=False)


def _print_first_call(folder: Path, scores_file: Path) -> None:
    """Create a demo API key, keep it in a private file and show a working curl line."""
    import pandas as pd

    from features.atomic import atomic_path
    from serving.auth import create_key

    settings = load_settings()
    key = create_key(settings.serving.api_keys_file)
    key_file = folder / "api_key.txt"
    with atomic_path(key_file) as temp:  # private before the key is in it; whole or absent
        temp.chmod(0o600)
        temp.write_text(key + "\n", encoding="utf-8")
    person = str(pd.read_csv(scores_file, usecols=["person_id"], nrows=1)["person_id"].iloc[0])
    url = f"http://{settings.serving.host}:{settings.serving.port}/score"
    body = '{"person_id": "%s", "top_k": 3}' % person
    console.print(f"API key saved to {key_file} (its hash in {settings.serving.api_keys_file}).")
    console.print("Starting the scoring server; once /readyz answers, try:")
    console.print(
        f"  curl -s -X POST {url} -H 'Content-Type: application/json' "
        f'-H "Authorization: Bearer $(cat {key_file})" -d \'{body}\'',
        soft_wrap=True,
    )


def _materialize(data, moment, frame, store: Optional[str], settings: Settings) -> None:
    from serving.answers import materialize_with_answers
    from serving.feature_store import open_store

    target = open_store(settings, store)
    with console.status("Materialising the day and precomputing every person's answer for scoring by id..."):
        done = materialize_with_answers(data, moment, settings, target, features=frame)
    console.print(f"[green]{plural(done.written.persons, 'person', 'people')}[/] as of {moment.date()} "
                  f"→ feature store {target.shown}")
    if done.answers:
        console.print(f"[green]{plural(sum(done.answers.values()), 'answer')}[/] precomputed for {moment.date()} "
                      f"in {done.seconds['champions'] + done.seconds['answers']:.1f} s")


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="Address to bind (default: serving.host).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port (default: serving.port).")] = None,
    from_store: Annotated[
        bool, typer.Option("--from-store", help="Serve the models in BentoML's model store, not MLflow's registry.")
    ] = False,
) -> None:
    """Start the scoring API (BentoML) with the champions; see docs/api.md."""
    serving = load_settings().serving
    bentoml = Path(sys.executable).parent / "bentoml"
    command = [str(bentoml), "serve", "serving.service:Radar", "--host", host or serving.host,
               "--port", str(port or serving.port)]
    if from_store:
        command += ["--arg", "model_source=bentoml"]
    # Replace this process, so that Ctrl+C and a supervisor's SIGTERM reach the server
    # itself; the working directory stays the caller's (radar.yaml, a relative work_dir).
    os.execv(command[0], command)


keys_app = typer.Typer(help="API keys for the scoring API.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create() -> None:
    """Create an API key: its hash goes to serving.api_keys_file; the key is shown once."""
    from serving.auth import create_key

    path = load_settings().serving.api_keys_file
    key = create_key(path)
    console.print(f"New API key (shown once, store it now): [bold]{key}[/]\nIts hash was added to {path}")


bento_app = typer.Typer(help="BentoML model store and bentos.", no_args_is_help=True)
app.add_typer(bento_app, name="bento")


@bento_app.command("export")
def bento_export() -> None:
    """Copy every champion from the MLflow registry into BentoML's model store."""
    from serving.model_store import export_to_bentoml

    tags = export_to_bentoml(load_settings())
    if not tags:
        raise typer.BadParameter("no champion models yet: run `radar train DIR` first")
    for tag in tags:
        console.print(f"[green]exported[/] {tag}")
    console.print("Serve them with `radar serve --from-store`; `bentoml build` packs them into a bento.")


@app.command()
def push(
    url: Annotated[str, typer.Option(help="The CRM webhook that receives the scores.")],
    scores: Annotated[Path, typer.Option(help="Score table from `radar score` (.csv, .parquet, .xlsx).")],
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per call.")] = 500,
    attempts: Annotated[int, typer.Option(min=1, help="Tries per batch (exponential backoff).")] = 5,
    backoff: Annotated[float, typer.Option(min=0, help="First wait between tries, seconds.")] = 1.0,
    header: Annotated[
        Optional[list[str]], typer.Option(help="Extra header 'Name: value' (e.g. the CRM's token); repeatable.")
    ] = None,
    report: Annotated[Path, typer.Option(help="CSV of the rows not delivered, with reasons.")] = Path("push_report.csv"),
    match: Annotated[
        Optional[str],
        typer.Option(help="Key each record by the CRM's own id: lead_id, customer_id or deal_id (one record per id "
                          "of a merged person; rows without one are not sent). Default: the score rows as they are."),
    ] = None,
) -> None:
    """Post scores to a CRM webhook in batches with retries; write what failed and why."""
    from features.source_ids import MATCH_KINDS, one_row_per_id
    from serving.push import PushSettings, push_scores, read_scores, write_report

    if match is not None and match not in MATCH_KINDS:
        raise typer.BadParameter(f"--match takes {', '.join(MATCH_KINDS)}, not {match!r}")
    headers = dict(_header(h) for h in header or [])
    settings = PushSettings(url=url, batch_size=batch_size, attempts=attempts, backoff_seconds=backoff, headers=headers)
    table = read_scores(scores)
    if match is not None:
        try:
            table = one_row_per_id(table, match)
        except ValueError as err:
            raise typer.BadParameter(str(err)) from None
        console.print(f"{plural(len(table), 'record')} keyed by {match}")
    result = push_scores(table, settings)
    write_report(result, report)
    colour = "green" if result.failed_rows == 0 else "yellow"
    console.print(f"[{colour}]{plural(result.sent_rows, 'row')} delivered, {result.failed_rows:,} failed[/] "
                  f"in {plural(result.batches, 'batch', 'batches')}; report: {report}")
    if result.failed_rows:
        raise SystemExit(1)


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise typer.BadParameter(f"expected 'Name: value', got {name.strip() or text!r}")
    return name.strip(), value.strip()


def main() -> None:
    """Entry point: bad input ends with one clear message and exit code 2, not a traceback."""
    from features.errors import RadarInputError
    from training.snapshots import NotEnoughHistory

    # MLflow's per-artifact progress bars and INFO lines drown the command's own report.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # pandera imports PySpark's pandas layer when PySpark is installed; its version notice
    # says nothing about Radar's input and would sit above every error message.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support", category=FutureWarning)
    try:
        app()
    except (RadarInputError, NotEnoughHistory) as err:
        # On stderr, so that a script reading the command's output sees only results.
        Console(stderr=True, width=console.width).print(f"[red]error:[/] {err}", soft_wrap=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
