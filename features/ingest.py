"""Loading a CRM folder: find files, read, validate, unify identities, report.

``load_crm`` is the one entry point: it returns validated, unified tables (contract dtypes),
the rejects and a report. ``write_validated`` stores that result in a folder that
``load_crm`` later reads back directly, without validating again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from features.atomic import write_csv, write_parquet, write_text
from features.contact import add_contact_quality
from features.contract import TABLES, CRMData
from features.database import display_url, is_database_url
from features.errors import RadarInputError
from features.identity import PERSON_TABLES, IdentityReport, PhoneParses, start_phones, unify
from features.io import READABLE_SUFFIXES, RawTable, read_table
from features.mapping import Mapping, load_mapping
from features.phones import phone_workers
from features.privacy import hash_form, pseudonymise
from features.validation import (
    REJECT_COLUMNS,
    TEXT_OUTPUT_DTYPE,
    ValidatedTable,
    empty_rejects,
    text_output,
    validate_tables,
)
from radar.config import Settings, load_settings

#: Called as work progresses: a message and the fraction done (None when unknown).
Progress = Callable[[str, "float | None"], None]
MARKER_FILE = "radar-validated.json"
HASH_SECRET_ENV = "RADAR_IDENTITY__HASH_SECRET"
FORMAT_VERSION = 1
TOP_REASONS = 5


@dataclass
class TableReport:
    """Counts and the commonest problems of one table."""

    table: str
    files: list[str]
    read: int
    accepted: int
    rejected: int
    top_reasons: list[tuple[str, int]] = field(default_factory=list)
    dropped_columns: list[str] = field(default_factory=list)
    attribute_columns: list[str] = field(default_factory=list)
    #: Accepted rows worth a look, in words (e.g. orders dated before their person's lead).
    warnings: list[str] = field(default_factory=list)


@dataclass
class IngestReport:
    """What a load read, accepted, rejected and linked."""

    source: str
    mapping: str | None
    tables: dict[str, TableReport]
    identity: IdentityReport | None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "mapping": self.mapping,
            "seconds": round(self.seconds, 3),
            "tables": {name: asdict(t) for name, t in self.tables.items()},
            "identity": self.identity.to_dict() if self.identity else None,
        }

    @classmethod
    def from_dict(cls, data: dict) -> IngestReport:
        tables = {
            name: TableReport(**{**t, "top_reasons": [tuple(r) for r in t.get("top_reasons", [])]})
            for name, t in data["tables"].items()
        }
        identity = None
        if data.get("identity"):
            fields = {k: v for k, v in data["identity"].items() if k != "shared_keys_ignored"}
            identity = IdentityReport(**fields)
        return cls(data["source"], data.get("mapping"), tables, identity, data.get("seconds", 0.0))


@dataclass
class LoadResult:
    """Validated, unified tables, their rejects and the report."""

    data: CRMData
    rejects: pd.DataFrame
    report: IngestReport
    #: Per table, aligned with its rows: the source file and 1-based row number.
    origins: dict[str, pd.DataFrame] = field(default_factory=dict)


# --- Finding files ---------------------------------------------------------------------------


def discover(folder: Path, mapping: Mapping) -> dict[str, list[Path]]:
    """Files per table: the mapping's name or glob, else ``<table>.<csv|parquet|...>``."""
    found: dict[str, list[Path]] = {}
    entries = sorted(p for p in folder.iterdir() if p.is_file())
    for name in TABLES:
        pattern = mapping.table(name).file
        if pattern:
            matches = sorted(p for p in folder.glob(pattern) if p.is_file())
            if not matches:
                raise RadarInputError(f"no file matches {pattern!r} for table {name}", folder)
            found[name] = matches
            continue
        candidates = [p for p in entries if p.name.lower() in {name + s for s in READABLE_SUFFIXES}]
        if len(candidates) > 1:
            raise RadarInputError(
                f"several files for table {name} ({', '.join(p.name for p in candidates)}): keep one "
                "or name it in the mapping file",
                folder,
            )
        if candidates:
            found[name] = candidates
    if not found:
        expected = ", ".join(f"{t}.csv" for t in TABLES)
        raise RadarInputError(f"no CRM tables found (expected files such as {expected}, or a mapping file)", folder)
    return found


