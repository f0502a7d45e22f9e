"""Keeping personal data out of logs, errors and reports."""

from __future__ import annotations

import hashlib
import hmac
import re

#: Columns holding personal data, as normalised labels (``"First Name"`` → ``first_name``).
PERSONAL_COLUMNS: tuple[str, ...] = (
    "email", "phone", "name", "first_name", "last_name", "full_name", "given_name", "family_name",
    "surname", "contact_name", "lead_name", "firstname", "lastname", "fullname",
)
_PHONE_LIKE = re.compile(r"[+\d\s\-./()]+")


def mask(value: object) -> str:
    """A short, stable stand-in for a personal value: safe to print, still tells two apart.

    ``ana@shop.com`` becomes ``a***@shop.com#1f3a`` and a phone ``+44***#9c0e``: enough for
    an operator to recognise a pattern (a shared switchboard, a role address) without
    revealing who it is.
    """
    text = str(value)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:4]
    if "@" in text:
        local, _, domain = text.partition("@")
        return f"{local[:1]}***@{domain}#{digest}"
    return f"{text[:3]}***#{digest}"


def redact(value: object) -> str:
    """A value as an error message may quote it: masked (see :func:`mask`) when it looks like
    an e-mail (has an ``@``) or a phone number (only phone characters, seven digits or more),
    as written otherwise, so ``unknown person_id 'P1f3a...'`` still says which id."""
    text = str(value)
    if "@" in text or (_PHONE_LIKE.fullmatch(text.strip()) and sum(c.isdigit() for c in text) >= 7):
        return mask(text)
    return text


def pseudonymise(value: str, secret: str) -> str:
    """A keyed one-way hash (HMAC-SHA256, 64 bits shown) of a personal value, for hashing
    columns at ingest. Without the secret, nobody can tell which e-mail a hash stands for by
    hashing a list of e-mails; with the same secret, the same value always gives the same hash."""
    return hmac.new(secret.encode("utf-8"), value.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def hash_form(value: object) -> str:
    """The form a value is hashed in: trimmed and case-folded, so ``" Ana@Shop.com"`` and
    ``"ana@shop.com"`` hash alike. E-mails and phones arrive already normalised by identity
    linking (lower case, E.164); this folds what is left (names, invalid values)."""
    return str(value).strip().casefold()
