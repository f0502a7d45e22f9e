"""Reading the CRM tables from a database: a SQLAlchemy URL wherever a folder is accepted.

Each table becomes the same :class:`~features.io.RawTable` a CSV file gives: every column
as text (NULL is a missing cell), the database's column names as the header. Validation,
the mapping (column names, value words, missing markers, date formats), rejects and
identity linking then run exactly as for files. Rows are fetched a batch at a time through
a server-side cursor (``stream_results``), and each batch is turned into Arrow text at
once, so only one batch is ever held as Python objects.

The driver for PostgreSQL is psycopg 3 (``postgresql+psycopg://``; a plain
``postgresql://`` or ``postgres://`` URL is read as that): it is the maintained PostgreSQL
adapter, it ships binary wheels (``psycopg[binary]``, no compiler or libpq needed), and
SQLAlchemy streams its results through named server-side cursors, so a table larger than
memory is read in chunks. SQLite needs nothing; DuckDB files work with ``duckdb-engine``
installed (``duckdb:///crm.duckdb``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from features.errors import RadarInputError
from features.io import TEXT_DTYPE, RawTable
from features.mapping import Mapping

#: ``scheme://`` (``postgresql://``, ``sqlite:///``, ``postgresql+psycopg://``...).
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
#: Drivers that create an empty database when the file is missing: Radar must not.
_FILE_BACKENDS = ("sqlite", "duckdb")
_FAST_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer, pa.types.is_floating,
               pa.types.is_decimal, pa.types.is_boolean)
_PROBLEM_CHARS = 300

#: Called with a message and a fraction of this table read (None when unknown).
TableProgress = Callable[[str, "float | None"], None]


def is_database_url(source: object) -> bool:
    """Whether ``source`` is a database URL (text with a scheme) rather than a file or folder."""
    return isinstance(source, str) and bool(_URL.match(source.strip())) and not source.lower().startswith("file:")


def database_url(text: str):
    """The SQLAlchemy URL for ``text``; PostgreSQL goes through psycopg 3."""
    import sqlalchemy as sa
    from sqlalchemy.exc import ArgumentError

    try:
        url = sa.make_url(text.strip())
    except ArgumentError as err:
        raise RadarInputError("not a database URL (expected e.g. postgresql://user@host:5432/crm)") from err
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def shown(url) -> str:
    """The URL as Radar prints and stores it: never with its password."""
    return url.render_as_string(hide_password=True)


def display_url(text: str) -> str:
    """``text`` as the user wrote it (before the driver is filled in), password hidden."""
    import sqlalchemy as sa
    from sqlalchemy.exc import ArgumentError

    try:
        return shown(sa.make_url(text.strip()))
    except ArgumentError as err:
        raise RadarInputError("not a database URL (expected e.g. postgresql://user@host:5432/crm)") from err


def open_engine(text: str):
    """An engine for the database at ``text``; a clear error when it cannot be reached."""
    import sqlalchemy as sa
    from sqlalchemy.exc import NoSuchModuleError, SQLAlchemyError

    url = database_url(text)
    where = display_url(text)
    backend = url.get_backend_name()
    if backend in _FILE_BACKENDS and url.database not in (None, "", ":memory:"):
        file = Path(url.database)
        if not file.is_file():
            raise RadarInputError(f"no such {backend} database file: {file}", where)
    try:
        engine = sa.create_engine(url)
    except NoSuchModuleError as err:
        hint = " (pip install duckdb-engine)" if backend == "duckdb" else ""
        raise RadarInputError(f"no SQLAlchemy driver for {url.drivername}{hint}", where) from err
    except ModuleNotFoundError as err:
        raise RadarInputError(f"the driver for {url.drivername} is not installed ({err.name})", where) from err
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as err:
        engine.dispose()
        raise RadarInputError(f"cannot connect to the database: {problem(err)}", where) from err
    return engine


def problem(err: Exception) -> str:
    """The driver's own first line about what went wrong (never the statement or the URL)."""
    original = getattr(err, "orig", None) or err
    lines = [line.strip() for line in str(original).strip().splitlines() if line.strip()]
    text = lines[0] if lines else original.__class__.__name__
    return text[:_PROBLEM_CHARS]


# --- Finding the tables ---------------------------------------------------------------------


@dataclass
class DatabaseSource:
    """Where one contract table's rows come from."""

    table: str
    #: How rejects and the report name it: the database table, or "query for <table>".
    label: str
    statement: object
    #: A statement counting the rows (for the progress bar); None for a query.
    count: object | None = None
    #: Database columns that identify a row (the primary key), named in rejects.
    key_columns: list[str] = field(default_factory=list)


def _split_name(name: str) -> tuple[str | None, str]:
    schema, _, table = name.strip().rpartition(".")
    return (schema or None), table


