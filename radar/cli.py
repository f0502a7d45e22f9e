"""The ``radar`` command.

Each command parses its arguments, calls library code and prints the result; the work
itself lives in ``features``, ``training`` and ``serving``. Heavy imports happen inside the
commands so that ``radar --help`` stays instant.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from radar.config import Settings, load_settings

app = typer.Typer(
    name="radar",
    help="Radar: which leads and customers to act on, and why.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console()

DataDir = Annotated[Path, typer.Argument(help="Folder with the CRM tables (raw or validated).")]
MappingOpt = Annotated[
    Optional[Path],
    typer.Option("--mapping", "-m", help="Column-mapping YAML file (see data/mapping.example.yaml)."),
]


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
        console.print(f"  {table:<13} {rows:>12,} rows")


def _load(data_dir: Path, mapping: Optional[Path], settings: Settings):
    from features.ingest import load_crm

    from rich.progress import Progress

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("Loading", total=None)

        def step(message: str, fraction: float | None = None) -> None:
            progress.update(task, description=message, completed=fraction, total=1.0 if fraction is not None else None)

        return load_crm(data_dir, mapping, settings=settings, progress=step)


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
    out: Annotated[Path, typer.Option("--out", "-o", help="Parquet file to write.")],
    mapping: MappingOpt = None,
) -> None:
    """Build one row of point-in-time features per person as of a day."""
    import pandas as pd

    from features.atomic import write_parquet
    from features.pipeline import build_features

    settings = load_settings()
    moment = pd.Timestamp(_parse_day(as_of))
    loaded = _load(data_dir, mapping, settings)
    started = time.perf_counter()
    with console.status(f"Building features as of {moment.date()}..."):
        frame = build_features(loaded.data, moment, settings.features)
    seconds = time.perf_counter() - started
    write_parquet(frame, out)
    console.print(
        f"[green]{len(frame):,} people × {frame.shape[1]} features[/] as of {moment.date()} "
        f"in {seconds:.1f} s → {out}"
    )


@app.command()
def quickstart(
    folder: Annotated[Path, typer.Option(help="Working folder for the demo run.")] = Path(".radar/quickstart"),
    customers: Annotated[int, typer.Option(min=100, help="People in the demo world.")] = 5_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """The main job: demo world → validate → features (→ train → serve, as they land)."""
    import pandas as pd

    from radar.demo import DEFAULT_END

    raw = folder / "crm"
    demo(out=raw, customers=customers, seed=seed, end=None, file_format="csv")
    validated = folder / "validated"
    validate(raw, mapping=None, out=validated)
    as_of = (pd.Timestamp(DEFAULT_END) - pd.DateOffset(months=3)).date().isoformat()
    features(validated, as_of=as_of, out=folder / "features.parquet", mapping=None)
    console.print(f"[bold green]Quickstart done.[/] Outputs in {folder}")


def main() -> None:
    """Entry point: bad input ends with one clear message and exit code 2, not a traceback."""
    from features.errors import RadarInputError
    from training.snapshots import NotEnoughHistory

    try:
        app()
    except (RadarInputError, NotEnoughHistory) as err:
        console.print(f"[red]error:[/] {err}")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
