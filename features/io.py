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
import zlib
from dataclasses import dataclass, field
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
# A cell may hold a pasted document; the csv module's default limit (128 KiB) would refuse
# the whole file for it. Validation rejects such a row with its reason instead.
_FIELD_SIZE_LIMIT = 2**31 - 1
UNCLOSED_QUOTE = "a quoted cell is never closed (the file ends inside it: cut short, or a stray quote)"
_DAMAGED_GZIP = "the compressed file is cut short or damaged (gzip): copy or export it again"
# Files that are not text, by their first bytes, with what to do about each.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "this is not a text (CSV) file but a ZIP archive (or an Excel .xlsx workbook): "
                    "unzip it, or name a workbook .xlsx"),
    (b"\x1f\x8b", "this is not a text (CSV) file but gzip-compressed: name it .csv.gz"),
    (b"PAR1", "this is not a text (CSV) file but Parquet: name it .parquet"),
    (b"\xd0\xcf\x11\xe0", "this is not a text (CSV) file but an old Excel .xls workbook: save it as .xlsx or CSV"),
    (b"%PDF", "this is not a text (CSV) file but a PDF document"),
)
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
    #: How rejects name where a row came from (a database table or query); None: the
    #: file's path relative to the data folder.
    source: str | None = None
    #: How errors about the whole table name it (a database URL and table); None: the path.
    where: str | None = None
    #: Columns, as read, that identify a row (a database table's primary key); empty: the
    #: contract's unique key of the table (lead_id, order_id, deal_id) when it has one.
    key_columns: list[str] = field(default_factory=list)

    @property
    def location(self) -> Path | str:
        """What an error about this table names."""
        return self.where if self.where is not None else self.path


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
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise RadarInputError(_DAMAGED_GZIP, path) from err
    except OSError as err:
        raise RadarInputError(f"cannot open the file ({err.__class__.__name__})", path) from err


def _binary_problem(sample: bytes) -> str | None:
    """What a file that is not text is, in words a user can act on (None for text)."""
    for magic, what in _MAGIC:
        if sample.startswith(magic):
            return what
    if b"\x00" in sample:
        return "this is not a text (CSV) file: it holds binary data"
    return None


def _utf16_without_bom(sample: bytes) -> str | None:
    """"utf-16-le"/"utf-16-be" for UTF-16 text written without a byte-order mark.

    Such text has a zero byte beside nearly every character of a Latin-script file (the
    high byte of each code unit), always on the same side; binary junk has them anywhere.
    """
    head = sample[: 4096 - (min(len(sample), 4096) % 2)]
    if len(head) < 4:
        return None
    even, odd = head[0::2], head[1::2]
    share = 0.9 * len(even)
    if odd.count(0) >= share and even.count(0) == 0:
        return "utf-16-le"
    if even.count(0) >= share and odd.count(0) == 0:
        return "utf-16-be"
    return None


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
    if not sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = encoding or _utf16_without_bom(sample)
        problem = _binary_problem(sample) if encoding is None or not encoding.startswith("utf-16") else None
        if problem:
            raise RadarInputError(problem, path)
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
        except (EOFError, zlib.error, gzip.BadGzipFile) as err:
            raise RadarInputError(_DAMAGED_GZIP, path) from err
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
        # Some row has more fields than the header, or a quoted cell is never closed, and
        # the C parser stops there. Such files are rare and usually small: split them with
        # the csv module, keeping every row.
        return _read_csv_rows(path, len(names), names, encoding, delimiter)
    errors = _short_rows(frame, len(names))
    if len(frame):
        cut = _cut_last_row(path, encoding, delimiter, len(names))
        if cut:
            errors.iloc[-1] = cut
    return frame, errors, pd.Series(np.nan, index=frame.index, dtype=object)


def _read_csv_rows(
    path: Path, width: int, names: list[str], encoding: str, delimiter: str
) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding=encoding, newline="") as handle:
        lines = handle.read().splitlines(keepends=True)
    rows, unclosed = _split_rows(lines, delimiter)
    body = rows[1:]
    counts = np.fromiter((len(r) for r in body), dtype=np.int64, count=len(body))
    fitted = [r[:width] + [""] * (width - len(r)) if len(r) != width else r for r in body]
    frame = pd.DataFrame(fitted, columns=names, dtype=object) if body else pd.DataFrame(columns=names, dtype=object)
    frame = frame.astype(TEXT_DTYPE)
    errors = pd.Series(np.nan, index=frame.index, dtype=object)
    wrong = counts != width
    errors[wrong] = [f"row has {n} fields, the header has {width}" for n in counts[wrong]]
    for i in (u - 1 for u in unclosed if u >= 1):
        errors.iloc[i] = UNCLOSED_QUOTE
    extras = pd.Series(np.nan, index=frame.index, dtype=object)
    over = np.flatnonzero(counts > width)
    extras.iloc[over] = pd.Series([body[i][width:] for i in over], dtype=object).to_numpy()
    return frame, errors, extras


