"""Linking records from disconnected sources into persons.

Records (rows of leads, interactions, orders, deals) that share a lead_id, a customer_id, a
normalised e-mail or a normalised phone number belong to one person. Linking is transitive
(A shares an e-mail with B, B a phone with C: one person) and is computed as connected
components of a graph whose nodes are distinct key combinations and keys, so its cost grows
with the number of distinct keys, not with events.

A contact key seen with too many distinct lead/customer ids (a switchboard, info@...) is a
*shared key*: linking through it would merge strangers, so it is ignored and reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from features.mapping import normalise_label
from features.phones import Parsing, parse_phone
from features.privacy import mask
from features.validation import _arrow_backed, _arrow_text, text_from_codes
from radar.config import IdentityConfig

KEY_KINDS: tuple[str, ...] = ("lead_id", "customer_id", "email", "phone")
CONTACT_KINDS: tuple[str, ...] = ("email", "phone")
ID_KINDS: tuple[str, ...] = ("lead_id", "customer_id")
PERSON_TABLES: tuple[str, ...] = ("leads", "interactions", "orders", "deals")
#: Lead attribute columns read as the region of the row's phone number.
COUNTRY_COLUMNS: tuple[str, ...] = ("country", "country_code", "country_region")
# Common non-ISO spellings of region codes seen in CRM country columns.
_REGION_ALIASES = {"UK": "GB", "EL": "GR"}
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
#: What Python's ``str.strip`` and ``\s`` count as whitespace among ASCII characters
#: (the separators \x1c-\x1f included; RE2's ``\s`` leaves out \v).
_ASCII_SPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
_NOT_AT_OR_SPACE = "[^@ \\t\\n\\r\\x0b\\x0c\\x1c-\\x1f]+"
#: :data:`_EMAIL` for ASCII text, in RE2 (Arrow's regular expressions).
_EMAIL_ASCII = f"^{_NOT_AT_OR_SPACE}@{_NOT_AT_OR_SPACE}\\.{_NOT_AT_OR_SPACE}$"
_PLUS, _NOTHING = pyarrow.scalar("+", pyarrow.large_string()), pyarrow.scalar("", pyarrow.large_string())
#: A number written only with digits and punctuation, for ASCII text in RE2.
_PLAIN_PHONE_ASCII = "^[+0-9 \\t\\n\\r\\x0b\\x0c\\x1c-\\x1f\\-./()]+$"


@dataclass
class IdentityReport:
    """What identity unification did, safe to print (keys masked)."""

    records: int = 0
    persons: int = 0
    #: Records whose key of this kind is shared with at least one other record.
    merged_via: dict[str, int] = field(default_factory=dict)
    #: Contact keys ignored for linking: kind, masked key, distinct ids seen with it.
    shared_keys: list[dict[str, object]] = field(default_factory=list)
    invalid_phones: int = 0
    invalid_emails: int = 0

    @property
    def shared_keys_ignored(self) -> int:
        return len(self.shared_keys)

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "shared_keys_ignored": self.shared_keys_ignored}


# --- Normalisation ---------------------------------------------------------------------------


def _on_distinct(values: pd.Series, normalise) -> tuple[np.ndarray, np.ndarray]:
    """Apply a normaliser to each distinct value once; return (codes, normalised uniques)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes, normalise(pd.Series(np.asarray(uniques, dtype=object), dtype=object))


def _email_form_python(text: pd.Series) -> pd.Series:
    cleaned = text.str.strip().str.lower().str.removeprefix("mailto:")
    return cleaned.where(cleaned.str.fullmatch(_EMAIL.pattern, na=False).astype(bool), np.nan)


