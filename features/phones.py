"""Reading written phone numbers with phonenumbers: the E.164 form and the kind of number.

This is the slowest part of loading a large CRM (~30 µs per distinct number and region, a
million of them at 1 M people), so it is kept apart from the linking that uses it: a load
spreads the parsing over worker processes, which import only this module.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import phonenumbers

#: phonenumbers' type of a number it does not hold valid.
UNKNOWN_TYPE: int = phonenumbers.PhoneNumberType.UNKNOWN
#: Below this many numbers, starting a worker costs more than it saves.
PARALLEL_FROM = 50_000

# Numbers from many regions use more metadata patterns than the re module's own cache holds;
# without this phonenumbers keeps compiling them again (older versions lack it: only slower).
if hasattr(phonenumbers, "enable_pattern_cache"):
    phonenumbers.enable_pattern_cache()


def parse_phone(raw: str, region: str) -> tuple[str | None, int]:
    """A written number's E.164 form (None where invalid) and its phonenumbers type.

    One parse and one type lookup give both: phonenumbers' ``is_valid_number`` is exactly
    "the type is not UNKNOWN" (both match the number against its own region's metadata).
    ``region`` "" reads only numbers written with their country code.
    """
    try:
        number = phonenumbers.parse(raw, region or None)
    except phonenumbers.NumberParseException:
        return None, UNKNOWN_TYPE
    return _facts(number)


def _facts(number: phonenumbers.PhoneNumber) -> tuple[str | None, int]:
    kind = phonenumbers.number_type(number)
    if kind == UNKNOWN_TYPE:
        return None, UNKNOWN_TYPE
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), kind


def parse_phones(pairs: Sequence[tuple[str, str]]) -> list[tuple[str | None, int]]:
    """:func:`parse_phone` of each (written number, region).

    The same number is often written several ways ("+44 20…", "020…" in GB); the type and
    E.164 form depend only on the parsed country code and national significant number, so
    each of those is looked up once.
    """
    known: dict[tuple[int, int, bool, int], tuple[str | None, int]] = {}
    out: list[tuple[str | None, int]] = []
    for raw, region in pairs:
        try:
            number = phonenumbers.parse(raw, region or None)
        except phonenumbers.NumberParseException:
            out.append((None, UNKNOWN_TYPE))
            continue
        if not number.national_number:
            out.append(_facts(number))
            continue
        key = (number.country_code, number.national_number, bool(number.italian_leading_zero),
               number.number_of_leading_zeros if number.number_of_leading_zeros is not None else 1)
        found = known.get(key)
        if found is None:
            found = known[key] = _facts(number)
        out.append(found)
    return out


def phone_workers(configured: int) -> int:
    """Processes to parse with: the configured number, 0 meaning one per core."""
    return configured if configured > 0 else max(1, os.cpu_count() or 1)


def parse_phones_in_parallel(pairs: Sequence[tuple[str, str]], workers: int) -> list[tuple[str | None, int]]:
    """:func:`parse_phones` split over ``workers`` processes (this one included)."""
    return Parsing(pairs, workers, here=True).result()


class Parsing:
    """:func:`parse_phones` of ``pairs`` under way in worker processes, collected by
    :meth:`result`.

    Each worker is ``python -m features.phones``, fed its share through a pipe: unlike
    multiprocessing's spawn it never runs the caller's main script again (a script calling
    ``load_crm`` without a main guard would), and unlike fork it copies none of the tables.
    With ``here`` this process parses one share itself in :meth:`result`; without it every
    share goes to ``workers - 1`` workers, so that this process can do other work on its
    own core meanwhile (a load validates its next table while the numbers of the last one
    are parsed on the other cores). Few pairs, or one worker, are parsed here in
    :meth:`result`.
    """

    def __init__(self, pairs: Sequence[tuple[str, str]], workers: int, here: bool = True) -> None:
        self._pairs: Sequence[tuple[str, str]] | None = pairs
        self._parts: list[list[tuple[str, str]]] = []
        self._started: list[subprocess.Popen] = []
        self._replies: list[bytes] = []
        self._threads: list[threading.Thread] = []
        if workers <= 1 or len(pairs) < PARALLEL_FROM:
            return
        # Away from this process, one worker fewer: this one goes on working on its core.
        size = -(-len(pairs) // (workers if here else workers - 1))
        self._parts = [list(pairs[i:i + size]) for i in range(0, len(pairs), size)]
        self._pairs = None
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                            os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        away = self._parts[1:] if here else self._parts
        self._started = [subprocess.Popen([sys.executable, "-m", "features.phones"], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, env=env) for _ in away]
        self._replies = [b""] * len(away)
        self._threads = [threading.Thread(target=self._exchange, args=(i, part), daemon=True)
                         for i, part in enumerate(away)]
        for thread in self._threads:
            thread.start()

    def _exchange(self, i: int, part: list[tuple[str, str]]) -> None:
        self._replies[i] = self._started[i].communicate(pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL))[0]

    def result(self) -> list[tuple[str | None, int]]:
        """The parses, in the order of the pairs (waiting for the workers)."""
        if self._pairs is not None:
            return parse_phones(self._pairs)
        here = len(self._parts) - len(self._started)
        out = parse_phones(self._parts[0]) if here else []
        for thread in self._threads:
            thread.join()
        for process, reply, part in zip(self._started, self._replies, self._parts[here:]):
            # A worker that failed (killed, no memory) costs time, not the load: parse its share here.
            out += pickle.loads(reply) if process.returncode == 0 and reply else parse_phones(part)
        return out


def _serve() -> None:
    """Worker side: a pickled list of pairs on stdin, their parses pickled on stdout."""
    pairs = pickle.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(pickle.dumps(parse_phones(pairs), protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    _serve()
