"""How carefully people fill in the lead form: their name, a throwaway inbox, a made-up phone.

Drawn from a random stream of its own (``np.random.default_rng([seed, CONTACT_STREAM])``),
so the rest of the world is the same draw for draw whether or not contact details exist.
People who will never buy are the careless ones, the least keen of them most of all: a
lead who types ``x9@mailinator.com`` and ``000000`` was never going to be reached. Buyers
give a real inbox (they get an invoice) and a real number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from radar.demo import vocab
from radar.demo.keys import Identity, email_variants
from radar.demo.people import People

#: The stream number of the contact draws (any constant: it only has to stay the same).
CONTACT_STREAM = 5_2017
#: Intent below which a non-buyer counts as a tyre-kicker.
CARELESS_INTENT = -0.5
#: (tyre-kickers, other non-buyers, buyers): consumers with a throwaway e-mail address.
DISPOSABLE_SHARE = (0.20, 0.04, 0.0)
#: The same for a made-up phone number on the lead form (those people give no real phone).
JUNK_PHONE_SHARE = (0.15, 0.03, 0.0)
#: The same for a lead form left without a name.
NO_NAME_SHARE = (0.35, 0.10, 0.03)
#: People who give their first name only.
FIRST_NAME_ONLY_SHARE = 0.15
#: Throwaway inbox providers (all on the disposable-email-domains list Radar reads).
DISPOSABLE_DOMAINS: tuple[str, ...] = (
    "mailinator.com", "yopmail.com", "guerrillamail.com", "10minutemail.com", "trashmail.com", "sharklasers.com",
)
#: Phone numbers typed to get past a form: invalid in every demo country.
JUNK_PHONES: tuple[str, ...] = ("000000", "0000000000", "123456", "000 000 0000", "99999", "+44 0000 000000")


@dataclass
class ContactDetails:
    """Per person: the name on the lead form (None: left blank) and the made-up phone (None: real)."""

    name: pa.Array
    junk_phone: pa.Array
    disposable: np.ndarray  # bool

    @property
    def has_junk_phone(self) -> np.ndarray:
        return pc.is_valid(self.junk_phone).to_numpy(zero_copy_only=False)


def _share(people: People, shares: tuple[float, float, float]) -> np.ndarray:
    careless = ~people.will_convert & (people.intent < CARELESS_INTENT)
    return np.where(people.will_convert, shares[2], np.where(careless, shares[0], shares[1]))


def _names(rng: np.random.Generator, emails: pa.Array, n: int) -> pa.Array:
    """The name behind each personal address ("ana.ruiz123@…" is Ana Ruiz, "anar123@…" Ana
    R.), first name only for some; random names where the address says none."""
    first = pc.utf8_capitalize(pa.array(vocab.FIRST_NAMES).take(pa.array(rng.integers(0, len(vocab.FIRST_NAMES), n))))
    last = pc.utf8_capitalize(pa.array(vocab.LAST_NAMES).take(pa.array(rng.integers(0, len(vocab.LAST_NAMES), n))))
    only_first = pa.array(rng.random(n) < FIRST_NAME_ONLY_SHARE)
    dotted = pc.extract_regex(emails, r"^(?P<first>[a-z]+)\.(?P<last>[a-z]+)\d+@")
    initial = pc.extract_regex(emails, r"^(?P<first>[a-z]+)(?P<last>[a-z])\d+@")
    for parts, suffix in ((initial, "."), (dotted, "")):
        found = pc.is_valid(parts)
        first = pc.if_else(found, pc.utf8_capitalize(pc.struct_field(parts, "first")), first)
        last = pc.if_else(found, pc.binary_join_element_wise(pc.utf8_upper(pc.struct_field(parts, "last")) if suffix
                                                             else pc.utf8_capitalize(pc.struct_field(parts, "last")),
                                                             suffix, ""), last)
    return pc.if_else(only_first, first, pc.binary_join_element_wise(first, last, " "))


def draw_contact(rng: np.random.Generator, people: People, ident: Identity) -> ContactDetails:
    """Names, throwaway addresses and made-up phones; rewrites the throwaway people's e-mail
    in ``ident`` (it is their address everywhere, so every table still links them)."""
    n = people.n
    own_keys = (ident.shared_email < 0) & (ident.shared_phone < 0)
    disposable = own_keys & ~people.b2b & (rng.random(n) < _share(people, DISPOSABLE_SHARE))
    junk = own_keys & ident.has_phone & (rng.random(n) < _share(people, JUNK_PHONE_SHARE))
    blank = rng.random(n) < _share(people, NO_NAME_SHARE)
    full = _names(rng, ident.email_canonical, n)
    junk_pick = pa.array(JUNK_PHONES).take(pa.array(rng.integers(0, len(JUNK_PHONES), n)))
    domain = pa.array(DISPOSABLE_DOMAINS).take(pa.array(rng.integers(0, len(DISPOSABLE_DOMAINS), n)))
    if disposable.any():
        # The local part stays, and with it the person's unique number: still one address each.
        local = pc.extract_regex(ident.email_canonical, r"^(?P<local>[^@]+)@")
        throwaway = pc.binary_join_element_wise(pc.struct_field(local, "local"), domain, "@")
        ident.email_canonical = pc.if_else(pa.array(disposable), throwaway, ident.email_canonical)
        ident.email = email_variants(ident.email_canonical)
    none = pa.scalar(None, pa.string())
    return ContactDetails(
        name=pc.if_else(pa.array(blank), none, full),
        junk_phone=pc.if_else(pa.array(junk), junk_pick, none),
        disposable=disposable,
    )
