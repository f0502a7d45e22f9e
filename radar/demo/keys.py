"""Personal keys and how people write them: e-mails, phones, their messy variants, shared keys.

Each person has one personal e-mail and (usually) one personal phone, unique in the world.
Rows do not carry the canonical form: they carry one of several *variants* (case and
whitespace for e-mails; international and national layouts for phones), all of which
normalise back to the canonical key. Variants are laid out variant-major: variant ``v`` of
person ``i`` is element ``v * n + i`` of the variants array, so a column is one ``take``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from radar.demo import vocab
from radar.demo.people import NONE, People

#: E-mail variants: canonical, Capitalised, UPPER, leading space, trailing spaces, both.
EMAIL_VARIANT_P = np.array([0.72, 0.10, 0.05, 0.05, 0.05, 0.03])
#: Phone variants 0-3 are international (parse anywhere); 4-6 are national (need the country).
PHONE_INTERNATIONAL = 4
PHONE_VARIANT_P = np.array([0.30, 0.25, 0.08, 0.07, 0.15, 0.08, 0.07])
#: Share of B2B people who give a shared key (switchboard phone or role address).
SHARED_KEY_SHARE = 0.01
#: People per shared key, roughly: well above the unifier's max_ids_per_key.
SHARED_KEY_GROUP = 12


@dataclass
class Identity:
    n: int
    email: pa.Array  # n * len(EMAIL_VARIANT_P) variants
    phone: pa.Array  # n * len(PHONE_VARIANT_P) variants
    email_canonical: pa.Array
    phone_canonical: pa.Array
    company: np.ndarray  # company index or NONE
    has_email: np.ndarray  # bool: gives an e-mail at all
    has_phone: np.ndarray  # bool: gives a phone at all
    #: For people who gave a shared key on their lead: index into shared_keys, else NONE.
    shared_email: np.ndarray
    shared_phone: np.ndarray
    shared_email_variants: pa.Array  # n_shared_emails * len(EMAIL_VARIANT_P)
    shared_phone_variants: pa.Array  # n_shared_phones * len(PHONE_VARIANT_P)
    shared_keys: list[tuple[str, str, int]]  # (canonical key, kind, n_people)


def _unique_numbers(n: int, span: int, salt: int) -> np.ndarray:
    """``n`` distinct pseudo-random integers in [0, span): an affine permutation of 0..n-1.

    Cheap and collision-free as long as n <= span, unlike drawing and de-duplicating.
    """
    if n > span:
        raise ValueError(f"cannot draw {n} distinct numbers below {span}")
    multiplier = 2_654_435_761 % span or 1
    while np.gcd(multiplier, span) != 1:
        multiplier += 1
    idx = np.arange(n, dtype=np.int64)
    return (idx * multiplier + salt) % span


def _digits(values: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(pa.array(values).cast(pa.string()), width=width, padding="0")


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _take(options: tuple[str, ...], index: np.ndarray) -> pa.Array:
    return pa.array(options).take(pa.array(index))


def assign_companies(rng: np.random.Generator, people: People) -> np.ndarray:
    """Businesses work at companies of about four people; returns company index per person."""
    b2b = np.flatnonzero(people.b2b)
    n_companies = max(1, len(b2b) // 4)
    company = np.full(people.n, NONE, dtype=np.int64)
    company[b2b] = rng.integers(0, n_companies, len(b2b))
    return company


def pick_shared(rng: np.random.Generator, people: People, company: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Choose the ~1% of businesses whose lead carries a shared key; group them by company.

    Everyone in a group is moved to the group's company and country, because a switchboard
    or info@ address belongs to one company. Returns (shared_email_group, shared_phone_group).
    """
    b2b = np.flatnonzero(people.b2b)
    n_shared = int(round(SHARED_KEY_SHARE * len(b2b)))
    email_group = np.full(people.n, NONE, dtype=np.int64)
    phone_group = np.full(people.n, NONE, dtype=np.int64)
    if n_shared < 2 * 6:  # a world too small for groups above max_ids_per_key
        n_shared = min(len(b2b), 2 * 6)
    if n_shared < 2:
        return email_group, phone_group
    chosen = rng.choice(b2b, size=n_shared, replace=False)
    half = n_shared // 2
    for target, members in ((email_group, chosen[:half]), (phone_group, chosen[half:])):
        n_groups = max(1, len(members) // SHARED_KEY_GROUP)
        group = np.arange(len(members)) % n_groups
        target[members] = group
        # The group's first member decides the company and country for all of them.
        first = members[:n_groups]
        company[members] = company[first][group]
        people.country[members] = people.country[first][group]
    # Make the two kinds use different companies so no company has both.
    company[phone_group >= 0] += company.max() + 1
    return email_group, phone_group


def company_domains(rng: np.random.Generator, n_companies: int, country_of_company: np.ndarray) -> pa.Array:
    word = rng.integers(0, len(vocab.COMPANY_WORDS), n_companies)
    suffix = rng.integers(0, len(vocab.COMPANY_SUFFIXES), n_companies)
    return _join(
        _take(vocab.COMPANY_WORDS, word),
        "-",
        _take(vocab.COMPANY_SUFFIXES, suffix),
        pa.array(np.arange(n_companies) + 1).cast(pa.string()),
        ".",
        _take(vocab.COUNTRY_TLD, country_of_company),
    )


def personal_emails(rng: np.random.Generator, people: People, company: np.ndarray, domains: pa.Array) -> pa.Array:
    n = people.n
    first = _take(vocab.FIRST_NAMES, rng.integers(0, len(vocab.FIRST_NAMES), n))
    last = _take(vocab.LAST_NAMES, rng.integers(0, len(vocab.LAST_NAMES), n))
    span = 10 ** max(6, len(str(n)) + 1)
    number = pa.array(_unique_numbers(n, span, int(rng.integers(0, span)))).cast(pa.string())
    provider = _take(vocab.EMAIL_PROVIDERS, rng.integers(0, len(vocab.EMAIL_PROVIDERS), n))
    work = domains.take(pa.array(np.maximum(company, 0)))
    domain = pc.if_else(pa.array(people.b2b), work, provider)
    dotted = rng.random(n) < 0.6
    local = pc.if_else(pa.array(dotted), _join(first, ".", last), _join(first, pc.utf8_slice_codeunits(last, 0, 1)))
    return _join(local, number, "@", domain)


def email_variants(canonical: pa.Array) -> pa.Array:
    capital = pc.utf8_capitalize(canonical)
    return pa.concat_arrays(
        [
            canonical,
            capital,
            pc.utf8_upper(canonical),
            _join(" ", canonical),
            _join(canonical, "  "),
            _join(" ", capital, " "),
        ]
    )


def _national_numbers(country: np.ndarray, number: np.ndarray, prefix_pick: np.ndarray, landline: bool) -> pa.Array:
    """National significant numbers (no trunk prefix) for each row's country."""
    out = pa.nulls(len(country), pa.string())
    for ci, spec in enumerate(vocab.COUNTRIES):
        rows = country == ci
        if landline:
            prefixes, width = (spec.landline_prefix,), spec.landline_digits
        else:
            prefixes, width = spec.mobile_prefixes, spec.mobile_digits
        # US exchange codes, and the GB ranges that are really allocated, start with 2-9.
        floor = 2 * 10 ** (width - 1) if spec.code in ("GB", "US") else 0
        local = floor + number % (10**width - floor)
        prefix = _take(prefixes, prefix_pick % len(prefixes))
        nsn = _join(prefix, _digits(local, width))
        out = pc.if_else(pa.array(rows), nsn, out)
    return out


def _grouped(nsn: pa.Array, country: np.ndarray, landline: bool, sep: str) -> pa.Array:
    """The national number split into the country's usual digit groups."""
    out = pa.nulls(len(country), pa.string())
    for ci, spec in enumerate(vocab.COUNTRIES):
        groups = spec.landline_groups if landline else spec.groups
        bounds = np.cumsum((0,) + groups)
        parts = [pc.utf8_slice_codeunits(nsn, int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        # Long German numbers keep their tail in the last group.
        parts[-1] = pc.utf8_slice_codeunits(nsn, int(bounds[-2]), 99)
        joined = pc.binary_join_element_wise(*parts, sep)
        out = pc.if_else(pa.array(country == ci), joined, out)
    return out


def phone_variants(country: np.ndarray, nsn: pa.Array, landline: bool) -> tuple[pa.Array, pa.Array]:
    """(variants, canonical E.164) for national numbers ``nsn`` of people in ``country``."""
    cc = _take(tuple(c.calling_code for c in vocab.COUNTRIES), country)
    trunk = _take(tuple(c.trunk for c in vocab.COUNTRIES), country)
    has_trunk = pa.array(np.array([c.trunk != "" for c in vocab.COUNTRIES])[country])
    is_us = pa.array(country == vocab.COUNTRY_CODES.index("US"))
    spaced = _grouped(nsn, country, landline, " ")
    dashed = _grouped(nsn, country, landline, "-")
    canonical = _join("+", cc, nsn)
    # Split off the first group to put it in brackets: "(020) 7946-0018".
    split = pc.extract_regex(_grouped(nsn, country, landline, "|"), r"^(?P<head>[^|]*)\|(?P<tail>.*)$")
    head_part = pc.struct_field(split, "head")
    tail_dash = pc.replace_substring(pc.struct_field(split, "tail"), "|", "-")
    variants = [
        canonical,  # +447712345678
        _join("+", cc, " ", spaced),  # +44 7712 345678
        # 0044 7712 345678; the US dials 011 abroad, so Americans write +1-415-234-5678.
        pc.if_else(is_us, _join("+", cc, "-", dashed), _join("00", cc, " ", spaced)),
        # +44 (0)7712 345678 where a trunk prefix exists, else +34 612-345-678
        pc.if_else(has_trunk, _join("+", cc, " (", trunk, ")", spaced), _join("+", cc, " ", dashed)),
        _join(trunk, spaced),  # 07712 345678 / 612 345 678
        _join("(", trunk, head_part, ") ", tail_dash),  # (020) 7946-0018 / (415) 234-5678
        _join(trunk, nsn),  # 07712345678
    ]
    return pa.concat_arrays(variants), canonical


def _first_member(group: np.ndarray, n_groups: int) -> np.ndarray:
    members = np.flatnonzero(group >= 0)
    _, first = np.unique(group[members], return_index=True)
    return members[first][:n_groups].astype(np.int64)


def build_identity(rng: np.random.Generator, people: People) -> Identity:
    """Personal and shared keys for everyone, plus who withholds which key."""
    company = assign_companies(rng, people)
    shared_email, shared_phone = pick_shared(rng, people, company)
    n_companies = int(company.max()) + 1 if (company >= 0).any() else 1
    company_country = np.zeros(n_companies, dtype=np.int64)
    company_country[company[company >= 0]] = people.country[company >= 0]
    domains = company_domains(rng, n_companies, company_country)

    email = personal_emails(rng, people, company, domains)
    n = people.n
    numbers = _unique_numbers(n, 8 * 10**6 if n <= 8 * 10**6 else 10**9, int(rng.integers(0, 10**6)))
    nsn = _national_numbers(people.country, numbers, rng.integers(0, 60, n), landline=False)
    phones, phone_canonical = phone_variants(people.country, nsn, landline=False)

    # Shared keys, one per group: info@/sales@ of the company, or its switchboard.
    n_email_groups = int(shared_email.max()) + 1
    n_phone_groups = int(shared_phone.max()) + 1
    e_first = _first_member(shared_email, n_email_groups)
    p_first = _first_member(shared_phone, n_phone_groups)
    role = _take(("info", "sales", "hello", "office"), np.arange(n_email_groups) % 4)
    role_canonical = _join(role, "@", domains.take(pa.array(company[e_first])))
    board_country = people.country[p_first]
    board_nsn = _national_numbers(board_country, _unique_numbers(n_phone_groups, 10**6, 17), np.zeros(n_phone_groups, dtype=np.int64), landline=True)
    board_variants, board_canonical = phone_variants(board_country, board_nsn, landline=True)
    shared_keys = [
        (k, "role_email", int((shared_email == g).sum())) for g, k in enumerate(role_canonical.to_pylist())
    ] + [
        (k, "switchboard_phone", int((shared_phone == g).sum())) for g, k in enumerate(board_canonical.to_pylist())
    ]

    has_phone = (rng.random(n) < 0.8) | (shared_phone >= 0)
    # People who never give an e-mail: only some leads who never buy (decided by caller).
    has_email = np.ones(n, dtype=bool)
    return Identity(
        n=n,
        email=email_variants(email),
        phone=phones,
        email_canonical=email,
        phone_canonical=phone_canonical,
        company=company,
        has_email=has_email,
        has_phone=has_phone,
        shared_email=shared_email,
        shared_phone=shared_phone,
        shared_email_variants=email_variants(role_canonical),
        shared_phone_variants=board_variants,
        shared_keys=shared_keys,
    )
