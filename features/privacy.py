"""Keeping personal data out of logs, errors and reports."""

from __future__ import annotations

import hashlib

PERSONAL_COLUMNS: tuple[str, ...] = ("email", "phone", "name", "first_name", "last_name")


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


def pseudonymise(value: str, salt: str) -> str:
    """A salted one-way hash of a personal value, for hashing columns at ingest."""
    return hashlib.sha256(f"{salt}:{value}".encode("utf-8")).hexdigest()[:16]