def _table_source(engine, table: str, name: str, where: str) -> DatabaseSource:
    import sqlalchemy as sa
    from sqlalchemy.exc import SQLAlchemyError

    schema, bare = _split_name(name)
    inspector = sa.inspect(engine)
    if not inspector.has_table(bare, schema=schema):
        raise RadarInputError(f"no table or view {name!r} (for {table}) in the database", where)
    clause = sa.table(bare, schema=schema)
    try:
        keys = list(inspector.get_pk_constraint(bare, schema=schema).get("constrained_columns") or [])
    except (NotImplementedError, SQLAlchemyError):
        # Views on some backends; DuckDB answers PostgreSQL's catalogue query only in part.
        keys = []
    statement = sa.select(sa.text("*")).select_from(clause)
    if keys:
        # The primary key's order, so that a re-run reads the rows in the same order (and
        # "first occurrence" means the same row each time).
        statement = statement.order_by(*(sa.column(k) for k in keys))
    count = sa.select(sa.func.count()).select_from(clause)
    return DatabaseSource(table, name, statement, count, keys)


def _query_source(table: str, query: str) -> DatabaseSource:
    import sqlalchemy as sa

    # The query is the user's SQL as written: a colon (a time, a PostgreSQL cast) is not a
    # bound parameter here.
    sql = query.strip().rstrip(";").replace(":", r"\:")
    return DatabaseSource(table, f"query for {table}", sa.text(sql))


def discover_tables(engine, mapping: Mapping, where: str) -> dict[str, DatabaseSource]:
    """The source of each table: the mapping's ``table:`` or ``query:``, else the table (or
    view) named like Radar's (``leads``...), matched case-insensitively."""
    import sqlalchemy as sa

    from features.contract import TABLES

    inspector = sa.inspect(engine)
    present = list(inspector.get_table_names()) + list(inspector.get_view_names())
    found: dict[str, DatabaseSource] = {}
    for name in TABLES:
        options = mapping.table(name)
        if options.file:
            raise RadarInputError(
                f"the mapping names a file for {name} ({options.file!r}) but the source is a database: "
                "give table: or query: instead", where)
        if options.query:
            found[name] = _query_source(name, options.query)
            continue
        if options.table:
            found[name] = _table_source(engine, name, options.table, where)
            continue
        matches = [t for t in present if t.casefold() == name]
        if len(matches) > 1:
            raise RadarInputError(
                f"several tables for {name} ({', '.join(matches)}): name one in the mapping file (table:)", where)
        if matches:
            found[name] = _table_source(engine, name, matches[0], where)
    if not found:
        expected = ", ".join(TABLES)
        raise RadarInputError(
            f"no CRM tables found in the database (expected tables named {expected}, or a mapping file "
            "with table: or query: for each)", where)
    return found


# --- Reading --------------------------------------------------------------------------------


def _cell_text(value: object) -> str | None:
    """One database value as the text a CSV export would hold."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def text_column(values: tuple | list) -> pa.Array:
    """A column of database values as Arrow text (None stays missing).

    Text, numbers and booleans are converted by Arrow in one go; dates, times and anything
    else (UUIDs, JSON, mixed types in a SQLite column) go value by value, dates in ISO 8601.
    """
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        array = None
    if array is not None:
        if pa.types.is_null(array.type):
            return pa.nulls(len(values), pa.string())
        if any(check(array.type) for check in _FAST_TYPES):
            return array.cast(pa.string())
    return pa.array([_cell_text(v) for v in values], type=pa.string())


def _check_columns(names: list[str], where: str) -> None:
    if not names:
        raise RadarInputError("the table or query has no columns", where)
    seen: dict[str, str] = {}
    for name in names:
        if not str(name).strip():
            raise RadarInputError("a column has no name (give every column of the query a name)", where)
        key = str(name).strip().casefold()
        if key in seen:
            raise RadarInputError(f"duplicated column name {name!r} (give the query's columns distinct names)",
                                  where)
        seen[key] = name


def read_source(engine, source: DatabaseSource, where: str, chunk_rows: int,
                progress: TableProgress | None = None) -> RawTable:
    """All rows of one source as a raw table of text, read ``chunk_rows`` at a time."""
    from sqlalchemy.exc import SQLAlchemyError

    batches: list[pa.RecordBatch] = []
    read = 0
    try:
        with engine.connect() as conn:
            total = conn.execute(source.count).scalar() if source.count is not None else None
            streaming = conn.execution_options(stream_results=True, yield_per=chunk_rows)
            result = streaming.execute(source.statement)
            names = [str(k).strip() for k in result.keys()]
            _check_columns(names, where)
            for rows in result.partitions():
                columns = list(zip(*rows)) if rows else [() for _ in names]
                batches.append(pa.record_batch([text_column(c) for c in columns], names=names))
                read += len(rows)
                if progress is not None:
                    fraction = min(1.0, read / total) if total else None
                    progress(f"Reading {source.label} from the database ({read:,} rows)", fraction)
    except SQLAlchemyError as err:
        raise RadarInputError(f"cannot read {source.label}: {problem(err)}", where) from err
    schema = pa.schema([(n, pa.string()) for n in names])
    table = pa.Table.from_batches(batches, schema=schema)
    # The CSV reader's text dtype, straight from Arrow (no Python strings on the way).
    frame = table.to_pandas(types_mapper={pa.string(): pd.api.types.pandas_dtype(TEXT_DTYPE)}.get)
    return RawTable(Path(source.label), frame, pd.Series(np.nan, index=frame.index, dtype=object),
                    source=source.label, where=where, key_columns=source.key_columns)
