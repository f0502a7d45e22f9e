"""Counts in words, as Radar's reasons, command output and report write them.

``plural(1, "day")`` is "1 day", ``plural(3, "day")`` "3 days", ``plural(1250, "row")``
"1,250 rows"; irregular words give their plural (``plural(2, "person", "people")``). Only
exactly one is singular: "0 days", "1.5 days".
"""

from __future__ import annotations

import math


def count_text(count: float) -> str:
    """A count as a person writes it: 6, 1,250, 2.5 (one decimal when not whole)."""
    value = float(count)
    if math.isnan(value):
        return "unknown"
    return f"{value:,.0f}" if value == round(value) else f"{value:,.1f}"


def noun(count: float, singular: str, plural_form: str | None = None) -> str:
    """The word alone, singular for exactly one: ``noun(1, "row")`` is "row"."""
    return singular if float(count) == 1 else (plural_form or singular + "s")


def plural(count: float, singular: str, plural_form: str | None = None) -> str:
    """``count`` and the word, singular for exactly one (see the module doc)."""
    return f"{count_text(count)} {noun(count, singular, plural_form)}"
