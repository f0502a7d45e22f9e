"""Turning read files into contract tables: rename, coerce, validate, and reject with reasons.

Every check is built from :mod:`features.contract`. Parsing (dates, numbers) is checked
here cell by cell (vectorised, over distinct values); the contract rules (required,
allowed values, minimums, finiteness, a person key, unique keys) are checked with pandera's
lazy validation, whose failure cases are mapped back to rows. Every row that breaks the
contract becomes exactly one line of rejects with its reasons and its raw values, so for
every table ``accepted + rejected == read``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute as pc
from pandera.errors import SchemaErrors

from features.contract import LEAD_CONTACT_COLUMNS, PERSON_KEYS, TABLES, Column, TableSpec
from features.errors import RadarInputError
from features.io import RawTable
from features.mapping import Mapping, TableMapping, normalise_label
from features.privacy import PERSONAL_COLUMNS, mask

#: ``source_file`` is the file (relative to the folder) or the database table (or "query for
#: leads"); ``row_number`` counts rows as read, 1 = the first after the header; ``key`` is the
#: row's own key as read ("lead_id=L0001": a database table's primary key, else the
#: contract's unique key of the table), blank when the table has none.
REJECT_COLUMNS: tuple[str, ...] = (
    "table", "source_file", "row_number", "key", "field", "value", "reason", "kind", "raw",
)
# Numbers beyond this are typos or sentinel values (9.99e99), not amounts or scores.
ABSURD_NUMBER = 1e12
# Dates outside these years are sentinels (1900-01-01, 9999-12-31) or typos, not CRM events.
PLAUSIBLE_YEARS = (1950, 2100)
# Distinct date strings parsed at a time (bounds the Python strings held while parsing).
DATE_SLICE = 250_000
# Rows of plain ISO dates read at a time: temporaries of this size are reused by the
# allocator, much larger ones come back as fresh pages (page faults cost more than the
# work); much smaller blocks cost more in numpy's per-call overhead (20 M timestamps:
# 4.4 s in blocks of 8 k rows, 2.9 s in blocks of 32 k).
_DATE_BLOCK = 1 << 15
# No CRM value (an id, a name, a campaign, an industry) is this long: a cell beyond it is a
# pasted document or a broken export, and would bloat every table and feature it reached.
MAX_CELL_CHARS = 10_000
# Raw values longer than this are shortened in the rejects' raw JSON.
RAW_CHARS = 1_000
# Names Radar adds itself; an input column with such a name would be overwritten.
RESERVED_COLUMNS: frozenset[str] = frozenset({"person_id", *LEAD_CONTACT_COLUMNS})
_SINGULAR = {"leads": "lead", "interactions": "interaction", "orders": "order", "deals": "deal", "spend": "spend"}


# --- Problems: one row per (row, field) that breaks the contract ---------------------------


@dataclass
class Problems:
    """Collects problems as frames of (pos, field, value, reason, kind)."""

    parts: list[pd.DataFrame] = field(default_factory=list)

    def add(self, pos: np.ndarray, field_name: str, values: pd.Series, reason: pd.Series | str, kind: str) -> None:
        if len(pos) == 0:
            return
        frame = pd.DataFrame(
            {
                "pos": np.asarray(pos, dtype=np.int64),
                "field": field_name,
                "value": np.asarray(values, dtype=object),
                "reason": np.asarray(reason, dtype=object) if not isinstance(reason, str) else reason,
                "kind": kind,
            }
        )
        self.parts.append(frame)

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame({"pos": pd.Series(dtype=np.int64), "field": [], "value": [], "reason": [], "kind": []})
        out = pd.concat(self.parts, ignore_index=True)
        # One reason per (row, field): the earliest check (parsing) explains the later ones.
        return out.drop_duplicates(["pos", "field"], keep="first")

    def rows(self) -> np.ndarray:
        if not self.parts:
            return np.empty(0, dtype=np.int64)
        return np.unique(np.concatenate([p["pos"].to_numpy() for p in self.parts]))


# --- Text helpers ---------------------------------------------------------------------------


def _text_dtype() -> object:
    # pandas 3's default "str" (Arrow-backed, NaN for missing, plain bool comparisons);
    # pandas 2.3 offers the same dtype, 2.2 only object.
    try:
        return pd.StringDtype("pyarrow", na_value=np.nan)
    except TypeError:
        return object


TEXT_OUTPUT_DTYPE = _text_dtype()


def text_output(values: pd.Series) -> pd.Series:
    """Text as the contract hands it out: pandas 3's "str" dtype (object on pandas 2.2)."""
    if TEXT_OUTPUT_DTYPE is object:
        return values.astype(object).where(values.notna(), np.nan)
    if values.dtype == object:
        values = values.where(values.notna(), np.nan)
    return values.astype(TEXT_OUTPUT_DTYPE)


def text_from_codes(index: pd.Index, codes: np.ndarray, dictionary: np.ndarray) -> pd.Series:
    """Per row ``dictionary[code]`` (missing where code < 0) as contract text, without a
    Python string per row."""
    if TEXT_OUTPUT_DTYPE is object:
        picked = dictionary[np.maximum(codes, 0)] if len(dictionary) else np.full(len(codes), np.nan, dtype=object)
        return pd.Series(np.where(codes >= 0, picked, np.nan), index=index, dtype=object)
    table = pyarrow.array(np.asarray(dictionary, dtype=object), type=pyarrow.large_string(), from_pandas=True)
    taken = table.take(pyarrow.array(np.maximum(codes, 0), mask=codes < 0)) if len(dictionary) else \
        pyarrow.nulls(len(codes), type=pyarrow.large_string())
    return pd.Series(taken, index=index, dtype=TEXT_OUTPUT_DTYPE)


def _as_text(values: pd.Series) -> pd.Series:
    """Trimmed text with NaN for missing, whatever the source dtype."""
    if pd.api.types.is_string_dtype(values.dtype) and pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        if _arrow_backed(values) and not _edges_may_be_space(_arrow_text(values)):
            return values
        stripped = values.str.strip()
        # Most columns need no trimming: keep them as read rather than hold a second copy.
        return values if stripped.equals(values) else stripped
    present = values.notna()
    out = pd.Series(np.nan, index=values.index, dtype=object)
    out[present] = values[present].astype(str).str.strip()
    return out


def _edges_may_be_space(text) -> bool:
    """Whether any value might start or end with whitespace: one whose first and last bytes
    are printable ASCII other than space cannot, so most columns are not trimmed (a copy)."""
    for chunk in text.chunks if isinstance(text, pyarrow.ChunkedArray) else [text]:
        if len(chunk) == 0:
            continue
        offset_type = np.int64 if pyarrow.types.is_large_string(chunk.type) else np.int32
        offsets = np.frombuffer(chunk.buffers()[1], dtype=offset_type)[chunk.offset:chunk.offset + len(chunk) + 1]
        data = np.frombuffer(chunk.buffers()[2], dtype=np.uint8) if chunk.buffers()[2] is not None else np.zeros(0, np.uint8)
        starts, ends = offsets[:-1], offsets[1:]
        filled = ends > starts
        if chunk.null_count:
            filled &= chunk.is_valid().to_numpy(zero_copy_only=False)
        if not filled.any():
            continue
        first, last = data[starts[filled]], data[ends[filled] - 1]
        if ((first <= 0x20) | (first >= 0x7F) | (last <= 0x20) | (last >= 0x7F)).any():
            return True
    return False