def _in_arrow_where_ascii(text: pd.Series, arrow: Callable, python: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """``python(text)``, computed by ``arrow`` (Arrow's kernels on a large_string array,
    null where the answer is NaN) for the values that are ASCII.

    Python's str methods cost ~10 µs per value, Arrow's well under one; their lower case
    and whitespace differ outside ASCII, so the rest, and anything not text, stays Python's.
    """
    if len(text) == 0 or pd.api.types.infer_dtype(text, skipna=True) != "string":
        return python(text)
    values = pyarrow.array(text.to_numpy(dtype=object), type=pyarrow.large_string(), from_pandas=True)
    ascii_ = pc.fill_null(pc.string_is_ascii(values), False).to_numpy(zero_copy_only=False)
    out = np.asarray(arrow(values).to_numpy(zero_copy_only=False), dtype=object)
    out[pd.isna(out)] = np.nan
    if not ascii_.all():
        other = ~ascii_
        out[other] = python(text[other]).to_numpy(dtype=object)
    return pd.Series(out, index=text.index, dtype=object)


def _email_form_arrow(values: pyarrow.Array) -> pyarrow.Array:
    cleaned = pc.ascii_lower(pc.utf8_trim(values, characters=_ASCII_SPACE))
    cleaned = pc.replace_substring_regex(cleaned, "^mailto:", "", max_replacements=1)
    valid = pc.fill_null(pc.match_substring_regex(cleaned, _EMAIL_ASCII), False)
    return pc.if_else(valid, cleaned, pyarrow.scalar(None, pyarrow.large_string()))


def _email_form(text: pd.Series) -> pd.Series:
    """Trimmed, lower case, without "mailto:"; NaN where not an address (Arrow's kernels
    for ASCII text, with Python's ASCII whitespace spelled out)."""
    return _in_arrow_where_ascii(text, _email_form_arrow, _email_form_python)


def distinct_email_forms(values: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """Per row a code into the distinct values (-1: missing), and each distinct value's
    trimmed, lower-case form (NaN where not an address)."""
    return _on_distinct(values, _email_form)


def normalise_emails(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Trimmed, lower-case e-mails (NaN where missing or not an address) and an invalid mask."""
    codes, forms = distinct_email_forms(values)
    normal = forms.to_numpy(dtype=object)
    picked = normal[np.maximum(codes, 0)] if len(normal) else np.full(len(codes), np.nan, dtype=object)
    out = pd.Series(np.where(codes >= 0, picked, np.nan), index=values.index, dtype=object)
    invalid = pd.Series(codes >= 0, index=values.index) & out.isna()
    return out, invalid


def region_of(country: pd.Series | None, default_region: str, index: pd.Index) -> pd.Series:
    """Phone region per row: its country when that is a known region code, else the default."""
    if country is None:
        return pd.Series(default_region, index=index, dtype=object)
    code = country.astype(object).where(country.notna(), "").astype(str).str.strip().str.upper()
    code = code.replace(_REGION_ALIASES)
    known = code.isin(phonenumbers.SUPPORTED_REGIONS)
    return code.where(known, default_region).astype(object)


@lru_cache(maxsize=1_000_000)
def _e164(raw: str, region: str) -> str | None:
    return parse_phone(raw, region)[0]


class PhoneParses:
    """The numbers one load parses, spread over ``workers`` processes when there are many,
    and those read with their country code (region "") kept, with the E.164 form of every
    valid number, so that the contact kinds (:func:`features.contact.phone_kinds`), which
    read each linked E.164 number that way, parse none again."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._international: dict[str, tuple[str | None, int]] = {}
        #: Parses under way (see :meth:`submit`), each waited for once.
        self._pending: list[Callable[[], list[tuple[str | None, int]]]] = []

    def parse(self, raw: str, region: str) -> tuple[str | None, int]:
        return self.parse_all([(raw, region)])[0]

    def parse_all(self, pairs: list[tuple[str, str]]) -> list[tuple[str | None, int]]:
        """:func:`features.phones.parse_phone` of each (written number, region)."""
        return self.submit(pairs, here=True)()

    def submit(self, pairs: list[tuple[str, str]], here: bool = False) -> Callable[[], list[tuple[str | None, int]]]:
        """Start parsing ``pairs`` (in worker processes only, unless ``here``); the returned
        function waits for the parses, in the order of the pairs.

        Numbers read with their country code that an earlier call parsed are not sent
        again: earlier parses are waited for first, so that theirs are known.
        """
        for earlier in list(self._pending):
            earlier()
        out: list[tuple[str | None, int] | None] = [None] * len(pairs)
        todo = []
        for i, (raw, region) in enumerate(pairs):
            found = None if region else self._international.get(raw)
            if found is None:
                todo.append(i)
            else:
                out[i] = found
        parsing = Parsing([pairs[i] for i in todo], self.workers, here=here)
        done: list[list[tuple[str | None, int]]] = []

        def result() -> list[tuple[str | None, int]]:
            if not done:
                for i, parsed in zip(todo, parsing.result()):
                    out[i] = parsed
                    raw, region = pairs[i]
                    # National forms are never asked for again: not worth their memory.
                    # A valid number's E.164 form reads back as the same number, so it is
                    # known too (the contact kinds read every linked number that way).
                    if not region:
                        self._international[raw] = parsed
                    elif parsed[0] is not None:
                        self._international.setdefault(parsed[0], parsed)
                done.append(out)  # type: ignore[arg-type]
                self._pending.remove(result)
            return done[0]

        self._pending.append(result)
        return result


def _phone_key_python(raw: pd.Series) -> pd.Series:
    text = raw.str.strip()
    plain = text.str.fullmatch(r"[+\d\s\-./()]+", na=False)
    reduced = text.str.replace("(0)", "", regex=False).str.replace(r"(?!^\+)[^\d]", "", regex=True)
    return reduced.where(plain, text)


def _phone_key_arrow(values: pyarrow.Array) -> pyarrow.Array:
    text = pc.utf8_trim(values, characters=_ASCII_SPACE)
    plain = pc.fill_null(pc.match_substring_regex(text, _PLAIN_PHONE_ASCII), False)
    without_zero = pc.replace_substring(text, "(0)", "")
    digits = pc.replace_substring_regex(without_zero, "[^0-9]", "")
    # A leading "+" stays (RE2 has no look-ahead to spare it in one pattern).
    reduced = pc.if_else(pc.starts_with(without_zero, "+"), pc.binary_join_element_wise(_PLUS, digits, _NOTHING), digits)
    return pc.if_else(plain, reduced, text)


def _phone_key(raw: pd.Series) -> pd.Series:
    """"+44 (0)20-7946 0000" → "+442079460000": one parse serves every way of writing it.

    Only strings made of digits and punctuation are reduced; anything else (extensions,
    words) is parsed as written.
    """
    return _in_arrow_where_ascii(raw, _phone_key_arrow, _phone_key_python)


def normalise_phones(values: pd.Series, regions: pd.Series | str) -> tuple[pd.Series, pd.Series]:
    """E.164 numbers (NaN where missing or invalid) and an invalid mask.

    phonenumbers is slow per call, so each distinct (number, region) is parsed once;
    numbers written with "+" do not depend on the region and share one parse.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if len(uniques) == 0:
        return pd.Series(np.nan, index=values.index, dtype=object), pd.Series(False, index=values.index)
    raw = _phone_key(pd.Series(np.asarray(uniques, dtype=object), dtype=object))
    if isinstance(regions, str):
        region_codes, region_names = np.zeros(len(values), dtype=np.int64), np.asarray([regions], dtype=object)
    else:
        region_codes, region_names = pd.factorize(regions.astype(object).fillna(""))
        region_names = np.asarray(region_names, dtype=object)
    present = (codes >= 0) & np.isin(codes, np.flatnonzero((raw != "").to_numpy()))
    international = raw.str.startswith("+", na=False).to_numpy(dtype=bool)
    # One parse per (number, region); a "+" number ignores the region (-1).
    pair_region = np.where(international[np.maximum(codes, 0)], -1, region_codes)
    pairs = pd.DataFrame({"n": codes[present], "r": pair_region[present]})
    distinct = pairs.drop_duplicates()
    raw_list, regions_list = raw.to_numpy(), region_names
    parsed = [_e164(raw_list[n], regions_list[r] if r >= 0 else "") for n, r in zip(distinct["n"].to_numpy(), distinct["r"].to_numpy())]
    distinct = distinct.assign(e164=pd.Series(parsed, index=distinct.index, dtype=object))
    joined = pairs.merge(distinct, on=["n", "r"], how="left")["e164"].to_numpy()
    out = pd.Series(np.nan, index=values.index, dtype=object)
    out[present] = joined
    invalid = pd.Series(present, index=values.index) & out.isna()
    return out, invalid


# --- Linking ---------------------------------------------------------------------------------
#
# Everything below works on integer codes: each column is factorised once (in Arrow), only
# its distinct values are normalised in Python, and rows carry codes into those distinct
# values. No per-row Python string is made, so memory grows by a few integers per row.


@dataclass
class _Column:
    """One key column of one table: per row a code into its distinct entries (-1: missing)."""

    codes: np.ndarray
    #: Per entry: the linkable normalised key, or NaN (invalid, or nothing to link).
    forms: np.ndarray
    #: Per entry: the text handed back (the normalised key where valid, else as written).
    shown: np.ndarray
    #: Per entry: whether the value is present but invalid (it then links nothing).
    invalid: np.ndarray
    #: Per entry: the value as written.
    raw: np.ndarray


def _ordered_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes (int32: half the memory of 25 M int64 codes per key kind) and distinct values
    (object) in order of first appearance, missing = -1."""
    if _arrow_backed(values):
        return _arrow_codes(_arrow_text(values))
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    codes = np.asarray(codes, dtype=np.int32)
    uniques = np.asarray(uniques, dtype=object)
    order = pd.unique(codes[codes >= 0])
    if len(order) and not np.array_equal(order, np.arange(len(order))):
        remap = np.empty(len(uniques), dtype=np.int32)
        remap[order] = np.arange(len(order))
        codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
        uniques = uniques[order]
    return codes, uniques


def _arrow_codes(text) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_ordered_codes` of Arrow text: Arrow's dictionary encoding numbers the values
    in order of first appearance already, across chunks, in int32 (pandas' factorize of
    the same held int64 codes and checked their order: ~2 s per 20 M-row column)."""
    encoded = pc.dictionary_encode(text)
    chunks = encoded.chunks if isinstance(encoded, pyarrow.ChunkedArray) else [encoded]
    codes = np.empty(len(text), dtype=np.int32)
    start = 0
    for chunk in chunks:
        codes[start:start + len(chunk)] = pc.fill_null(chunk.indices, -1).to_numpy(zero_copy_only=False)
        start += len(chunk)
    # Every chunk carries the whole dictionary.
    dictionary = chunks[-1].dictionary if chunks else pyarrow.array([], type=pyarrow.large_string())
    return codes, np.asarray(dictionary.to_numpy(zero_copy_only=False), dtype=object)


def _raw_column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series(np.nan, index=frame.index, dtype=object)


def _id_column(values: pd.Series) -> _Column:
    codes, uniques = _ordered_codes(values)
    text = pd.Series(uniques, dtype=object).str.strip()
    forms = text.where(text != "", np.nan).to_numpy(dtype=object)
    return _Column(codes, forms, uniques, np.zeros(len(uniques), dtype=bool), uniques)


def _email_column(values: pd.Series) -> _Column:
    codes, uniques = _ordered_codes(values)
    forms = _email_form(pd.Series(uniques, dtype=object)).to_numpy(dtype=object)
    valid = pd.notna(forms)
    return _Column(codes, forms, np.where(valid, forms, uniques), ~valid, uniques)


def _region_codes(frame: pd.DataFrame, default_region: str) -> tuple[np.ndarray, np.ndarray]:
    """Per row a code into region names (one parse per distinct country value)."""
    country = _country_column(frame)
    if country is None:
        return np.zeros(len(frame), dtype=np.int64), np.asarray([default_region], dtype=object)
    codes, uniques = pd.factorize(country, use_na_sentinel=True)
    names = region_of(pd.Series(np.asarray(uniques, dtype=object), dtype=object), default_region,
                      pd.RangeIndex(len(uniques))).to_numpy(dtype=object)
    # A missing country is the default region (as "" is not a known region code).
    names = np.append(names, default_region)
    region_codes, region_names = pd.factorize(pd.Series(names, dtype=object))
    row = np.asarray(region_codes)[np.where(codes >= 0, codes, len(names) - 1)]
    return row.astype(np.int64), np.asarray(region_names, dtype=object)


def _phone_column(values: pd.Series, region_codes: np.ndarray, region_names: np.ndarray,
                  parses: PhoneParses, here: bool = True) -> Callable[[], _Column]:
    """Entries are distinct (number, region) pairs; a "+" number ignores the region.

    The numbers are sent to be parsed at once (in worker processes only, unless ``here``);
    the returned function waits for them and builds the column.
    """
    codes, uniques = _ordered_codes(values)
    raw = _phone_key(pd.Series(uniques, dtype=object))
    parseable = (raw != "").to_numpy(dtype=bool)
    international = raw.str.startswith("+", na=False).to_numpy(dtype=bool)
    safe = np.maximum(codes, 0).astype(np.int64)
    present = (codes >= 0) & parseable[safe] if len(uniques) else np.zeros(len(codes), dtype=bool)
    # Numbers with nothing to parse keep their own entry, after the pairs.
    n_regions = len(region_names) + 1
    pair = np.where(present, safe * n_regions + np.where(international[safe], 0, region_codes + 1) if len(uniques) else 0, -1)
    del safe
    pair_codes, pair_values = _ordered_codes(pd.Series(pair[present], dtype=np.int64))
    del pair
    number, region = pair_values.astype(np.int64) // n_regions, pair_values.astype(np.int64) % n_regions - 1
    raw_list = raw.to_numpy(dtype=object)
    parsing = parses.submit([(raw_list[n], region_names[r] if r >= 0 else "") for n, r in zip(number, region)], here)
    del raw, raw_list

    def column() -> _Column:
        parsed = parsing()
        forms = np.asarray([e164 for e164, _ in parsed], dtype=object)
        out = np.full(len(codes), -1, dtype=np.int32)
        out[present] = pair_codes
        bare = (codes >= 0) & ~present
        out[bare] = len(forms) + codes[bare]
        valid = np.asarray([f is not None for f in forms], dtype=bool)
        forms = np.where(valid, forms, np.nan).astype(object)
        written = np.concatenate([uniques[number], uniques]) if len(uniques) else np.empty(0, dtype=object)
        all_forms = np.concatenate([forms, np.full(len(uniques), np.nan, dtype=object)])
        invalid = np.concatenate([~valid, np.zeros(len(uniques), dtype=bool)])
        shown = np.where(pd.notna(all_forms), all_forms, written)
        return _Column(out, all_forms, shown, invalid, written)

    return column


def start_phones(frame: pd.DataFrame, default_region: str, parses: PhoneParses) -> Callable[[], _Column]:
    """Send a person table's phone numbers to be parsed in worker processes while this one
    goes on (e.g. validating the next table); hand the result to :func:`unify`."""
    region = default_region.upper()
    return _phone_column(_raw_column(frame, "phone"), *_region_codes(frame, region), parses, here=False)


def _country_column(frame: pd.DataFrame) -> pd.Series | None:
    for column in frame.columns:
        if normalise_label(str(column)) in COUNTRY_COLUMNS:
            return frame[column]
    return None


@dataclass
class _Keys:
    """All person records, stacked (tables in PERSON_TABLES order): codes, not strings."""

    #: Per kind, per row: a code into ``uniques[kind]`` (first appearance order), or -1.
    codes: pd.DataFrame
    uniques: dict[str, pd.Index]
    #: Per contact kind, per row: a code into ``written[kind]`` where the value is invalid.
    bad: dict[str, np.ndarray]
    written: dict[str, np.ndarray]


def _stack_codes(columns: dict[str, list[_Column]]) -> _Keys:
    codes, uniques, bad, written = {}, {}, {}, {}
    rows = sum(len(p.codes) for p in columns[KEY_KINDS[0]])
    for kind in KEY_KINDS:
        parts = columns[kind]
        offsets = np.cumsum([0] + [len(p.forms) for p in parts])
        forms = np.concatenate([p.forms for p in parts]) if parts else np.empty(0, dtype=object)
        global_codes, global_uniques = pd.factorize(pd.Series(forms, dtype=object), use_na_sentinel=True)
        global_codes = np.append(np.asarray(global_codes, dtype=np.int32), -1)
        invalid = np.append(np.concatenate([p.invalid for p in parts]), False) if kind in CONTACT_KINDS else None
        # Table by table into one int32 column: no stacked copy of every table's codes.
        codes[kind] = np.empty(rows, dtype=np.int32)
        if invalid is not None:
            bad[kind] = np.empty(rows, dtype=np.int32)
        start = 0
        for part, off in zip(parts, offsets):
            end = start + len(part.codes)
            stacked = np.where(part.codes >= 0, part.codes + np.int32(off), np.int32(len(forms)))
            codes[kind][start:end] = global_codes[stacked]
            if invalid is not None:
                bad[kind][start:end] = np.where(invalid[stacked], stacked, -1)
            start = end
        uniques[kind] = pd.Index(np.asarray(global_uniques, dtype=object), dtype=object)
        if kind in CONTACT_KINDS:
            written[kind] = np.concatenate([p.raw for p in parts])
    return _Keys(pd.DataFrame(codes), uniques, bad, written)


def _shared_keys(codes: pd.DataFrame, uniques: dict[str, pd.Index], limit: int) -> dict[str, np.ndarray]:
    """Per contact kind, the key codes seen with more than ``limit`` distinct ids.

    Each (key, id) pair is one int64 (lead ids first, then customer ids), so the distinct
    pairs of 25 M records are found without a frame of them (~1 GB at 1 M people).
    """
    shared: dict[str, np.ndarray] = {}
    n_lead = len(uniques["lead_id"])
    n_ids = n_lead + len(uniques["customer_id"])
    ids = [(codes[kind].to_numpy(), offset) for kind, offset in zip(ID_KINDS, (0, n_lead))]
    for kind in CONTACT_KINDS:
        key = codes[kind].to_numpy()
        distinct = []
        for id_codes, offset in ids:
            both = (key >= 0) & (id_codes >= 0)
            distinct.append(pd.unique(key[both].astype(np.int64) * n_ids + (id_codes[both].astype(np.int64) + offset)))
        counts = np.bincount(np.concatenate(distinct) // n_ids, minlength=len(uniques[kind]))
        shared[kind] = np.flatnonzero(counts > limit)
    return shared


def _person_ids(n_components: int, key_labels: np.ndarray, uniques: dict[str, pd.Index],
                first_rows: pd.Series, fallback) -> np.ndarray:
    """A stable id per component: "P" + a hash of its smallest key (or of its raw keys).

    The smallest key is the least "kind:key" text, found without writing that text for
    every key (5 M strings at 1 M people): the kinds' names differ in their first letter,
    so it is the component's least key of the alphabetically first kind it has, and each
    kind's keys are ordered by Arrow (byte order of UTF-8 is Python's order of strings).
    ``key_labels``: per key, in KEY_KINDS order, its component. ``first_rows`` gives, per
    component that may have no key, its first row (index: the row, value: the component);
    ``fallback(rows)`` the raw-key names of rows.
    """
    names = pd.Series(np.nan, index=range(n_components), dtype=object)
    named = np.zeros(n_components, dtype=bool)
    starts = dict(zip(KEY_KINDS, np.cumsum([0] + [len(uniques[kind]) for kind in KEY_KINDS])))
    for kind in sorted(KEY_KINDS):
        if not len(uniques[kind]):
            continue
        text = pd.Series(np.asarray(uniques[kind], dtype=object), dtype=object).astype(str).to_numpy(dtype=object)
        order = pc.sort_indices(pyarrow.array(text, type=pyarrow.large_string())).to_numpy()
        first = pd.Series(key_labels[starts[kind]:starts[kind] + len(text)][order]).drop_duplicates()
        first = first[~named[first.to_numpy()]]
        components = first.to_numpy()
        names.iloc[components] = [kind + ":" + key for key in text[order[first.index.to_numpy()]]]
        named[components] = True
    # Components without a linkable key: name them by their raw keys (first tuple seen).
    unnamed = names.isna().to_numpy()
    if unnamed.any():
        first_rows = first_rows[unnamed[first_rows.to_numpy()]]
        raw_names = pd.Series(np.nan, index=range(n_components), dtype=object)
        raw_names.iloc[first_rows.to_numpy()] = ["unlinked:" + f for f in fallback(first_rows.index.to_numpy())]
        names = names.where(~unnamed, raw_names)
    hashes = pd.util.hash_pandas_object(names.astype(str), index=False).to_numpy()
    return np.char.add("P", np.char.mod("%016x", hashes.astype(np.uint64)))


def _unlinkable(keys: _Keys, rows: np.ndarray) -> list[str]:
    """The raw invalid e-mail and phone of these rows, as "email|phone" ("" where valid)."""
    parts = []
    for kind in CONTACT_KINDS:
        code = keys.bad[kind][rows]
        parts.append(["" if c < 0 else str(keys.written[kind][c]) for c in code])
    return [f"{e}|{p}" for e, p in zip(*parts)]


def _key_text(keys: _Keys, kind: str, rows: np.ndarray, codes: np.ndarray | None = None) -> list[str]:
    code = (keys.codes[kind].to_numpy() if codes is None else codes)[rows]
    return ["" if c < 0 else str(keys.uniques[kind][c]) for c in code]


def link(keys: _Keys, config: IdentityConfig) -> tuple[np.ndarray, np.ndarray, IdentityReport]:
    """Per record a component and per component a person id, and a report.

    The graph's nodes are the keys (and, for records with no linkable key, one node per way
    their invalid and shared keys are written); a record hangs on its first key and joins
    its other keys to it. Most records carry one key, so the graph is about as large as the
    number of distinct keys, and no pass groups every record by its whole set of keys.
    """
    code_frame, uniques = keys.codes, keys.uniques
    shared = _shared_keys(code_frame, uniques, config.max_ids_per_key)
    # Only the contact columns with shared keys differ from the codes: a copy of those alone.
    linkable = code_frame.copy(deep=False)
    for kind, bad in shared.items():
        if len(bad):
            column = code_frame[kind].to_numpy()
            linkable[kind] = np.where(np.isin(column, bad), np.int32(-1), column)
    # Records with no linkable key are told apart by their invalid and shared keys as written.
    keyless = np.flatnonzero(linkable.eq(-1).all(axis=1).to_numpy())
    signature = np.empty(0, dtype=np.int64)
    if len(keyless):
        texts = _unlinkable(keys, keyless)
        for kind in CONTACT_KINDS:
            kind_codes = code_frame[kind].to_numpy()
            masked = np.where(np.isin(kind_codes, shared[kind]), kind_codes, -1)
            texts = [f"{t}|{k}" for t, k in zip(texts, _key_text(keys, kind, keyless, masked))]
        signature = np.asarray(pd.factorize(pd.Series(texts, dtype=object))[0], dtype=np.int64)
    offsets, offset = {}, 0
    for kind in KEY_KINDS:
        offsets[kind] = offset
        offset += len(uniques[kind])
    n_keys = offset
    node = np.full(len(linkable), -1, dtype=np.int64 if offset + len(signature) >= 2**31 else np.int32)
    edge_from, edge_to = [], []
    for kind in KEY_KINDS:
        codes = linkable[kind].to_numpy()
        present = codes >= 0
        joins = present & (node >= 0)
        edge_from.append(node[joins])
        edge_to.append(codes[joins] + offsets[kind])
        first = present & (node < 0)
        node[first] = codes[first] + offsets[kind]
    node[keyless] = n_keys + signature
    n_nodes = n_keys + (int(signature.max()) + 1 if len(signature) else 0)
    row_idx, col_idx = np.concatenate(edge_from), np.concatenate(edge_to)
    graph = coo_matrix((np.ones(len(row_idx), dtype=np.int8), (row_idx, col_idx)), shape=(n_nodes, n_nodes))
    n_components, labels = connected_components(graph, directed=False)
    component = labels[node]

    def fallback(at: np.ndarray) -> list[str]:
        texts = _unlinkable(keys, at)
        for kind in KEY_KINDS:
            texts = [f"{t}|{k}" for t, k in zip(texts, _key_text(keys, kind, at))]
        return texts

    # Only components of keyless records can lack a key: each one's first record names it.
    first_rows = pd.Series(component[keyless], index=keyless).drop_duplicates()
    component_person = _person_ids(n_components, labels[:n_keys], uniques, first_rows, fallback)
    has_records = np.zeros(n_components, dtype=bool)
    has_records[component] = True
    report = IdentityReport(
        records=len(component),
        persons=int(pd.unique(component_person[has_records]).size),
        merged_via=_merged_via(linkable),
        shared_keys=_shared_report(shared, uniques, code_frame),
    )
    return component, component_person, report


def _merged_via(linkable: pd.DataFrame) -> dict[str, int]:
    """Records whose key of each kind appears on at least one other record."""
    out = {}
    for kind in KEY_KINDS:
        column = linkable[kind].to_numpy()
        present = column >= 0
        counts = np.bincount(column[present])
        out[kind] = int((counts[column[present]] > 1).sum())
    return out


def _shared_report(shared: dict[str, np.ndarray], uniques: dict[str, pd.Index], codes: pd.DataFrame) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for kind, bad in shared.items():
        if not len(bad):
            continue
        rows = codes[codes[kind].isin(bad)]
        ids = {
            code: int(rows.loc[rows[kind] == code, list(ID_KINDS)].apply(lambda c: c[c >= 0].nunique()).sum())
            for code in bad[:50]
        }
        out.extend({"kind": kind, "key": mask(uniques[kind][code]), "ids": n} for code, n in ids.items())
    return sorted(out, key=lambda d: -int(d["ids"]))


def unify(tables: dict[str, pd.DataFrame], config: IdentityConfig,
          default_region: str | None = None,
          parses: PhoneParses | None = None,
          phones: dict[str, Callable[[], _Column]] | None = None) -> tuple[dict[str, pd.DataFrame], IdentityReport]:
    """Add ``person_id`` to every person table; e-mails and phones come back normalised.

    E-mails become trimmed lower case and phones E.164 where valid; invalid values stay as
    written (nothing is lost) but link nothing. Inputs are not modified. ``person_id``,
    ``email`` and ``phone`` come back as contract text. ``parses`` keeps the numbers parsed
    here for a later reader of the same load (the contact kinds). ``phones``: per table,
    its numbers as :func:`start_phones` sent them to be parsed (with the same ``parses``,
    region and frame), so that they are not parsed again.
    """
    present = [n for n in PERSON_TABLES if n in tables]
    if not present or sum(len(tables[n]) for n in present) == 0:
        # Header-only files: still the contract's shape, person_id included.
        empty = {n: tables[n].assign(person_id=pd.Series(dtype=object, index=tables[n].index)) for n in present}
        return dict(tables) | empty, IdentityReport()
    region = (default_region or config.default_phone_region).upper()
    parses = parses if parses is not None else PhoneParses()
    columns: dict[str, list[_Column]] = {kind: [] for kind in KEY_KINDS}
    for name in present:
        frame = tables[name]
        columns["lead_id"].append(_id_column(_raw_column(frame, "lead_id")))
        columns["customer_id"].append(_id_column(_raw_column(frame, "customer_id")))
        columns["email"].append(_email_column(_raw_column(frame, "email")))
        started = phones.pop(name, None) if phones else None
        if started is None:
            started = _phone_column(_raw_column(frame, "phone"), *_region_codes(frame, region), parses)
        columns["phone"].append(started())
    keys = _stack_codes(columns)
    component, component_person, report = link(keys, config)
    report.invalid_emails = int((keys.bad["email"] >= 0).sum())
    report.invalid_phones = int((keys.bad["phone"] >= 0).sum())
    del keys
    out = dict(tables)
    names = component_person.astype(object)
    start = 0
    for i, name in enumerate(present):
        frame = tables[name]
        end = start + len(frame)
        updated = frame.assign(person_id=text_from_codes(frame.index, component[start:end], names))
        for column in CONTACT_KINDS:
            if column in frame.columns:
                key = columns[column][i]
                updated[column] = text_from_codes(frame.index, key.codes, key.shown)
        out[name] = updated
        start = end
    return out, report