def _split_rows(lines: list[str], delimiter: str) -> tuple[list[list[str]], list[int]]:
    """Rows of CSV lines, and the positions of rows whose quoted cell is never closed.

    The csv module reads an unclosed quote to the end of the file, swallowing every line
    after it into one cell. Such a row is kept as its own first line only (to be rejected
    with its reason) and the lines after it are split again, so no row is lost to a stray
    quote or to a file cut inside a quoted cell.
    """
    csv.field_size_limit(_FIELD_SIZE_LIMIT)
    rows: list[list[str]] = []
    unclosed: list[int] = []
    start = 0
    while start < len(lines):
        reader = csv.reader(lines[start:], delimiter=delimiter)
        first = start
        restart = None
        for row in reader:
            end = start + reader.line_num
            if end == len(lines) and _ends_inside_quote(lines[first:end], delimiter):
                unclosed.append(len(rows))
                rows.append(next(csv.reader([lines[first].rstrip("\r\n")], delimiter=delimiter), [""]))
                restart = first + 1
                break
            if row:
                rows.append(row)
            first = end
        if restart is None:
            break
        start = restart
    return rows, unclosed


def _ends_inside_quote(lines: list[str], delimiter: str) -> bool:
    """Whether these lines (one row, the file's last) end inside a quoted cell."""
    try:
        for _ in csv.reader(lines, delimiter=delimiter, strict=True):
            pass
    except csv.Error as err:
        # Strict reading also refuses a quote inside a cell ('"a"b'), which the lenient
        # reading accepts as text: only the end of the data inside quotes counts here.
        return "unexpected end of data" in str(err)
    return False


def _cut_last_row(path: Path, encoding: str, delimiter: str, width: int) -> str | None:
    """Why the last row is incomplete when the file ends in the middle of it, else None.

    A file cut short (a copy or an upload stopped part-way) ends without a line break and
    its last row has fewer fields than the header. Shorter rows elsewhere are read with
    blank trailing cells, as spreadsheet exports write them.
    """
    head, tail = _head_and_tail(path)
    codec = _plain_codec(encoding, head)
    text = tail[len(tail) % 2:] if codec.startswith("utf-16") else tail
    decoded = text.decode(codec, errors="replace")
    if not decoded or decoded.endswith(("\n", "\r")):
        return None
    fields = next(csv.reader([decoded.splitlines()[-1]], delimiter=delimiter), [])
    if len(fields) >= width:
        return None
    return f"row has {len(fields)} fields, the header has {width}: the file ends in the middle of this row (cut short?)"


def _head_and_tail(path: Path) -> tuple[bytes, bytes]:
    """The first bytes and the last 64 KiB of the (decompressed) file."""
    if path.name.lower().endswith(".gz"):
        head, tail = b"", b""
        with gzip.open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                head = head or chunk[:4]
                tail = (tail + chunk)[-_SNIFF_BYTES:]
        return head, tail
    with open(path, "rb") as handle:
        head = handle.read(4)
        size = handle.seek(0, 2)
        handle.seek(max(0, size - _SNIFF_BYTES))
        return head, handle.read()


def _plain_codec(encoding: str, head: bytes) -> str:
    """The codec that decodes any slice of the file: no BOM handling, fixed byte order."""
    if encoding == "utf-16":
        return "utf-16-be" if head.startswith(codecs.BOM_UTF16_BE) else "utf-16-le"
    return "utf-8" if encoding == "utf-8-sig" else encoding


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
        frame = pd.read_parquet(path, schema=_large_text_schema(path))
    except Exception as err:  # pyarrow raises many types; all mean "not readable Parquet"
        raise RadarInputError(f"cannot read as Parquet ({err.__class__.__name__})", path) from err
    _check_names(list(frame.columns), path)
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    return RawTable(path, frame, pd.Series(np.nan, index=frame.index, dtype=object))


def _large_text_schema(path: Path):
    """The file's schema with its text columns read as large_string, the type pandas holds
    text in: converting after reading held both copies (~0.5 GB more at 20 M rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    fields = [f.with_type(pa.large_string()) if pa.types.is_string(f.type) else f for f in schema]
    return pa.schema(fields, metadata=schema.metadata)


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