def _blank_missing(values: pd.Series, missing: frozenset[str]) -> pd.Series:
    """Missing markers ("", "N/A", "Select"...) become NaN."""
    longest = max((len(m) for m in missing), default=0)
    if _arrow_backed(values):
        return _blank_missing_arrow(values, missing, longest)
    short = values.str.len() <= longest
    marker = np.zeros(len(values), dtype=bool)
    short_mask = short.fillna(False).to_numpy(dtype=bool)
    if short_mask.any():
        marker[short_mask] = values[short_mask].str.lower().isin(missing).fillna(False).to_numpy(dtype=bool)
    empty = (values.str.len() == 0).fillna(False).to_numpy(dtype=bool)
    blank = marker | empty
    # No marker at all (the usual case): the column as it is, not a copy of it.
    return values.where(~blank, np.nan) if blank.any() else values


def _marker_first_bytes(missing: frozenset[str]) -> np.ndarray:
    """Per byte, whether a value starting with it may be a marker once lower-cased: an
    ASCII letter lowers to its own lower case only, so a marker's first letter in either
    case; any byte of a non-ASCII character (which may lower to anything)."""
    first = np.zeros(256, dtype=bool)
    first[0x80:] = True
    for marker in missing:
        if marker and marker[0].isascii():
            first[[ord(marker[0]), ord(marker[0].upper()[0]), ord(marker[0].lower()[0])]] = True
    return first


def _blank_missing_arrow(values: pd.Series, missing: frozenset[str], longest: int) -> pd.Series:
    """:func:`_blank_missing` of Arrow text, a chunk at a time and mostly from the offsets.

    A value is a marker when its lower case is one (Arrow's utf8_lower, as before); only
    values that can be (no longer than ``longest`` characters, so at most 4 bytes each,
    and starting with a byte a marker can start with) are lower-cased and looked up: most
    cells (ids, e-mails, "web_visit") are ruled out by their length and first byte alone.
    Blanked cells become missing through the validity bitmap: the text is not copied.
    """
    text = _arrow_text(values)
    markers = pyarrow.array(sorted(m for m in missing if m), type=text.type)
    first_bytes = _marker_first_bytes(missing)
    offset_type = np.int64 if pyarrow.types.is_large_string(text.type) else np.int32
    out, changed = [], False
    for chunk in text.chunks if isinstance(text, pyarrow.ChunkedArray) else [text]:
        n = len(chunk)
        if n == 0:
            out.append(chunk)
            continue
        buffers = chunk.buffers()
        offsets = np.frombuffer(buffers[1], dtype=offset_type)[chunk.offset:chunk.offset + n + 1]
        lengths = np.diff(offsets)
        valid = chunk.is_valid().to_numpy(zero_copy_only=False) if chunk.null_count else np.ones(n, dtype=bool)
        blank = (lengths == 0) & valid
        if len(markers) and buffers[2] is not None:
            data = np.frombuffer(buffers[2], dtype=np.uint8)
            at = np.flatnonzero(valid & (lengths > 0) & (lengths <= 4 * longest))
            at = at[first_bytes[data[offsets[at]]]] if len(at) else at
            if len(at):
                found = pc.is_in(pc.utf8_lower(chunk.take(pyarrow.array(at))), value_set=markers)
                blank[at[pc.fill_null(found, False).to_numpy(zero_copy_only=False)]] = True
        if not blank.any():
            out.append(chunk)
            continue
        changed = True
        keep = valid & ~blank
        if chunk.offset == 0:
            bitmap = pyarrow.py_buffer(np.packbits(keep, bitorder="little"))
            out.append(pyarrow.Array.from_buffers(chunk.type, n, [bitmap, buffers[1], buffers[2]],
                                                  null_count=int(n - keep.sum())))
        else:
            out.append(pc.if_else(pyarrow.array(blank), pyarrow.scalar(None, type=chunk.type), chunk))
    if not changed:
        return values
    return pd.Series(pyarrow.chunked_array(out, type=text.type), index=values.index, dtype=values.dtype,
                     name=values.name)