def _single_file(path: Path, mapping: Mapping) -> dict[str, list[Path]]:
    for name in TABLES:
        pattern = mapping.table(name).file
        if (pattern and path.match(pattern)) or any(path.name.lower() == name + s for s in READABLE_SUFFIXES):
            return {name: [path]}
    raise RadarInputError(f"cannot tell which table this file is (name it {', '.join(TABLES)})", path)


# --- Loading ---------------------------------------------------------------------------------


def _notify(progress: Progress | None, message: str, fraction: float | None) -> None:
    if progress is not None:
        progress(message, fraction)


def _read_all(files: dict[str, list[Path]], mapping: Mapping, progress: Progress | None) -> dict[str, list[RawTable]]:
    total = sum(len(v) for v in files.values())
    done = 0
    raws: dict[str, list[RawTable]] = {}
    for name, paths in files.items():
        options = mapping.table(name)
        raws[name] = []
        for path in paths:
            _notify(progress, f"Reading {path.name}", 0.4 * done / total)
            raws[name].append(read_table(path, encoding=options.encoding, delimiter=options.delimiter))
            done += 1
    return raws


def _hash_secret(mapping: Mapping, settings: Settings, where: Path) -> str | None:
    """The key for ``hash_columns``: from the settings (env ``RADAR_IDENTITY__HASH_SECRET``)."""
    if not mapping.hash_columns:
        return None
    secret = settings.identity.hash_secret
    if secret is None or not secret.get_secret_value():
        raise RadarInputError(
            f"the mapping hashes {', '.join(mapping.hash_columns)} but no key is set: put a long random "
            f"secret in the environment variable {HASH_SECRET_ENV} (keep it stable, or hashes change)",
            where,
        )
    return secret.get_secret_value()


def _hash_columns(tables: dict[str, pd.DataFrame], mapping: Mapping, secret: str | None) -> dict[str, pd.DataFrame]:
    """Replace the mapping's personal columns by keyed hashes of their normalised values
    (after linking, which needs the real values)."""
    if not mapping.hash_columns or secret is None:
        return tables
    out = {}
    for name, frame in tables.items():
        targets = [c for c in mapping.hash_columns if c in frame.columns]
        for column in targets:
            codes, uniques = pd.factorize(frame[column].astype(object), use_na_sentinel=True)
            hashed = pd.Series([pseudonymise(hash_form(u), secret) for u in uniques], dtype=object)
            values = hashed.reindex(codes).to_numpy()
            frame = frame.assign(**{column: text_output(pd.Series(values, index=frame.index))})
        out[name] = frame
    return out


def _top_reasons(rejects: pd.DataFrame) -> list[tuple[str, int]]:
    if rejects.empty:
        return []
    pairs = pd.DataFrame({"kind": rejects["kind"].str.split("; "), "field": rejects["field"].str.split("; ")})
    pairs = pairs.explode(["kind", "field"])
    labels = pairs["kind"].str.replace("_", " ") + " (" + pairs["field"] + ")"
    counts = labels.value_counts().head(TOP_REASONS)
    return [(str(k), int(v)) for k, v in counts.items()]


def _table_report(table: ValidatedTable) -> TableReport:
    return TableReport(
        table=table.name,
        files=table.files,
        read=table.read,
        accepted=len(table.data),
        rejected=len(table.rejects),
        top_reasons=_top_reasons(table.rejects),
        dropped_columns=table.dropped_columns,
        attribute_columns=table.attribute_columns,
    )


