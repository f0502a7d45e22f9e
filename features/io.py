"""Reading one table file (CSV, TSV, Parquet, Excel) as it is, for validation to judge.

CSV cells are read as text (nothing is guessed or converted here) so that validation can
report each cell that fails to parse with its row number. Encoding and delimiter are
detected unless the mapping gives them. A file that cannot be read at all raises one
:class:`RadarInputError` naming the file and the problem.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import RadarInputError

CSV_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz")
PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")
EXCEL_SUFFIXES: tuple[str, ...] = (".xlsx",)
READABLE_SUFFIXES: tuple[str, ...] = CSV_SUFFIXES + PARQUET_SUFFIXES + EXCEL_SUFFIXES

# Arrow-backed text: trimming and matching millions of cells is several times faster than
# on Python objects, and it is the same on pandas 2 and 3.
TEXT_DTYPE = "string[pyarrow]"
DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
# Tried in order: exports are UTF-8 nowadays; Windows tools still write cp1252 ("Latin-1"),
# and latin-1 itself decodes any byte, so it is the last resort.
FALLBACK_ENCODINGS: tuple[str, ...] = ("utf-8", "cp1252", "latin-1")
_SNIFF_BYTES = 64 * 1024
_LOOKS_LIKE_VALUE = re.compile(
    r"^\s*([+-]?\d+([.,]\d+)?|\S+@\S+\.\S+|\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}.*)\s*$"
)


@dataclass
class RawTable:
    """One file as read, before any mapping or type conversion."""

    path: Path
    #: Text cells for CSV/Excel (missing cells are ""), native types for Parquet.
    frame: pd.DataFrame
    #: Per row (aligned with ``frame``): why the row could not be split into the header's
    #: fields, else NaN. Such rows are kept so that validation rejects them with a reason.
    parse_errors: pd.Series
    encoding: str | None = None
    delimiter: str | None = None
    #: Per row: cells beyond the header's width (a list), else NaN; kept for the rejects.
    extra_fields: pd.Series | None = None


def is_readable(path: Path) -> bool:
    """Whether ``path`` has a suffix Radar can read."""
    name = path.name.lower()
    return any(name.endswith(s) for s in READABLE_SUFFIXES)


def read_table(
    path: Path, *, encoding: str | None = None, delimiter: str | None = None
) -> RawTable:
    """Read one table file; raise :class:`RadarInputError` if it cannot be read at all."""
    path = Path(path)
    if not path.is_file():
        raise RadarInputError("file not found", path)
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return _read_parquet(path)
    if name.endswith(EXCEL_SUFFIXES):
        return _read_excel(path)
    return _read_csv(path, encoding, delimiter)


# --- CSV ---------------------------------------------------------------------------------


def _open_bytes(path: Path) -> bytes:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            return handle.read(_SNIFF_BYTES)
    except OSError as err:
        raise RadarInputError(f"cannot open the file ({err.__class__.__name__})", path) from err


def _detect_encoding(sample: bytes, path: Path) -> str:
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for encoding in FALLBACK_ENCODINGS:
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            # final=False: the sample may end in the middle of a multi-byte character.
            decoder.decode(sample, final=False)
            return encoding
        except UnicodeDecodeError:
            continue
    raise RadarInputError("cannot decode the file as UTF-8 or Latin-1 text", path)


def _decode_sample(sample: bytes, encoding: str, path: Path) -> str:
    try:
        return codecs.getincrementaldecoder(encoding)(errors="strict").decode(sample, final=False)
    except (UnicodeDecodeError, LookupError) as err:
        raise RadarInputError(f"cannot decode the file as {encoding}", path) from err


def _detect_delimiter(first_line: str) -> str:
    counts = [first_line.count(d) for d in DELIMITERS]
    best = int(np.argmax(counts))
    return DELIMITERS[best] if counts[best] > 0 else ","


def _header_cells(text: str, delimiter: str) -> list[str]:
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    for row in reader:
        if any(cell.strip() for cell in row):
            return [cell.strip() for cell in row]
    return []


def _check_header(cells: list[str], path: Path) -> None:
    if not cells:
        raise RadarInputError("the file is empty (no header row)", path)
    looks_like_data = [c for c in cells if c and _LOOKS_LIKE_VALUE.match(c)]
    if looks_like_data:
        raise RadarInputError(
            "the first row looks like data, not column names: the file needs a header row",
            path,
        )
    seen: dict[str, int] = {}
    for position, cell in enumerate(cells, start=1):
        if not cell:
            continue
        key = cell.casefold()
        if key in seen:
            raise RadarInputError(
                f"duplicated column name {cell!r} (columns {seen[key]} and {position})", path
            )
        seen[key] = position


def _read_csv(path: Path, encoding: str | None, delimiter: str | None) -> RawTable:
    sample = _open_bytes(path)
    if not sample.strip():
        raise RadarInputError("the file is empty", path)
    if b"\x00" in sample and not sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise RadarInputError("this is not a text (CSV) file: it holds binary data", path)
    encoding = encoding or _detect_encoding(sample, path)
    text = _decode_sample(sample, encoding, path).lstrip("\ufeff")
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = delimiter or _detect_delimiter(first_line)
    header = _header_cells(text, delimiter)
    _check_header(header, path)
    frame, parse_errors, extras, encoding = _read_csv_body(path, header, encoding, delimiter)
    frame = _drop_unnamed_empty(frame, header, path)
    return RawTable(path, frame, parse_errors, encoding, delimiter, extras)


def _read_csv_body(
    path: Path, header: list[str], encoding: str, delimiter: str
) -> tuple[pd.DataFrame, pd.Series, pd.Series, str]:
    names = [cell or f"__unnamed_{i}" for i, cell in enumerate(header, start=1)]
    candidates = [encoding] + [e for e in FALLBACK_ENCODINGS if e != encoding and encoding != "utf-8-sig"]
    last_error: Exception | None = None
    for enc in candidates:
        try:
            return (*_read_csv_lenient(path, names, enc, delimiter), enc)
        except UnicodeDecodeError as err:
            # The sample decoded but a later byte did not: try the next encoding.
            last_error = err
        except (pd.errors.ParserError, csv.Error, ValueError) as err:
            raise RadarInputError(f"cannot parse as CSV ({_short(err)})", path) from err
    raise RadarInputError(f"cannot decode the file as {encoding}", path) from last_error


def _read_csv_lenient(
    path: Path, names: list[str], encoding: str, delimiter: str
) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    try:
        frame = pd.read_csv(
            path, sep=delimiter, header=0, names=names, index_col=False, dtype=TEXT_DTYPE,
            keep_default_na=False, encoding=encoding, skip_blank_lines=True, engine="c",
        )
    except pd.errors.ParserError:
        # Some row has more fields than the header and the C parser stops there. Such files
        # are rare and usually small: split them with the csv module, keeping every row.
        return _read_csv_rows(path, len(names), names, encoding, delimiter)
    return frame, _short_rows(frame, len(names)), pd.Series(np.nan, index=frame.index, dtype=object)


def _read_csv_rows(
    path: Path, width: int, names: list[str], encoding: str, delimiter: str
) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding=encoding, newline="") as handle:
        rows = [row for row in csv.reader(handle, delimiter=delimiter) if row]
    body = rows[1:]
    counts = np.fromiter((len(r) for r in body), dtype=np.int64, count=len(body))
    fitted = [r[:width] + [""] * (width - len(r)) if len(r) != width else r for r in body]
    frame = pd.DataFrame(fitted, columns=names, dtype=object) if body else pd.DataFrame(columns=names, dtype=object)
    frame = frame.astype(TEXT_DTYPE)
    errors = pd.Series(np.nan, index=frame.index, dtype=object)
    wrong = counts != width
    errors[wrong] = [f"row has {n} fields, the header has {width}" for n in counts[wrong]]
    extras = pd.Series(np.nan, index=frame.index, dtype=object)
    over = np.flatnonzero(counts > width)
    extras.iloc[over] = pd.Series([body[i][width:] for i in over], dtype=object).to_numpy()
    return frame, errors, extras


def _short_rows(frame: pd.DataFrame, width: int) -> pd.Series:
    """Reasons for rows with fewer fields than the header (NaN elsewhere).

    Missing cells are "" under keep_default_na=False; a missing value only appears where
    a row ended early (the python fallback), so those rows are marked.
    """
    errors = pd.Series(np.nan, index=frame.index, dtype=object)
    if frame.empty:
        return errors
    n_missing = frame.isna().sum(axis=1)
    short = n_missing > 0
    if short.any():
        errors[short] = (width - n_missing[short]).map(lambda n: f"row has {n} fields, the header has {width}")
    return errors


def _drop_unnamed_empty(frame: pd.DataFrame, header: list[str], path: Path) -> pd.DataFrame:
    """A trailing delimiter makes a nameless, empty column: harmless. Nameless data is not."""
    unnamed = [c for c in frame.columns if str(c).startswith("__unnamed_")]
    for column in unnamed:
        values = frame[column]
        if (values.fillna("").astype(str).str.strip() != "").any():
            position = header.index("") + 1 if "" in header else "?"
            raise RadarInputError(f"column {position} has data but no header (missing column name)", path)
    return frame.drop(columns=unnamed)


def _short(err: Exception) -> str:
    return str(err).strip().splitlines()[0][:200] if str(err).strip() else err.__class__.__name__


# --- Parquet and Excel -------------------------------------------------------------------


def _check_names(columns: list[object], path: Path) -> None:
    cells = ["" if c is None else str(c).strip() for c in columns]
    if not cells:
        raise RadarInputError("the file has no columns", path)
    if any(not c or c.startswith("Unnamed:") for c in cells):
        raise RadarInputError("a column has no name (missing header)", path)
    _check_header(cells, path)


def _read_parquet(path: Path) -> RawTable:
    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises many types; all mean "not readable Parquet"
        raise RadarInputError(f"cannot read as Parquet ({err.__class__.__name__})", path) from err
    _check_names(list(frame.columns), path)
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    return RawTable(path, frame, pd.Series(np.nan, index=frame.index, dtype=object))


def _read_excel(path: Path) -> RawTable:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = pd.read_excel(path, dtype=str, keep_default_na=False)
    except Exception as err:  # openpyxl raises many types; all mean "not a readable workbook"
        raise RadarInputError(f"cannot read as Excel ({err.__class__.__name__})", path) from err
    if frame.columns.empty:
        raise RadarInputError("the file is empty", path)
    _check_names(list(frame.columns), path)
    frame.columns = [str(c).strip() for c in frame.columns]
    return RawTable(path, frame, pd.Series(np.nan, index=frame.index, dtype=object))