def _is_text(values: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(values.dtype) or values.dtype == object


def _quotable(cells: pd.Series, missing: frozenset[str]) -> pd.Series:
    """Cells of a table's text as reasons quote them: trimmed, missing markers blank.

    Native numbers and times (Parquet, a database) stay native in the text until quoted:
    turning 20 M amounts into strings that only a few rejected rows show cost ~25 s at 1 M
    people. Both steps work cell by cell, so quoting a few gives what converting all did.
    """
    return cells if _is_text(cells) else _blank_missing(_as_text(cells), missing)


def _quote(values: pd.Series, personal: bool) -> pd.Series:
    shown = values.map(mask) if personal else values.astype(str)
    return "'" + shown.str.slice(0, 80) + "'"


def _is_personal(name: str, mapping: Mapping) -> bool:
    return name in ("email", "phone") or normalise_label(name) in PERSONAL_COLUMNS or name in mapping.hash_columns


# --- Renaming -------------------------------------------------------------------------------


def rename_map(columns: list[str], spec: TableSpec, table_mapping: TableMapping, path: Path) -> dict[str, str]:
    """Their column name → contract (or attribute) name, for one file."""
    explicit = {normalise_label(k): v for k, v in table_mapping.columns.items()}
    contract = {normalise_label(n): n for n in spec.names}
    claimed = set(table_mapping.columns.values())
    result: dict[str, str] = {}
    for column in columns:
        if column in table_mapping.columns:
            result[column] = table_mapping.columns[column]
        elif normalise_label(column) in explicit:
            result[column] = explicit[normalise_label(column)]
        elif column in spec.names and column not in claimed:
            result[column] = column
        elif normalise_label(column) in contract and contract[normalise_label(column)] not in claimed:
            result[column] = contract[normalise_label(column)]
        else:
            result[column] = column
    targets: dict[str, str] = {}
    for source, target in result.items():
        if target in targets:
            raise RadarInputError(
                f"columns {targets[target]!r} and {source!r} both map to {spec.name}.{target}", path
            )
        targets[target] = source
    return result


# --- Coercion -------------------------------------------------------------------------------


def _factorized(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes, pd.Index(uniques, dtype=object)


def _take(parsed: np.ndarray, codes: np.ndarray, fill: object) -> np.ndarray:
    out = parsed[np.where(codes >= 0, codes, 0)] if len(parsed) else np.full(len(codes), fill)
    return np.where(codes >= 0, out, fill)


def _plausible(parsed: pd.Series) -> pd.Series:
    """NaT for dates outside PLAUSIBLE_YEARS, before they meet nanosecond storage: pandas 3
    parses "-1-01-01" at microsecond resolution, which nanoseconds cannot hold."""
    years = parsed.dt.year
    keep = (years >= PLAUSIBLE_YEARS[0]) & (years <= PLAUSIBLE_YEARS[1])
    return parsed.where(keep, pd.NaT).astype("datetime64[ns, UTC]")


#: Date shapes read without pandas: pandas' ISO 8601 parser reads them to the moment their
#: digits say (naive = UTC). Each is ``YYYY-MM-DD``, or that, "T" or a space, and
#: ``hh:mm:ss``: per shape its length and whether a time follows.
_ISO_WIDTHS: tuple[tuple[int, bool], ...] = ((19, True), (10, False))
#: Where each two-digit number of the shapes starts ("2024-03-01T10:00:00").
_ISO_PAIRS: tuple[tuple[str, int], ...] = (
    ("century", 0), ("year", 2), ("month", 5), ("day", 8), ("hour", 11), ("minute", 14), ("second", 17),
)
#: Where the separators of the shapes stand, and what each may be.
_ISO_SEPARATORS: tuple[tuple[int, bytes], ...] = ((4, b"-"), (7, b"-"), (10, b"T "), (13, b":"), (16, b":"))


def _arrow_backed(values: pd.Series) -> bool:
    return isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow"


def _arrow_text(values: pd.Series):
    """The column as a pyarrow string array (no copy when it is Arrow-backed already)."""
    if _arrow_backed(values):
        return pyarrow.array(values.array)
    return pyarrow.array(values.astype(object), type=pyarrow.large_string(), from_pandas=True)


def _plain_iso(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Dates written in one of the plain ISO shapes (``_ISO_WIDTHS``) with a real date and
    time and a plausible year, as naive datetime64[ns] (NaT elsewhere), and which values
    those were.

    A timestamp column is nearly all distinct values: these millions are read from their
    digits with numpy, where pandas' parser would hold each as a Python string first.
    Anything else, a day that does not exist (30 February, 24:00) included, is left to it.
    Rows go a block at a time: whole-column temporaries cost more in fresh memory (page
    faults: ~8 s of system time for 20 M timestamps) than the arithmetic itself.
    """
    text = _arrow_text(values)
    out = np.empty(len(values), dtype="datetime64[ns]")
    done = np.empty(len(values), dtype=bool)
    for start in range(0, len(values), _DATE_BLOCK):
        stop = min(len(values), start + _DATE_BLOCK)
        out[start:stop], done[start:stop] = _plain_iso_block(text.slice(start, stop - start))
    return out, done


def _plain_iso_block(text) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_plain_iso` of one block, read from the bytes in place: a value is in a shape
    when its byte length is the shape's, its digit pairs are ASCII digits and its separators
    the shape's characters (which is what ``^\\d{4}-\\d{2}-\\d{2}...$`` asks, a pattern that
    cost more than the reading)."""
    flat = text.combine_chunks() if isinstance(text, pyarrow.ChunkedArray) else text
    out = np.full(len(flat), np.datetime64("NaT", "ns"))
    done = np.zeros(len(flat), dtype=bool)
    if not len(flat):
        return out, done
    offset_type = np.int64 if pyarrow.types.is_large_string(flat.type) else np.int32
    offsets = np.frombuffer(flat.buffers()[1], dtype=offset_type, count=len(flat) + 1,
                            offset=flat.offset * np.dtype(offset_type).itemsize).astype(np.int64)
    data = flat.buffers()[2]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, dtype=np.uint8)
    lengths = np.diff(offsets)
    if flat.null_count:
        lengths[~np.asarray(flat.is_valid().to_numpy(zero_copy_only=False), dtype=bool)] = -1
    for width, has_time in _ISO_WIDTHS:
        if (lengths == width).all():
            # The usual block: every value this long, back to back.
            start = int(offsets[0])
            stamps, ok = _iso_digits(data[start:start + width * len(flat)].reshape(-1, width), has_time)
            return stamps, ok
        rows = np.flatnonzero(lengths == width)
        if len(rows):
            stamps, ok = _iso_digits(data[offsets[rows][:, None] + np.arange(width)], has_time)
            out[rows[ok]], done[rows[ok]] = stamps[ok], True
    return out, done


#: Days in each month of a common year.
_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def _iso_digits(written: np.ndarray, has_time: bool) -> tuple[np.ndarray, np.ndarray]:
    """Moments of byte strings of one width (a row each) in an ISO shape, and which are in
    the shape with a real date and time and a plausible year."""
    digits = written - np.uint8(ord("0"))  # wraps around below "0": not a digit either way
    is_digit = digits <= 9
    pairs = _ISO_PAIRS if has_time else _ISO_PAIRS[:4]
    ok = np.ones(len(written), dtype=bool)
    number = {}
    for name, at in pairs:
        ok &= is_digit[:, at] & is_digit[:, at + 1]
        number[name] = digits[:, at].astype(np.int64) * 10 + digits[:, at + 1]
    for at, allowed in _ISO_SEPARATORS:
        if at < written.shape[1]:
            column = written[:, at]
            ok &= (column == allowed[0]) | (column == allowed[-1])
    year, month, day = number["century"] * 100 + number["year"], number["month"], number["day"]
    hour, minute, second = (number["hour"], number["minute"], number["second"]) if has_time else (0, 0, 0)
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    safe_month = np.clip(month, 1, 12)
    days_in_month = _MONTH_DAYS[safe_month - 1] + (leap & (safe_month == 2))
    ok &= ((year >= PLAUSIBLE_YEARS[0]) & (year <= PLAUSIBLE_YEARS[1]) & (month >= 1) & (month <= 12)
           & (day >= 1) & (day <= days_in_month) & (hour < 24) & (minute < 60) & (second < 60))
    seconds = _days_since_epoch(year, safe_month, day) * 86_400 + hour * 3_600 + minute * 60 + second
    return (seconds * 1_000_000_000).view("datetime64[ns]"), ok


def _days_since_epoch(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days from 1970-01-01 to each proleptic Gregorian date (the civil-from-days algorithm
    run backwards, in integers: numpy's month-to-day conversion is ~20× slower)."""
    y = year - (month <= 2)
    era = y // 400
    year_of_era = y - era * 400
    day_of_year = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


def parse_datetimes(values: pd.Series, formats: list[str], dayfirst: bool) -> tuple[pd.Series, pd.Series]:
    """Parse text dates: given formats, then ISO 8601, epoch seconds, free-form.

    Returns tz-naive UTC datetime64[ns] and a mask of present values that did not parse.
    Plain ISO dates are read from their digits (when no formats are given: those would come
    first); each distinct other string is parsed once.
    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        parsed = values if values.dt.tz is None else values.dt.tz_convert("UTC").dt.tz_localize(None)
        return parsed.astype("datetime64[ns]"), pd.Series(False, index=values.index)
    if formats or len(values) == 0:
        return _parse_by_distinct(values, formats, dayfirst)
    out, done = _plain_iso(values)
    failed = np.zeros(len(values), dtype=bool)
    todo = ~done & values.notna().to_numpy(dtype=bool)
    rest = np.flatnonzero(todo)
    if len(rest):
        # Arrow filters chunk by chunk; pandas' take joins all chunks into one copy first.
        others = pd.Series(pc.filter(_arrow_text(values), pyarrow.array(todo)), dtype=values.dtype) \
            if _arrow_backed(values) else values.iloc[rest]
        parsed, not_parsed = _parse_by_distinct(others, formats, dayfirst)
        out[rest] = parsed.to_numpy()
        failed[rest] = not_parsed.to_numpy()
    return pd.Series(out, index=values.index), pd.Series(failed, index=values.index)


def _parse_by_distinct(values: pd.Series, formats: list[str], dayfirst: bool) -> tuple[pd.Series, pd.Series]:
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    # Timestamps are nearly all distinct: parse them a slice at a time, so that only one
    # slice is ever held as Python strings (the whole column was ~0.7 GB per 2 M rows).
    parts = [_parse_distinct(uniques[i:i + DATE_SLICE], formats, dayfirst) for i in range(0, len(uniques), DATE_SLICE)]
    naive = np.concatenate(parts) if parts else np.empty(0, dtype="datetime64[ns]")
    out = pd.Series(_take(naive, codes, np.datetime64("NaT", "ns")), index=values.index).astype("datetime64[ns]")
    failed = pd.Series((codes >= 0) & ~_take(~np.isnat(naive), codes, True), index=values.index)
    return out, failed


def _parse_distinct(uniques: pd.Index, formats: list[str], dayfirst: bool) -> np.ndarray:
    """parse_datetimes for distinct values: naive UTC datetime64[ns], NaT where unparsed."""
    texts = pd.Series(pd.Index(uniques, dtype=object).astype(str), dtype=object)
    result = pd.Series(pd.NaT, index=texts.index, dtype="datetime64[ns, UTC]")
    # pandas reads "now" and "today" as the current moment: a date must hold digits.
    datelike = texts.str.contains(r"\d", regex=True)
    for fmt in [*formats, "ISO8601"]:
        todo = result.isna() & datelike
        if not todo.any():
            break
        result[todo] = _plausible(pd.to_datetime(texts[todo], format=fmt, errors="coerce", utc=True))
    todo = result.isna() & texts.str.fullmatch(r"\d{10}(\.\d+)?")
    if todo.any():
        result[todo] = _plausible(pd.to_datetime(texts[todo].astype(float), unit="s", errors="coerce", utc=True))
    # Free-form inference (dateutil) only for strings that look like a date at all: it
    # would otherwise read "today", "3" or "12.5" as some date.
    todo = result.isna() & datelike & (texts.str.len() >= 6)
    if todo.any():
        parsed = pd.to_datetime(texts[todo], format="mixed", dayfirst=dayfirst, errors="coerce", utc=True)
        result[todo] = _plausible(parsed)
    naive = result.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    return naive.to_numpy()


_NUMBER = r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d{1,6})?|inf|infinity|nan)"
_CURRENCY = re.compile(r"^(?:[€$£¥]|EUR|USD|GBP)\s*|\s*(?:[€$£¥]|EUR|USD|GBP)$", re.IGNORECASE)


def parse_numbers(values: pd.Series, decimal: str) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Parse text numbers. Returns float64, a mask of unparseable and a mask of non-finite.

    Currency symbols, thousands separators and accounting negatives "(12.50)" are accepted;
    "NaN"/"inf" in a file are not numbers but mistakes, so they are reported, not missing.
    """
    if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype):
        numbers = values.astype("float64")
        infinite = pd.Series(np.isinf(numbers.to_numpy()), index=values.index)
        return numbers, pd.Series(False, index=values.index), infinite
    codes, uniques = _factorized(values)
    texts = pd.Series(uniques.astype(str), dtype=object)
    cleaned = texts.str.replace(_CURRENCY, "", regex=True).str.replace(r"[\s'’]", "", regex=True)
    cleaned = cleaned.str.replace(r"^\((.*)\)$", r"-\1", regex=True)
    if decimal == ".":
        thousands = cleaned.str.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?")
        cleaned = cleaned.where(~thousands, cleaned.str.replace(",", "", regex=False))
    else:
        thousands = cleaned.str.fullmatch(r"[+-]?\d{1,3}(\.\d{3})+(,\d*)?")
        cleaned = cleaned.where(~thousands, cleaned.str.replace(".", "", regex=False))
        cleaned = cleaned.str.replace(",", ".", regex=False)
    # Only well-formed numbers reach the float parser: pandas' parser has crashed the
    # process on hash-like text with a huge exponent, and pandas 2 and 3 disagree on
    # overflow. Python's float() reads "1e400" as inf on every version.
    well_formed = cleaned.str.fullmatch(_NUMBER, case=False).fillna(False).astype(bool)
    numbers = pd.Series(np.nan, index=cleaned.index, dtype="float64")
    numbers[well_formed] = cleaned[well_formed].astype(float)
    unparseable = ~well_formed
    non_finite = well_formed & ~np.isfinite(numbers)
    out = pd.Series(_take(numbers.to_numpy(), codes, np.nan), index=values.index, dtype="float64")
    bad = pd.Series(_take(unparseable.to_numpy(), codes, False), index=values.index).astype(bool)
    nonfin = pd.Series(_take(non_finite.to_numpy(), codes, False), index=values.index).astype(bool)
    return out, bad, nonfin


def _map_values(values: pd.Series, value_map: dict[str, str] | None) -> pd.Series:
    if not value_map:
        return values
    mapped = values.str.casefold().map(value_map)
    return mapped.where(mapped.notna(), values)


def _normalise_category(values: pd.Series, allowed: tuple[str, ...]) -> pd.Series:
    """"Email Open" → "email_open" where that is an allowed value; others stay as written."""
    if values.dtype == TEXT_OUTPUT_DTYPE and pyarrow.types.is_large_string(_arrow_text(values).type):
        distinct = pc.unique(_arrow_text(values)).drop_null().to_pylist()
        if all(label == u or label not in allowed for u, label in ((u, normalise_label(u)) for u in distinct)):
            # Written as the contract spells them already (the usual case): the column as
            # read, not a rebuilt copy of it (~0.4 GB per column of 20 M interactions), and
            # its distinct values found without coding every row.
            return values
    codes, uniques = _factorized(values)
    labels = [normalise_label(u) for u in uniques]
    chosen = np.asarray([label if label in allowed else u for u, label in zip(uniques, labels)], dtype=object)
    # Contract text straight away: the checks and the split that follow are several times
    # faster on Arrow text than on Python objects (20 M interaction types at 1 M people).
    return text_from_codes(values.index, np.asarray(codes), chosen)


def _ids_from_numbers(values: pd.Series) -> pd.Series:
    """Integer-valued float ids (123.0, from a column with gaps) back to "123"."""
    as_int = values.dropna()
    whole = np.isfinite(as_int) & (as_int == np.round(as_int))
    out = pd.Series(np.nan, index=values.index, dtype=object)
    out[as_int.index] = as_int.astype(str)
    out[as_int.index[whole.to_numpy()]] = as_int[whole].astype(np.int64).astype(str)
    return out


# --- One table, phase 1: rename, clean, coerce, pandera ------------------------------------


@dataclass
class RowOrigins:
    """Where each row of a table came from: its file (or database source) and 1-based row
    number there. Kept as one (source, rows) pair per file, so a table of 20 M rows holds no
    column of file names until the rows that need one (accepted rows, rejects) ask for it."""

    sources: list[str]
    counts: list[int]

    def __len__(self) -> int:
        return int(sum(self.counts))

    @property
    def files(self) -> list[str]:
        """The sources that gave at least one row, sorted."""
        return sorted({source for source, n in zip(self.sources, self.counts) if n})

    def at(self, positions: np.ndarray) -> pd.DataFrame:
        """``source_file`` and ``row_number`` of the rows at these positions (in that order)."""
        positions = np.asarray(positions, dtype=np.int64)
        starts = np.cumsum([0, *self.counts])
        part = np.searchsorted(starts, positions, side="right") - 1
        names = np.asarray(self.sources, dtype=object)
        return pd.DataFrame({"source_file": text_from_codes(pd.RangeIndex(len(positions)), part, names),
                             "row_number": positions - starts[part] + 1})


@dataclass
class PreparedTable:
    """A table after phase 1; cross-table checks and the split into accepted/rejected follow."""

    spec: TableSpec
    values: pd.DataFrame  # contract (+ attribute) columns, coerced, positional index
    text: pd.DataFrame  # cleaned text per column, to quote values in reasons
    raw: pd.DataFrame  # as read, original names: the rejects' raw JSON
    personal_raw: list[str]  # raw columns to mask in rejects
    origins: RowOrigins
    problems: Problems
    dropped_columns: list[str]
    attribute_columns: list[str]
    files: list[str]
    #: Raw columns that identify a row, for the rejects' ``key`` (see REJECT_COLUMNS).
    key_columns: list[str] = field(default_factory=list)

    @property
    def read(self) -> int:
        return len(self.values)


def _combine(raws: list[RawTable], spec: TableSpec, mapping: Mapping, base: Path) -> tuple[pd.DataFrame, pd.DataFrame, RowOrigins, pd.Series, list[str], list[str]]:
    table_mapping = mapping.table(spec.name)
    renamed_parts, raw_parts, parse_parts, personal = [], [], [], set()
    extra_parts, keys = [], []
    origins = RowOrigins([], [])
    for raw in raws:
        names = rename_map([str(c) for c in raw.frame.columns], spec, table_mapping, raw.location)
        _require_columns(spec, set(names.values()), raw.location)
        own = raw.key_columns or [src for src, tgt in names.items() if spec.unique_key and tgt == spec.unique_key]
        keys += [k for k in own if k not in keys]
        renamed = raw.frame.copy(deep=False)
        renamed.columns = [names[str(c)] for c in raw.frame.columns]
        renamed_parts.append(renamed)
        raw_parts.append(raw.frame)
        personal.update(src for src, tgt in names.items() if _is_personal(tgt, mapping) or _is_personal(src, mapping))
        origins.sources.append(raw.source if raw.source is not None else _relative(raw.path, base))
        origins.counts.append(len(raw.frame))
        parse_parts.append(raw.parse_errors)
        extra_parts.append(raw.extra_fields if raw.extra_fields is not None else pd.Series(np.nan, index=raw.frame.index, dtype=object))
    combined = pd.concat(renamed_parts, ignore_index=True) if len(renamed_parts) > 1 else renamed_parts[0].reset_index(drop=True)
    raw_all = pd.concat(raw_parts, ignore_index=True) if len(raw_parts) > 1 else raw_parts[0].reset_index(drop=True)
    parse_errors = pd.concat(parse_parts, ignore_index=True)
    extras = pd.concat(extra_parts, ignore_index=True)
    if extras.notna().any():
        # Cells beyond the header have no name: mask any that look like contact details.
        raw_all = raw_all.assign(_extra_fields=extras.map(_mask_loose, na_action="ignore"))
    return combined, raw_all, origins, parse_errors, sorted(personal), keys


def _mask_loose(cells: list[str]) -> list[str]:
    return [mask(c) if "@" in c or len(re.sub(r"\D", "", c)) >= 7 else c for c in cells]


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return path.name


def _require_columns(spec: TableSpec, present: set[str], path: Path) -> None:
    missing = [c for c in spec.required if c not in present]
    if missing:
        raise RadarInputError(
            f"{spec.name} needs column(s) {', '.join(missing)}; found {', '.join(sorted(present)) or 'none'} "
            "(rename yours in the mapping file)",
            path,
        )
    if spec.needs_person_key and not present.intersection(PERSON_KEYS):
        raise RadarInputError(
            f"{spec.name} needs a person key column ({', '.join(PERSON_KEYS)}); none found", path
        )


def prepare_table(spec: TableSpec, raws: list[RawTable], mapping: Mapping, base: Path) -> PreparedTable:
    """Phase 1 for one table: rename, clean, coerce and check the contract's per-row rules."""
    combined, raw_all, origins, parse_errors, personal, keys = _combine(raws, spec, mapping, base)
    problems = Problems()
    malformed = np.flatnonzero(parse_errors.notna().to_numpy())
    problems.add(malformed, "row", pd.Series([""] * len(malformed)), parse_errors.iloc[malformed].to_numpy(), "malformed_row")
    contract_cols = [c for c in combined.columns if c in spec.names]
    extra = [c for c in combined.columns if c not in spec.names]
    keep_extra = [c for c in extra if spec.keeps_extra_columns and c not in RESERVED_COLUMNS]
    dropped = [c for c in extra if c not in keep_extra]
    missing = mapping.missing_set()
    # Native numbers and times are parsed from the cells themselves: see _quotable.
    native = {c for c in contract_cols if spec.column(c).kind in ("number", "datetime") and not _is_text(combined[c])}
    text = pd.DataFrame(
        {c: combined[c] if c in native else _blank_missing(_as_text(combined[c]), missing) for c in contract_cols + keep_extra},
        index=combined.index,
    )
    _too_long(text, problems)
    for name in spec.names:
        if name not in text.columns:
            text[name] = pd.Series(np.nan, index=text.index, dtype=object)
    values = _coerce_all(spec, combined, text, mapping, problems)
    for name in keep_extra:
        values[name] = _attribute(text[name])
    _pandera_checks(spec, values, text, missing, problems)
    return PreparedTable(spec, values, text, raw_all, personal, origins, problems, dropped, keep_extra,
                         origins.files, keys)


def _too_long(text: pd.DataFrame, problems: Problems) -> None:
    """Reject cells longer than MAX_CELL_CHARS (before parsing, so this is their reason)."""
    for name in text.columns:
        if not _is_text(text[name]):
            continue  # a native number or time is never that long
        if _arrow_backed(text[name]) and _longest_bytes(_arrow_text(text[name])) <= MAX_CELL_CHARS:
            continue  # no value has that many bytes, so none has that many characters
        lengths = text[name].str.len()
        pos = np.flatnonzero((lengths > MAX_CELL_CHARS).fillna(False).to_numpy(dtype=bool))
        if len(pos):
            reason = [f"value of {n:,} characters in {name} (more than {MAX_CELL_CHARS:,}: not a CRM value)"
                      for n in lengths.iloc[pos].astype(int)]
            problems.add(pos, name, text[name].iloc[pos].str.slice(0, 80), np.asarray(reason, dtype=object), "too_long")


def _longest_bytes(text) -> int:
    """The most bytes of any present value, from the offsets a chunk at a time (an Arrow
    length array per 20 M-row column was ~0.2 s and 170 MB of fresh memory)."""
    longest = 0
    offset_type = np.int64 if pyarrow.types.is_large_string(text.type) else np.int32
    for chunk in text.chunks if isinstance(text, pyarrow.ChunkedArray) else [text]:
        if len(chunk) == chunk.null_count:
            continue
        offsets = np.frombuffer(chunk.buffers()[1], dtype=offset_type)[chunk.offset:chunk.offset + len(chunk) + 1]
        lengths = np.diff(offsets)
        if chunk.null_count:
            lengths = lengths[chunk.is_valid().to_numpy(zero_copy_only=False)]
        longest = max(longest, int(lengths.max()))
    return longest


def _coerce_all(spec: TableSpec, combined: pd.DataFrame, text: pd.DataFrame, mapping: Mapping, problems: Problems) -> pd.DataFrame:
    table_mapping = mapping.table(spec.name)
    value_maps = table_mapping.normalised_values()
    dayfirst = table_mapping.dayfirst if table_mapping.dayfirst is not None else mapping.dayfirst
    formats = [*table_mapping.date_formats, *mapping.date_formats]
    missing = mapping.missing_set()
    out: dict[str, pd.Series] = {}
    n = len(combined)
    for column in spec.columns:
        if column.name not in combined.columns:
            out[column.name] = _empty(column, n)
            continue
        source = combined[column.name]
        cells = text[column.name] if _is_text(source) else source
        out[column.name] = _coerce_column(spec, column, cells, text[column.name], value_maps.get(column.name),
                                          formats, dayfirst, table_mapping.decimal, missing, problems)
    return pd.DataFrame(out, index=combined.index)


def _empty(column: Column, n: int) -> pd.Series:
    if column.kind == "datetime":
        return pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns]")
    if column.kind == "number":
        return pd.Series(np.nan, index=range(n), dtype="float64")
    return pd.Series(np.nan, index=range(n), dtype=object)


def _coerce_column(spec: TableSpec, column: Column, cells: pd.Series, text: pd.Series, value_map: dict[str, str] | None,
                   formats: list[str], dayfirst: bool, decimal: str, missing: frozenset[str],
                   problems: Problems) -> pd.Series:
    name = column.name
    if column.kind == "datetime":
        parsed, failed = parse_datetimes(cells, formats, dayfirst)
        pos = np.flatnonzero(failed.to_numpy())
        shown = _quotable(text.iloc[pos], missing)
        problems.add(pos, name, shown, "unparseable date " + _quote(shown, False) + f" in {name}", "unparseable_date")
        return parsed
    if column.kind == "number":
        numbers, bad, non_finite = parse_numbers(cells, decimal)
        pos = np.flatnonzero(bad.to_numpy())
        shown = _quotable(text.iloc[pos], missing)
        # "12,50" in a file with a point as decimal mark: usually a European export.
        comma = shown.str.fullmatch(r"[+-]?\d+,\d{1,2}").fillna(False).astype(bool) & (decimal == ".")
        hint = pd.Series("", index=shown.index).where(~comma, " (a decimal comma? set decimal: ',' in the mapping file)")
        problems.add(pos, name, shown, "unparseable number " + _quote(shown, False) + f" in {name}" + hint, "unparseable_number")
        pos = np.flatnonzero(non_finite.to_numpy())
        shown = _quotable(text.iloc[pos], missing)
        problems.add(pos, name, shown, "not a finite number " + _quote(shown, False) + f" in {name}", "not_finite")
        return numbers.where(~non_finite, np.nan)
    if pd.api.types.is_float_dtype(cells.dtype) and column.kind == "id":
        cleaned = _ids_from_numbers(cells)
    else:
        cleaned = text
    cleaned = _map_values(cleaned, value_map)
    if column.allowed:
        cleaned = _normalise_category(cleaned, column.allowed)
    return cleaned


def _attribute(values: pd.Series) -> pd.Series:
    """Lead attributes stay text unless every present value is a plain number."""
    present = values.dropna()
    if len(present) and present.str.fullmatch(r"[+-]?\d+(\.\d+)?").all():
        return pd.to_numeric(values, errors="coerce").astype("float64")
    return values


# --- pandera --------------------------------------------------------------------------------


def _finite(series: pd.Series) -> pd.Series:
    return pd.Series(np.isfinite(series.to_numpy()) & (np.abs(series.to_numpy()) <= ABSURD_NUMBER), index=series.index)


def contract_schema(spec: TableSpec) -> pa.DataFrameSchema:
    """The contract's per-row rules for one table as a pandera schema (on coerced values)."""
    columns = {}
    for column in spec.columns:
        checks = []
        if column.allowed:
            checks.append(pa.Check.isin(list(column.allowed)))
        if column.min_value is not None:
            checks.append(pa.Check.ge(column.min_value))
        if column.max_value is not None:
            checks.append(pa.Check.le(column.max_value))
        if column.kind == "number":
            checks.append(pa.Check(_finite, name="finite"))
        dtype = {"datetime": "datetime64[ns]", "number": "float64"}.get(column.kind)
        columns[column.name] = pa.Column(dtype, checks, nullable=not column.required, required=True)
    frame_checks = []
    if spec.needs_person_key:
        frame_checks.append(pa.Check(lambda df: df[list(PERSON_KEYS)].notna().any(axis=1), name="person_key"))
    return pa.DataFrameSchema(columns, checks=frame_checks, strict=False, coerce=False)


def _failure_cases(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> pd.DataFrame:
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as err:
        cases = err.failure_cases
        structural = cases["index"].isna()
        if structural.any():
            # A dtype or missing-column failure is a bug in coercion, not a bad row.
            raise RuntimeError(f"contract coercion bug: {cases[structural].to_dict('records')}") from err
        return cases
    return pd.DataFrame(columns=["column", "check", "index"])


def _contract_failures(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> pd.DataFrame:
    """pandera's failure cases of ``schema``, found one column at a time and then the
    table-wide checks, the order pandera itself reports them in: its working copies of a
    20 M-row table at once were 1.25 GB, of one column a fraction of that."""
    parts = [_failure_cases(pa.DataFrameSchema({name: column}, strict=False, coerce=False), frame[[name]])
             for name, column in schema.columns.items()]
    if schema.checks:
        parts.append(_failure_cases(pa.DataFrameSchema(checks=schema.checks, strict=False, coerce=False), frame))
    parts = [part for part in parts if not part.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["column", "check", "index"])


def _pandera_checks(spec: TableSpec, values: pd.DataFrame, text: pd.DataFrame, missing: frozenset[str],
                    problems: Problems) -> None:
    cases = _contract_failures(contract_schema(spec), values[list(spec.names)])
    if cases.empty:
        return
    cases = cases.assign(pos=cases["index"].astype(np.int64), check=cases["check"].astype(str))
    person = cases[cases["check"] == "person_key"].drop_duplicates("pos")
    problems.add(person["pos"].to_numpy(), "person key", pd.Series([""] * len(person)),
                 f"no person key ({', '.join(PERSON_KEYS)})", "no_person_key")
    cases = cases.assign(check=cases["check"].map(_check_kind))
    for (column_name, check), group in cases[cases["check"] != "person_key"].groupby(["column", "check"], sort=False):
        _add_check_problem(spec, spec.column(column_name), check, group["pos"].to_numpy(), values, text, missing,
                           problems)


def _check_kind(check: str) -> str:
    """pandera's check label ("isin([...])", "greater_than_or_equal_to(0.0)") → our kind."""
    for prefix, kind in (("isin", "allowed"), ("greater_than_or_equal_to", "minimum"),
                         ("less_than_or_equal_to", "maximum")):
        if check.startswith(prefix):
            return kind
    return check


def _add_check_problem(spec: TableSpec, column: Column, check: str, pos: np.ndarray, values: pd.DataFrame,
                       text: pd.DataFrame, missing: frozenset[str], problems: Problems) -> None:
    name = column.name
    shown = _quotable(text[name].iloc[pos], missing) if name in text.columns else pd.Series([""] * len(pos))
    personal = name in ("email", "phone")
    if check == "not_nullable":
        problems.add(pos, name, pd.Series([""] * len(pos)), f"missing required {name}", "missing_required")
    elif check == "allowed":
        what = "deal stage" if name == "stage" else f"{_SINGULAR[spec.name]} {name}"
        problems.add(pos, name, shown, f"unknown {what} " + _quote(shown, personal), "unknown_value")
    elif check == "minimum":
        number = values[name].iloc[pos].map(lambda v: f"{v:g}")
        reason = (f"negative {name} " + number) if column.min_value == 0 else (f"{name} " + number + f" below minimum {column.min_value:g}")
        problems.add(pos, name, shown, reason, "below_minimum")
    elif check == "maximum":
        number = values[name].iloc[pos].map(lambda v: f"{v:g}")
        problems.add(pos, name, shown, f"{name} " + number + f" above maximum {column.max_value:g}", "above_maximum")
    elif check == "finite":
        number = values[name].iloc[pos].map(lambda v: f"{v:g}")
        problems.add(pos, name, shown, f"absurd {name} " + number + f" (beyond ±{ABSURD_NUMBER:g})", "absurd_number")
    else:
        problems.add(pos, name, shown, f"{name} fails check {check}", "contract")


# --- Cross-table and uniqueness checks -------------------------------------------------------


def _ok_mask(table: PreparedTable) -> np.ndarray:
    ok = np.ones(table.read, dtype=bool)
    ok[table.problems.rows()] = False
    return ok


def minted_ids(prepared: dict[str, PreparedTable]) -> dict[str, pyarrow.Array | None]:
    """Ids issued by their minting tables (None when that table was not given).

    Rows of the minting table that are themselves rejected still issued their id: the
    lead exists, its row is only broken, so its events are kept, not rejected in cascade.
    """
    issued: dict[str, pyarrow.Array | None] = {"lead_id": None, "customer_id": None}
    for key, table in (("lead_id", "leads"), ("customer_id", "orders")):
        if table in prepared:
            # Kept in Arrow: a million ids as a Python set cost more than the lookups.
            issued[key] = pc.unique(_arrow_text(prepared[table].values[key])).drop_null()
    return issued


def check_unknown_keys(table: PreparedTable, issued: dict[str, pyarrow.Array | None]) -> None:
    """Reject rows whose only person keys are ids their minting table never issued."""
    if not table.spec.needs_person_key:
        return
    minting = {"lead_id": "leads", "customer_id": "orders"}
    values = table.values
    has_contact = values["email"].notna() | values["phone"].notna()
    known_any = pd.Series(False, index=values.index)
    unknown: dict[str, pd.Series] = {}
    for key in ("lead_id", "customer_id"):
        present = values[key].notna()
        if issued[key] is None or minting[key] == table.spec.name:
            known_any |= present
            continue
        ids = _arrow_text(values[key])
        member = pc.is_in(ids, value_set=issued[key].cast(ids.type)).to_numpy(zero_copy_only=False)
        known = present & pd.Series(member.astype(bool), index=values.index)
        known_any |= known
        unknown[key] = present & ~known
    reject = ~has_contact & ~known_any
    for key, bad in unknown.items():
        pos = np.flatnonzero((reject & bad).to_numpy())
        shown = table.text[key].iloc[pos]
        table.problems.add(pos, key, shown, f"unknown {key} " + _quote(shown, False), "unknown_key")


def check_duplicates(table: PreparedTable) -> None:
    """Later rows repeating a unique key are rejected; the first valid occurrence is kept."""
    key = table.spec.unique_key
    if key is None:
        return
    candidates = np.flatnonzero(_ok_mask(table))
    subset = table.values[[key]].iloc[candidates]
    schema = pa.DataFrameSchema({key: pa.Column(None, nullable=True)}, unique=[key], report_duplicates="exclude_first")
    cases = _failure_cases(schema, subset.dropna())
    if cases.empty:
        return
    pos = cases["index"].astype(np.int64).unique()
    first_pos = subset.dropna().drop_duplicates(key).reset_index().set_index(key)["index"]
    first = first_pos.reindex(table.values[key].iloc[pos]).to_numpy()
    where = table.origins.at(first)
    shown = table.text[key].iloc[pos]
    reason = (f"duplicate {key} " + _quote(shown, False) + " (first in " + where["source_file"].to_numpy()
              + " row " + where["row_number"].astype(str).to_numpy() + ")")
    table.problems.add(pos, key, shown, reason, "duplicate_key")


# --- Split into accepted rows and rejects ---------------------------------------------------


@dataclass
class ValidatedTable:
    """A table's accepted rows (contract dtypes) and its rejects."""

    name: str
    data: pd.DataFrame
    origins: pd.DataFrame
    rejects: pd.DataFrame
    read: int
    files: list[str]
    dropped_columns: list[str]
    attribute_columns: list[str]


def finalise(table: PreparedTable) -> ValidatedTable:
    """Split a checked table into accepted rows and one rejects line per rejected row.

    The table is used up: its raw cells and text go once the rejects are written, and each
    column goes once its accepted rows are copied, so a table is never held twice over.
    """
    ok = _ok_mask(table)
    read = table.read
    rejects = _rejects(table, ~ok)
    table.raw = table.text = None  # type: ignore[assignment]  # only the rejects needed them
    columns = {name: table.values[name] for name in table.values.columns}
    table.values = None  # type: ignore[assignment]
    text_columns = {c.name for c in table.spec.columns if c.kind in ("id", "text", "category")}
    accepted = {}
    for name in list(columns):
        column = columns.pop(name)
        column = column.reset_index(drop=True) if ok.all() else column[ok].reset_index(drop=True)
        if name in text_columns or (name in table.attribute_columns and not pd.api.types.is_float_dtype(column.dtype)):
            column = text_output(column)
        accepted[name] = column
    return ValidatedTable(
        name=table.spec.name,
        data=pd.DataFrame(accepted),
        origins=table.origins.at(np.flatnonzero(ok)),
        rejects=rejects,
        read=read,
        files=table.files,
        dropped_columns=table.dropped_columns,
        attribute_columns=table.attribute_columns,
    )


def empty_rejects() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=np.int64 if c == "row_number" else object) for c in REJECT_COLUMNS})


def _rejects(table: PreparedTable, rejected: np.ndarray) -> pd.DataFrame:
    if not rejected.any():
        return empty_rejects()
    problems = table.problems.frame().sort_values(["pos"], kind="stable")
    masked = problems["value"].astype(object).where(problems["value"].notna(), "")
    personal = problems["field"].isin(["email", "phone"])
    masked = masked.where(~personal | (masked == ""), masked.map(mask))
    problems = problems.assign(value=masked.astype(str))
    joined = _join_per_row(problems)
    positions = joined.index.to_numpy()
    origins = table.origins.at(positions)
    out = pd.DataFrame(
        {
            "table": table.spec.name,
            "source_file": origins["source_file"].to_numpy(),
            "row_number": origins["row_number"].to_numpy(),
            "key": _row_keys(table, positions),
            "field": joined["field"].to_numpy(),
            "value": joined["value"].to_numpy(),
            "reason": joined["reason"].to_numpy(),
            "kind": joined["kind"].to_numpy(),
            "raw": _raw_json(table, positions),
        }
    )
    return out.reset_index(drop=True)


def _join_per_row(problems: pd.DataFrame) -> pd.DataFrame:
    """One line per row; several problems are joined with "; " (only those go through Python)."""
    columns = ["field", "value", "reason", "kind"]
    repeated = problems["pos"].duplicated(keep=False)
    single = problems.loc[~repeated].set_index("pos")[columns]
    multi = problems.loc[repeated].groupby("pos", sort=False).agg({c: "; ".join for c in columns})
    return pd.concat([single, multi]).sort_index()


def _row_keys(table: PreparedTable, positions: np.ndarray) -> np.ndarray:
    """Each rejected row's own key as read, "lead_id=L0001" ("" when it has none)."""
    out = pd.Series("", index=range(len(positions)), dtype=object)
    for column in table.key_columns:
        if column not in table.raw.columns:
            continue
        values = table.raw[column].iloc[positions].reset_index(drop=True)
        present = values.notna() & (values.astype(str).str.strip() != "")
        shown = values.astype(str).str.strip()
        if column in table.personal_raw:
            shown = shown.map(mask)
        part = (column + "=" + shown).where(present, "")
        out = (out + np.where((out != "") & (part != ""), ", ", "") + part).astype(object)
    return out.to_numpy(dtype=object)


def _raw_json(table: PreparedTable, positions: np.ndarray) -> np.ndarray:
    raw = table.raw.iloc[positions].copy()
    for column in table.personal_raw:
        if column in raw.columns:
            present = raw[column].notna() & (raw[column].astype(str) != "")
            raw[column] = raw[column].astype(object).where(~present, raw[column][present].map(mask))
    for column in raw.columns:
        if pd.api.types.is_string_dtype(raw[column].dtype) or raw[column].dtype == object:
            long = raw[column].map(lambda v: isinstance(v, str) and len(v) > RAW_CHARS)
            if long.any():
                raw[column] = raw[column].astype(object).where(
                    ~long, raw[column][long].map(lambda v: f"{v[:RAW_CHARS]}… ({len(v):,} characters)"))
    raw.columns = [str(c) for c in raw.columns]
    lines = raw.to_json(orient="records", lines=True, date_format="iso", force_ascii=False)
    return np.asarray(lines.rstrip("\n").split("\n"), dtype=object)


def validate_tables(raws: dict[str, list[RawTable]], mapping: Mapping, base: Path,
                    on_table: Callable[[ValidatedTable], None] | None = None) -> dict[str, ValidatedTable]:
    """All tables through all checks: per-table rules, unknown keys, then duplicates.

    ``on_table`` is called with each table as soon as it is validated (a load starts
    parsing its phone numbers in other processes while the next table is validated).

    ``raws`` is used up, a table at a time: the tables that mint ids (leads, orders) are
    prepared first, for the ids the others are checked against; then each table is checked
    and split, and its files and working frames go before the next table is read into them.
    """
    order = list(raws)
    for name in order:
        # A file's columns are judged in table order, as when every table was prepared in turn.
        for raw in raws[name]:
            names = rename_map([str(c) for c in raw.frame.columns], TABLES[name], mapping.table(name), raw.location)
            _require_columns(TABLES[name], set(names.values()), raw.location)
    pyarrow.default_memory_pool().release_unused()
    prepared = {name: prepare_table(TABLES[name], raws.pop(name), mapping, base)
                for name in order if name in ("leads", "orders")}
    issued = minted_ids(prepared)
    validated = {}
    for name in order:
        table = prepared.pop(name) if name in prepared else prepare_table(TABLES[name], raws.pop(name), mapping, base)
        check_unknown_keys(table, issued)
        check_duplicates(table)
        validated[name] = finalise(table)
        del table
        if on_table is not None:
            on_table(validated[name])
        # Arrow's allocator keeps what a table freed for later use; give it back to the
        # system before the next table, or it counts twice in the peak.
        pyarrow.default_memory_pool().release_unused()
    return validated
