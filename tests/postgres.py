"""A real PostgreSQL server for the tests: a throwaway cluster made with ``initdb`` in a
temporary folder, started on a free loopback port, and stopped (and deleted) at the end.

Debian's ``postgresql`` package puts its binaries in ``/usr/lib/postgresql/<version>/bin``
(``scripts/ensure-system-packages`` installs it). ``initdb`` and ``postgres`` refuse to run
as root, so when the tests run as root the cluster belongs to the ``postgres`` system user
and the commands run as that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from servers import free_port

SYSTEM_USER = "postgres"
DATABASE = "radar_test"
START_TIMEOUT_SECONDS = 60


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder (None when there is none)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: _version(p.parent.parent.name))
    if found:
        return found[-1].parent
    on_path = shutil.which("postgres")
    return Path(on_path).parent if on_path else None


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


@dataclass
class PostgresServer:
    """A running cluster: its SQLAlchemy URL (psycopg 3) and where it lives."""

    host: str
    port: int
    user: str
    folder: Path
    binaries: Path | None = None
    run_as: str | None = None
    process: subprocess.Popen | None = None

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """A fresh database on this server (empty, or a copy of ``template``, which nobody
        may be connected to); returns its URL."""
        import sqlalchemy as sa

        engine = sa.create_engine(self.url("postgres").replace("postgresql://", "postgresql+psycopg://"),
                                  isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        engine.dispose()
        return self.url(name)

    def start(self) -> None:
        """Start the cluster (again, after :meth:`stop`) on the same port and data."""
        assert self.binaries is not None and (self.process is None or self.process.poll() is not None)
        # fsync off and a small shared memory: a test cluster, thrown away at the end.
        command = [str(self.binaries / "postgres"), "-D", str(self.folder / "data"), "-k", str(self.folder),
                   "-p", str(self.port), "-h", self.host, "-c", "fsync=off", "-c", "synchronous_commit=off",
                   "-c", "full_page_writes=off", "-c", "shared_buffers=32MB"]
        log = self.folder / "server.log"
        with open(log, "ab") as handle:
            self.process = subprocess.Popen(_as_user(command, self.run_as), stdout=handle, stderr=subprocess.STDOUT)
        _wait_ready(self.binaries, self, self.process, log)

    def stop(self) -> None:
        """Stop the cluster (open sessions are ended), keeping its data."""
        if self.process is not None and self.binaries is not None:
            _stop(self.binaries, self.folder / "data", self.run_as, self.process)


def _as_user(command: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *command] if user else command


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """initdb, start, yield, stop. Raises RuntimeError when the binaries are missing."""
    binaries = postgres_bin()
    if binaries is None:
        raise RuntimeError("no PostgreSQL binaries (install Debian's postgresql package)")
    as_root = os.geteuid() == 0
    run_as = SYSTEM_USER if as_root else None
    folder = Path(tempfile.mkdtemp(prefix="radar-pg-"))
    data = folder / "data"
    if as_root:
        account = pwd.getpwnam(SYSTEM_USER)
        os.chown(folder, account.pw_uid, account.pw_gid)
    os.chmod(folder, 0o700)
    user = run_as or pwd.getpwuid(os.geteuid()).pw_name
    server = PostgresServer("127.0.0.1", free_port(), user, folder, binaries, run_as)
    try:
        subprocess.run(
            _as_user([str(binaries / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8",
                      "--locale=C", "--no-sync"], run_as),
            check=True, capture_output=True, timeout=120,
        )
        server.start()
        server.create_database(DATABASE)
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _stop(binaries: Path, data: Path, run_as: str | None, process: subprocess.Popen) -> None:
    """Fast shutdown (open sessions are ended) by ``pg_ctl``, which signals the postmaster
    itself rather than the ``runuser`` wrapper around it."""
    if process.poll() is None:
        subprocess.run(_as_user([str(binaries / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w"], run_as),
                       capture_output=True, timeout=60)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _wait_ready(binaries: Path, server: PostgresServer, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"PostgreSQL stopped at start: {log.read_text(errors='replace')[-2000:]}")
        ready = subprocess.run([str(binaries / "pg_isready"), "-h", server.host, "-p", str(server.port)],
                               capture_output=True)
        if ready.returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"PostgreSQL not ready after {START_TIMEOUT_SECONDS} s: {log.read_text(errors='replace')[-2000:]}")


WORLD_TABLES: tuple[str, ...] = ("leads", "interactions", "orders", "deals", "spend")


def copy_world(url: str, folder: Path, tables: tuple[str, ...] = WORLD_TABLES, rename: dict[str, str] | None = None) -> None:
    """Load a demo world's CSV files into the database at ``url``, one text column per CSV
    column and NULL for an empty cell, in file order: the CRM as a database would hold it.
    PostgreSQL gets the rows by COPY, other databases by batched INSERTs."""
    import pandas as pd
    import sqlalchemy as sa

    from features.database import database_url

    engine = sa.create_engine(database_url(url))
    try:
        for name in tables:
            frame = pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False)
            target = (rename or {}).get(name, name)
            columns = [sa.Column(c, sa.Text) for c in frame.columns]
            metadata = sa.MetaData()
            sa.Table(target, metadata, *columns)  # registered on metadata, created below
            metadata.drop_all(engine)
            metadata.create_all(engine)
            rows = [tuple(None if v == "" else v for v in row) for row in frame.itertuples(index=False, name=None)]
            if engine.dialect.name == "duckdb":
                # DuckDB takes a whole frame at once (its INSERTs are slow one by one).
                nulls = frame.astype(object).where(frame != "", None)
                raw = engine.raw_connection()
                try:
                    raw.driver_connection.register("incoming", nulls)
                    raw.driver_connection.execute(f'INSERT INTO "{target}" SELECT * FROM incoming')
                    raw.commit()
                finally:
                    raw.close()
            elif engine.dialect.name == "postgresql":
                quoted = ", ".join(f'"{c}"' for c in frame.columns)
                raw = engine.raw_connection()
                try:
                    with raw.cursor() as cursor, cursor.copy(f'COPY "{target}" ({quoted}) FROM STDIN') as copy:
                        for row in rows:
                            copy.write_row(row)
                    raw.commit()
                finally:
                    raw.close()
            else:
                with engine.begin() as conn:
                    conn.connection.cursor().executemany(
                        f'INSERT INTO "{target}" VALUES ({", ".join("?" * len(frame.columns))})', rows)
    finally:
        engine.dispose()
