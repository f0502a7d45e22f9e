"""Fingerprints of what ``load_crm`` returns, pinned so that making it faster cannot change it.

    python tests/ingest_pins.py           # rewrite tests/fixtures/ingest_pins.json
    python tests/ingest_pins.py --world   # rewrite the committed demo world, then the pins

A fingerprint holds, per case, every output frame's shape, column names, dtypes and a digest
of each column's values in row order (the tables, their origins, the rejects), and the
whole report except its timing. ``tests/test_ingest_pins.py`` loads every case again and
compares column by column, so a difference names the case, the frame and the column.

The pins are written by the code as it stands; rewrite them only when a change to what
``load_crm`` returns is meant (and say so in the commit), never to make a speed-up pass.

The cases: a small demo world committed as Parquet (``tests/fixtures/ingest_world``: 400
people, 3 % broken rows, shared switchboard keys, e-mails and phones written many ways);
the same world as CSV (written at test time, so the text path is pinned too); the
hand-made broken and mapped fixtures; and the bad-files cases that load.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

TESTS = Path(__file__).resolve().parent
WORLD = TESTS / "fixtures" / "ingest_world"
PINS = TESTS / "fixtures" / "ingest_pins.json"
#: How the committed world was generated (``--world`` makes it again).
WORLD_CUSTOMERS, WORLD_SEED, WORLD_BROKEN_SHARE = 400, 11, 0.03
#: Bad-files cases that load (the others are refused, which other tests check).
BAD_FILE_CASES: tuple[str, ...] = (
    "cp1252", "duplicate_ids", "header_only", "mixed_dates", "non_finite_numbers", "orders_before_customer", "semicolon",
    "stray_quote", "truncated_mid_quote", "truncated_mid_row", "utf16_bom", "utf16_no_bom", "utf8_bom",
)


@dataclass(frozen=True)
class Case:
    """One input to load: a folder (made by ``prepare`` in a work folder when given) and its mapping."""

    name: str
    folder: Path | None = None
    mapping: Path | None = None
    prepare: Callable[[Path], Path] | None = None


def world_as_csv(work: Path) -> Path:
    """The committed world written as CSV files (quoted text, blank for missing)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    out = work / "ingest_world_csv"
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(WORLD.glob("*.parquet")):
        pacsv.write_csv(pq.read_table(path), out / f"{path.stem}.csv")
    return out


def cases() -> list[Case]:
    fixtures, bad = TESTS / "fixtures", TESTS / "bad_files"
    return [
        Case("demo_world_parquet", WORLD),
        Case("demo_world_csv", prepare=world_as_csv),
        Case("broken", fixtures / "broken"),
        Case("mapped", fixtures / "mapped", fixtures / "mapped" / "mapping.yaml"),
        *(Case(f"bad_files/{name}", bad / name) for name in BAD_FILE_CASES),
    ]


# --- Fingerprints ----------------------------------------------------------------------------


def _python_digest(values: pd.Series) -> str:
    """sha256 of a column of mixed Python values (missing → None, numbers as their repr)."""

    def cell(v: object) -> object:
        if v is None or v is pd.NaT or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            return None
        if isinstance(v, (str, bool, int)):
            return v
        if isinstance(v, (float, np.floating)):
            return repr(float(v))
        if isinstance(v, (np.integer, np.bool_)):
            return v.item()
        return repr(v)

    text = json.dumps([cell(v) for v in values.astype(object)], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def column_digest(values: pd.Series) -> str:
    """sha256 of a column's values in order, independent of pandas' own hashing: text as
    each value's length (-1: missing) and its UTF-8 bytes, numbers and times as their 64-bit
    values (one NaN, NaT as the smallest integer). Vectorised: the 1 M world has 25 M rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    digest = hashlib.sha256()
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        digest.update(b"datetime" + str(values.dtype).encode())
        digest.update(values.to_numpy().view(np.int64).tobytes())
    elif pd.api.types.is_float_dtype(values.dtype):
        numbers = values.to_numpy(dtype=np.float64)
        digest.update(b"float" + np.where(np.isnan(numbers), np.nan, numbers).tobytes())
    elif pd.api.types.is_integer_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        digest.update(b"int" + values.to_numpy(dtype=np.int64).tobytes())
    else:
        try:
            text = pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return _python_digest(values)
        if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type) or pa.types.is_null(text.type)):
            return _python_digest(values)
        text = text.cast(pa.large_string())
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks()
        lengths = pc.binary_length(text).to_numpy(zero_copy_only=False)
        lengths = np.where(pd.isna(lengths), -1, lengths).astype(np.int64)
        filled = pc.fill_null(text, "")
        offsets = np.frombuffer(filled.buffers()[1], dtype=np.int64)[filled.offset:filled.offset + len(filled) + 1]
        data = filled.buffers()[2]
        digest.update(b"text" + lengths.tobytes())
        if data is not None and len(offsets):
            digest.update(memoryview(data)[offsets[0]:offsets[-1]])
    return digest.hexdigest()


def frame_print(frame: pd.DataFrame) -> dict[str, object]:
    return {
        "rows": len(frame),
        "columns": [str(c) for c in frame.columns],
        "dtypes": {str(c): str(frame[c].dtype) for c in frame.columns},
        "digests": {str(c): column_digest(frame[c]) for c in frame.columns},
    }


def fingerprint(result) -> dict[str, object]:
    """Everything ``load_crm`` returned, as comparable JSON (the report without its seconds)."""
    report = result.report.to_dict()
    report.pop("seconds", None)
    return {
        "tables": {name: frame_print(frame) for name, frame in result.data.tables().items()},
        "origins": {name: frame_print(frame) for name, frame in result.origins.items()},
        "rejects": frame_print(result.rejects),
        "report": json.loads(json.dumps(report, default=str)),
    }


def load_case(case: Case, work: Path):
    from features.ingest import load_crm
    from radar.config import Settings

    folder = case.prepare(work) if case.prepare is not None else case.folder
    result = load_crm(folder, mapping_path=case.mapping, settings=Settings())
    # The source and mapping are where the case was loaded from: only names relative to the
    # tests are the same everywhere.
    result.report.source = case.name
    if case.mapping is not None:
        result.report.mapping = str(case.mapping.relative_to(TESTS))
    return result


# --- Writing ---------------------------------------------------------------------------------


def write_world() -> None:
    import shutil

    from radar.demo import generate_world

    shutil.rmtree(WORLD, ignore_errors=True)
    generate_world(WORLD_CUSTOMERS, WORLD_SEED, WORLD, file_format="parquet", broken_share=WORLD_BROKEN_SHARE)
    # The truth tables are the generator's answers, not CRM input: load_crm never reads them.
    shutil.rmtree(WORLD / "truth")


def write_pins() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        pins = {case.name: fingerprint(load_case(case, Path(work))) for case in cases()}
    PINS.write_text(json.dumps(pins, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {PINS} ({len(pins)} cases)")


if __name__ == "__main__":
    sys.path.insert(0, str(TESTS.parent))
    if "--world" in sys.argv[1:]:
        write_world()
    write_pins()
