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
import json
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

DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
# Tried in order: exports are UTF-8 nowadays; Windows tools still write cp1252 ("Latin-1"),
# and latin-1 itself decodes any byte, so it is the last resort.
FALLBACK_ENCODINGS: tuple[str, ...] = ("utf-8", "cp1252", "latin-1")
_SNIFF_BYTES = 64 * 1024
# Marks a row the CSV parser could not split into the header's fields (see _read_csv_lenient).
_OVERFLOW_MARK = "\x00radar-overflow\x00"
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
    frame, parse_errors, encoding = _read_csv_body(path, header, encoding, delimiter)
    frame = _drop_unnamed_empty(frame, header, path)
    return RawTable(path, frame, parse_errors, encoding, delimiter)


def _read_csv_body(
    path: Path, header: list[str], encoding: str, delimiter: str
) -> tuple[pd.DataFrame, pd.Series, str]:
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
) -> tuple[pd.DataFrame, pd.Series]:
    common = dict(
        sep=delimiter, header=0, names=names, index_col=False, dtype=str,
        keep_default_na=False, encoding=encoding, skip_blank_lines=True,
    )
    try:
        frame = pd.read_csv(path, engine="c", **common)
    except pd.errors.ParserError:
        # Some row has more fields than the header. The C parser stops there; the python
        # parser lets a callback keep the row, marked, so validation can reject it.
        frame = pd.read_csv(path, engine="python", on_bad_lines=_mark_overflow(len(names)), **common)
    return frame, _row_shape_errors(frame, len(names))


def _mark_overflow(width: int):
    def keep(fields: list[str]) -> list[str]:
        return [_OVERFLOW_MARK + json.dumps(fields, ensure_ascii=False)] + [""] * (width - 1)

    return keep


def _row_shape_errors(frame: pd.DataFrame, width: int) -> pd.Series:
    """Reasons for rows that do not have the header's number of fields (NaN elsewhere)."""
    errors = pd.Series(np.nan, index=frame.index, dtype=object)
    if frame.empty:
        return errors
    first = frame.iloc[:, 0]
    overflow = first.str.startswith(_OVERFLOW_MARK, na=False)
    if overflow.any():
        fields = first[overflow].str.slice(len(_OVERFLOW_MARK)).map(json.loads)
        errors[overflow] = fields.map(lambda f: f"row has {len(f)} fields, the header has {width}")
        # Put the fields back in place so the rejected row keeps its values.
        restored = pd.DataFrame(fields.map(lambda f: f[:width]).tolist(), index=fields.index)
        restored = restored.reindex(columns=range(width)).fillna("")
        restored.columns = frame.columns
        frame.loc[overflow, :] = restored.astype(object).to_numpy()
    # Missing cells are "" under keep_default_na=False; NaN only appears in short rows.
    short = frame.isna()
    n_missing = short.sum(axis=1)
    is_short = n_missing > 0
    if is_short.any():
        errors[is_short] = (width - n_missing[is_short]).map(
            lambda n: f"row has {n} fields, the header has {width}"
        )
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
