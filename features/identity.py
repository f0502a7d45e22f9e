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
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
import phonenumbers
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from features.mapping import normalise_label
from features.privacy import mask
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


def _email_form(text: pd.Series) -> pd.Series:
    cleaned = text.str.strip().str.lower().str.removeprefix("mailto:")
    return cleaned.where(cleaned.str.fullmatch(_EMAIL.pattern, na=False).astype(bool), np.nan)


def normalise_emails(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Trimmed, lower-case e-mails (NaN where missing or not an address) and an invalid mask."""
    codes, forms = _on_distinct(values, _email_form)
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
    try:
        number = phonenumbers.parse(raw, region or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _phone_key(raw: pd.Series) -> pd.Series:
    """"+44 (0)20-7946 0000" → "+442079460000": one parse serves every way of writing it.

    Only strings made of digits and punctuation are reduced; anything else (extensions,
    words) is parsed as written.
    """
    text = raw.str.strip()
    plain = text.str.fullmatch(r"[+\d\s\-./()]+", na=False)
    reduced = text.str.replace("(0)", "", regex=False).str.replace(r"(?!^\+)[^\d]", "", regex=True)
    return reduced.where(plain, text)


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


@dataclass
class _Records:
    """All person records, stacked: one row per table row, keys normalised."""

    keys: pd.DataFrame  # lead_id, customer_id, email, phone: linkable values or NaN
    unlinkable: pd.Series  # a signature of keys that cannot link (invalid, shared), or ""
    table_sizes: dict[str, int]


def _stack(tables: dict[str, pd.DataFrame], default_region: str) -> tuple[_Records, dict[str, tuple[pd.Series, pd.Series]], int, int]:
    parts, normalised = [], {}
    invalid_phones = invalid_emails = 0
    for name in PERSON_TABLES:
        if name not in tables:
            continue
        frame = tables[name]
        email, bad_email = normalise_emails(_column(frame, "email"))
        regions = region_of(_country_column(frame), default_region, frame.index)
        phone, bad_phone = normalise_phones(_column(frame, "phone"), regions)
        invalid_emails += int(bad_email.sum())
        invalid_phones += int(bad_phone.sum())
        normalised[name] = (email, phone)
        parts.append(
            pd.DataFrame(
                {
                    "lead_id": _ids(_column(frame, "lead_id")),
                    "customer_id": _ids(_column(frame, "customer_id")),
                    "email": email.to_numpy(),
                    "phone": phone.to_numpy(),
                    "bad_email": _column(frame, "email").where(bad_email, np.nan).to_numpy(),
                    "bad_phone": _column(frame, "phone").where(bad_phone, np.nan).to_numpy(),
                },
                dtype=object,
            )
        )
    stacked = pd.concat(parts, ignore_index=True)
    unlinkable = stacked["bad_email"].fillna("").astype(str) + "|" + stacked["bad_phone"].fillna("").astype(str)
    records = _Records(stacked[list(KEY_KINDS)], unlinkable, {n: len(tables[n]) for n in PERSON_TABLES if n in tables})
    return records, normalised, invalid_phones, invalid_emails


def _country_column(frame: pd.DataFrame) -> pd.Series | None:
    for column in frame.columns:
        if normalise_label(str(column)) in COUNTRY_COLUMNS:
            return frame[column]
    return None


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return frame[name].astype(object).where(frame[name].notna(), np.nan)
    return pd.Series(np.nan, index=frame.index, dtype=object)


def _ids(values: pd.Series) -> np.ndarray:
    text = values.astype(object).where(values.notna(), np.nan).str.strip()
    return text.where(text != "", np.nan).to_numpy(dtype=object)


def _shared_keys(codes: pd.DataFrame, uniques: dict[str, pd.Index], limit: int) -> dict[str, np.ndarray]:
    """Per contact kind, the key codes seen with more than ``limit`` distinct ids."""
    shared: dict[str, np.ndarray] = {}
    for kind in CONTACT_KINDS:
        pairs = [
            codes.loc[codes[id_kind] >= 0, [kind, id_kind]].set_axis([kind, "id"], axis=1).assign(id_kind=id_kind)
            for id_kind in ID_KINDS
        ]
        both = pd.concat(pairs, ignore_index=True)
        both = both[both[kind] >= 0].drop_duplicates()
        counts = both.groupby(kind).size()
        shared[kind] = counts[counts > limit].index.to_numpy()
    return shared


def _person_ids(n_components: int, key_labels: np.ndarray, key_names: np.ndarray,
                tuple_labels: np.ndarray, fallback: pd.Series) -> np.ndarray:
    """A stable id per component: "P" + a hash of its smallest key (or of its raw keys)."""
    names = pd.Series(np.nan, index=range(n_components), dtype=object)
    order = np.argsort(key_names, kind="stable")
    first = pd.Series(key_labels[order]).drop_duplicates()
    names.iloc[first.to_numpy()] = key_names[order][first.index.to_numpy()]
    # Components without a linkable key: name them by their raw keys (first tuple seen).
    unnamed = names.isna().to_numpy()
    if unnamed.any():
        first_tuple = pd.Series(tuple_labels).drop_duplicates()
        raw_names = pd.Series(np.nan, index=range(n_components), dtype=object)
        raw_names.iloc[first_tuple.to_numpy()] = ("unlinked:" + fallback.iloc[first_tuple.index.to_numpy()]).to_numpy()
        names = names.where(~unnamed, raw_names)
    hashes = pd.util.hash_pandas_object(names.astype(str), index=False).to_numpy()
    return np.char.add("P", np.char.mod("%016x", hashes.astype(np.uint64)))


def link(records: _Records, config: IdentityConfig) -> tuple[np.ndarray, IdentityReport]:
    """Person id per record and a report. Vectorised over distinct key combinations."""
    keys = records.keys
    codes, uniques = {}, {}
    for kind in KEY_KINDS:
        c, u = pd.factorize(keys[kind], use_na_sentinel=True)
        codes[kind], uniques[kind] = c, pd.Index(u, dtype=object)
    code_frame = pd.DataFrame(codes)
    shared = _shared_keys(code_frame, uniques, config.max_ids_per_key)
    linkable = code_frame.copy()
    for kind, bad in shared.items():
        linkable.loc[linkable[kind].isin(bad), kind] = -1
    # Records with the same keys are one node: interactions repeat the same few keys.
    unlinkable_code = pd.factorize(
        records.unlinkable + "|" + keys["email"].where(code_frame["email"].isin(shared["email"]), "").astype(str)
        + "|" + keys["phone"].where(code_frame["phone"].isin(shared["phone"]), "").astype(str)
    )[0]
    signature = linkable.assign(_u=np.where(linkable.eq(-1).all(axis=1), unlinkable_code, -1))
    tuple_of = signature.groupby(list(signature.columns), sort=False).ngroup().to_numpy()
    first_row = pd.Series(np.arange(len(tuple_of))).groupby(tuple_of).first().to_numpy()
    tuples = linkable.iloc[first_row].reset_index(drop=True)
    n_tuples = len(tuples)
    offsets, offset = {}, n_tuples
    for kind in KEY_KINDS:
        offsets[kind] = offset
        offset += len(uniques[kind])
    rows, cols = [], []
    for kind in KEY_KINDS:
        present = tuples[kind].to_numpy() >= 0
        rows.append(np.flatnonzero(present))
        cols.append(tuples[kind].to_numpy()[present] + offsets[kind])
    row_idx, col_idx = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(row_idx), dtype=np.int8), (row_idx, col_idx)), shape=(offset, offset))
    n_components, labels = connected_components(graph, directed=False)
    key_names = np.concatenate(
        [(kind + ":" + pd.Series(np.asarray(uniques[kind], dtype=object)).astype(str)).to_numpy(dtype=object) for kind in KEY_KINDS]
    )
    key_labels = labels[n_tuples:]
    firsts = keys.iloc[first_row].reset_index(drop=True)
    fallback = records.unlinkable.iloc[first_row].reset_index(drop=True)
    for kind in KEY_KINDS:
        fallback = fallback + "|" + firsts[kind].fillna("").astype(str)
    tuple_labels = labels[:n_tuples]
    component_person = _person_ids(n_components, key_labels, key_names, tuple_labels, fallback)
    person = component_person[tuple_labels][tuple_of]
    report = IdentityReport(
        records=len(person),
        persons=int(pd.unique(person).size),
        merged_via=_merged_via(linkable),
        shared_keys=_shared_report(shared, uniques, code_frame),
    )
    return person, report


def _merged_via(linkable: pd.DataFrame) -> dict[str, int]:
    """Records whose key of each kind appears on at least one other record."""
    out = {}
    for kind in KEY_KINDS:
        column = linkable[kind]
        counts = column[column >= 0].value_counts()
        out[kind] = int(column.map(counts).fillna(0).gt(1).sum())
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
          default_region: str | None = None) -> tuple[dict[str, pd.DataFrame], IdentityReport]:
    """Add ``person_id`` to every person table; e-mails and phones come back normalised.

    E-mails become trimmed lower case and phones E.164 where valid; invalid values stay as
    written (nothing is lost) but link nothing. Inputs are not modified.
    """
    present = [n for n in PERSON_TABLES if n in tables]
    if not present or sum(len(tables[n]) for n in present) == 0:
        # Header-only files: still the contract's shape, person_id included.
        empty = {n: tables[n].assign(person_id=pd.Series(dtype=object, index=tables[n].index)) for n in present}
        return dict(tables) | empty, IdentityReport()
    region = (default_region or config.default_phone_region).upper()
    records, normalised, invalid_phones, invalid_emails = _stack(tables, region)
    person, report = link(records, config)
    report.invalid_phones, report.invalid_emails = invalid_phones, invalid_emails
    out = dict(tables)
    start = 0
    for name in present:
        frame = tables[name]
        end = start + len(frame)
        email, phone = normalised[name]
        updated = frame.assign(person_id=person[start:end])
        for column, values in (("email", email), ("phone", phone)):
            if column in frame.columns:
                updated[column] = frame[column].where(values.isna(), values)
        out[name] = updated
        start = end
    return out, report