def load_crm(
    path: Path | str,
    mapping_path: Path | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> LoadResult:
    """Load a CRM folder (or one table file, or a folder written by ``write_validated``), or
    the tables of a database given by its SQLAlchemy URL (``postgresql://...``,
    ``sqlite:///crm.db``): database rows go through the same validation as files."""
    started = time.perf_counter()
    settings = settings or load_settings()
    if is_database_url(path):
        mapping = load_mapping(mapping_path)
        where = display_url(str(path))
        secret = _hash_secret(mapping, settings, mapping_path or where)
        raws = _read_database(str(path), mapping, settings, progress)
        base, source = Path("."), where
    else:
        path = Path(path)
        if path.is_dir() and (path / MARKER_FILE).is_file():
            _notify(progress, "Reading validated tables", None)
            return read_validated(path)
        if not path.exists():
            raise RadarInputError("no such file or folder", path)
        mapping = load_mapping(mapping_path)
        secret = _hash_secret(mapping, settings, mapping_path or path)
        _no_database_options(mapping, path)
        files = discover(path, mapping) if path.is_dir() else _single_file(path, mapping)
        base, source = (path if path.is_dir() else path.parent), str(path)
        raws = _read_all(files, mapping, progress)
    _notify(progress, "Validating against the data contract", 0.45)
    region = mapping.default_phone_region or settings.identity.default_phone_region
    parses = PhoneParses(phone_workers(settings.identity.phone_workers))
    phones: dict[str, Callable] = {}
    validated = validate_tables(raws, mapping, base, on_table=_phone_starter(phones, region, parses))
    del raws  # the files as read: validation keeps what it needs (raw values of rejects)
    _notify(progress, "Linking identities", 0.75)
    tables = {name: table.data for name, table in validated.items()}
    tables, identity = unify(tables, settings.identity, region, parses, phones)
    tables = _to_text(tables)
    if "leads" in tables:
        # From the linked e-mails and phones (E.164 where valid), before any is hashed.
        tables["leads"] = add_contact_quality(tables["leads"], parses=parses)
    del parses  # the numbers parsed with their country code: not needed past the contact kinds
    tables = _hash_columns(tables, mapping, secret)
    parts = [t.rejects for t in validated.values() if not t.rejects.empty]
    rejects = pd.concat(parts, ignore_index=True) if parts else empty_rejects()
    report = IngestReport(
        source=source,
        mapping=str(mapping_path) if mapping_path else None,
        tables=_table_reports(validated, tables),
        identity=identity if any(n in tables for n in PERSON_TABLES) else None,
        seconds=time.perf_counter() - started,
    )
    _notify(progress, "Loaded", 1.0)
    return LoadResult(
        data=CRMData(**tables),
        rejects=rejects[list(REJECT_COLUMNS)],
        report=report,
        origins={name: t.origins for name, t in validated.items()},
    )


def _phone_starter(phones: dict[str, Callable], region: str, parses: PhoneParses) -> Callable[[ValidatedTable], None]:
    """For validation: start parsing each validated person table's phone numbers.

    They are the slowest part of linking; other processes parse one table's while this
    one validates the next, and :func:`unify` picks them up from ``phones``.
    """

    def start(table: ValidatedTable) -> None:
        if table.name in PERSON_TABLES:
            phones[table.name] = start_phones(table.data, region, parses)

    return start


def _no_database_options(mapping: Mapping, folder: Path) -> None:
    """A mapping's ``table:`` or ``query:`` only means something for a database source."""
    for name, options in mapping.tables.items():
        if options.table or options.query:
            which = "query" if options.query else "table"
            raise RadarInputError(
                f"the mapping gives a database {which} for {name}, but the source is a file or folder: "
                "give a database URL (postgresql://..., sqlite:///crm.db) or use file: instead", folder)


def _read_database(url: str, mapping: Mapping, settings: Settings, progress: Progress | None) -> dict[str, list[RawTable]]:
    """Every table the database has for Radar, each read in chunks into a raw text table."""
    from features.database import discover_tables, open_engine, read_source

    where = display_url(url)
    engine = open_engine(url)
    try:
        sources = discover_tables(engine, mapping, where)
        raws: dict[str, list[RawTable]] = {}
        for done, (name, source) in enumerate(sources.items()):
            def step(message: str, fraction: float | None, done: int = done) -> None:
                # Reading is the first 40 % of the load, as for files.
                _notify(progress, message, 0.4 * (done + (fraction or 0.0)) / len(sources))

            step(f"Reading {source.label} from the database", None)
            label = source.label if source.label.startswith("query") else f"table {source.label}"
            raws[name] = [read_source(engine, source, f"{where}, {label}", settings.database.chunk_rows, step)]
    finally:
        engine.dispose()
    return raws


def _table_reports(validated: dict[str, ValidatedTable], tables: dict[str, pd.DataFrame]) -> dict[str, TableReport]:
    reports = {name: _table_report(t) for name, t in validated.items()}
    if "orders" in reports:
        reports["orders"].warnings += orders_before_first_lead(tables, validated["orders"].origins)
    return reports


def orders_before_first_lead(tables: dict[str, pd.DataFrame], origins: pd.DataFrame) -> list[str]:
    """A warning when orders are dated (by day) before their person's first lead was created.

    Radar keeps such orders: a person exists from their first record in any table, so an
    order before the lead is a purchase by someone who became a lead later (a lead record
    made for an existing customer, shop orders imported into a newer CRM). That lead is a
    lead of a customer, which lead scoring leaves out. The warning names a few rows, as the
    dates may instead be wrong (day and month swapped, a default date).
    """
    orders, leads = tables.get("orders"), tables.get("leads")
    if orders is None or leads is None or orders.empty or leads.empty:
        return []
    first_lead = leads.groupby("person_id")["created_at"].min().dt.normalize()
    since = orders["person_id"].map(first_lead)
    early = (orders["timestamp"].dt.normalize() < since).fillna(False).to_numpy(dtype=bool)
    if not early.any():
        return []
    where = origins[early].head(3)
    rows = ", ".join(f"{f} row {n}" for f, n in zip(where["source_file"], where["row_number"]))
    return [f"{int(early.sum()):,} order(s) dated before their person's first lead was created "
            f"(kept: the person existed from their first record), e.g. {rows}"]


def _to_text(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Identity hands back object columns; store text the running pandas' default way."""
    out = {}
    for name, frame in tables.items():
        columns = [c for c in ("email", "phone", "person_id") if c in frame.columns]
        out[name] = frame.assign(**{c: text_output(frame[c]) for c in columns}) if columns else frame
    return out


# --- The validated folder --------------------------------------------------------------------


def write_validated(result: LoadResult, out_dir: Path) -> Path:
    """Write tables (Parquet), rejects.csv, report.json and the marker; return ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # The marker goes last, so a folder whose writing was interrupted is never taken as valid.
    (out_dir / MARKER_FILE).unlink(missing_ok=True)
    tables = result.data.tables()
    for name, frame in tables.items():
        write_parquet(frame, out_dir / f"{name}.parquet")
        if name in result.origins:
            write_parquet(result.origins[name], out_dir / "origins" / f"{name}.parquet")
    write_csv(result.rejects, out_dir / "rejects.csv")
    write_text(json.dumps(result.report.to_dict(), indent=2, default=str), out_dir / "report.json")
    marker = {"format": FORMAT_VERSION, "tables": sorted(tables)}
    write_text(json.dumps(marker), out_dir / MARKER_FILE)
    return out_dir


def read_validated(folder: Path, columns: Callable[[str, list[str]], list[str]] | None = None) -> LoadResult:
    """Read a folder written by :func:`write_validated` (no validation: it was done).

    ``columns``, given a table's name and its stored column names, returns the ones to
    read (e.g. :func:`features.pipeline.input_columns`: only what the features use, which
    at 1 M people leaves out ~1.7 GB of contact keys and text); by default all are read.
    """
    folder = Path(folder)
    try:
        marker = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
        report = IngestReport.from_dict(json.loads((folder / "report.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise RadarInputError(f"damaged validated folder ({err.__class__.__name__}); validate again", folder) from err
    if marker.get("format") != FORMAT_VERSION:
        raise RadarInputError("validated with another Radar version; validate again", folder)
    tables, origins = {}, {}
    for name in marker["tables"]:
        path = folder / f"{name}.parquet"
        tables[name] = _read_parquet_text(path, None if columns is None else columns(name, _stored_columns(path)))
        origin = folder / "origins" / f"{name}.parquet"
        if origin.is_file():
            origins[name] = pd.read_parquet(origin)
    rejects = pd.read_csv(folder / "rejects.csv", dtype=str, keep_default_na=False)
    if not rejects.empty:
        rejects["row_number"] = rejects["row_number"].astype("int64")
    return LoadResult(CRMData(**tables), rejects if not rejects.empty else empty_rejects(), report, origins)


def _stored_columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except (OSError, ValueError) as err:
        raise RadarInputError(f"damaged validated table ({err.__class__.__name__}); validate again", path) from err


def _read_parquet_text(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a stored table (all its columns, or the given ones) with text straight into the
    contract's text dtype (no objects)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if TEXT_OUTPUT_DTYPE is object:
        return pd.read_parquet(path, columns=columns)
    mapping = {pa.string(): TEXT_OUTPUT_DTYPE, pa.large_string(): TEXT_OUTPUT_DTYPE}
    return pq.read_table(path, columns=columns).to_pandas(types_mapper=mapping.get)


# --- Printing --------------------------------------------------------------------------------


def report_tables(report: IngestReport) -> list:
    """Rich tables for the CLI: per-table counts, top reject reasons, identity linking."""
    from rich.table import Table

    counts = Table(title=f"Validation of {report.source}", title_justify="left")
    for header in ("table", "source", "read", "accepted", "rejected", "rejected %", "dropped columns"):
        counts.add_column(header, justify="right" if header in ("read", "accepted", "rejected", "rejected %") else "left")
    for t in report.tables.values():
        share = f"{100 * t.rejected / t.read:.2f}" if t.read else "-"
        counts.add_row(t.table, ", ".join(t.files), f"{t.read:,}", f"{t.accepted:,}", f"{t.rejected:,}", share,
                       ", ".join(t.dropped_columns) or "-")
    out = [counts]
    reasons = Table(title="Top reject reasons", title_justify="left")
    for header in ("table", "reason (field)", "rows"):
        reasons.add_column(header, justify="right" if header == "rows" else "left")
    for t in report.tables.values():
        for label, n in t.top_reasons:
            reasons.add_row(t.table, label, f"{n:,}")
    if reasons.row_count:
        out.append(reasons)
    notes = Table(title="Warnings (rows kept)", title_justify="left")
    notes.add_column("table")
    notes.add_column("warning")
    for t in report.tables.values():
        for warning in t.warnings:
            notes.add_row(t.table, warning)
    if notes.row_count:
        out.append(notes)
    if report.identity is not None:
        out.append(_identity_table(report.identity))
    return out


def _identity_table(identity: IdentityReport):
    from rich.table import Table

    table = Table(title="Identity unification", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("records", f"{identity.records:,}")
    table.add_row("persons", f"{identity.persons:,}")
    for kind, n in identity.merged_via.items():
        table.add_row(f"records linked through {kind}", f"{n:,}")
    table.add_row("shared keys ignored", f"{identity.shared_keys_ignored:,}")
    for key in identity.shared_keys[:5]:
        table.add_row(f"  shared {key['kind']} {key['key']}", f"{key['ids']} ids")
    table.add_row("invalid phones (not linked)", f"{identity.invalid_phones:,}")
    table.add_row("invalid e-mails (not linked)", f"{identity.invalid_emails:,}")
    return table
