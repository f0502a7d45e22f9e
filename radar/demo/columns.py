"""Turning numpy arrays into the text columns a CRM export holds (ids, dates, keys)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from radar.demo.clock import Clock


def ids(prefix: str, numbers: np.ndarray, width: int, valid: np.ndarray | None = None) -> pa.Array:
    """``prefix`` + zero-padded number, e.g. L0000042; null where ``valid`` is False."""
    text = pc.utf8_lpad(pa.array(np.asarray(numbers, dtype=np.int64)).cast(pa.string()), width=width, padding="0")
    out = pc.binary_join_element_wise(prefix, text, "")
    return out if valid is None else _mask(out, valid)


def id_width(n: int, minimum: int) -> int:
    return max(minimum, len(str(n + 2_000_000)))


def _mask(values: pa.Array, valid: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(np.asarray(valid, dtype=bool)), values, pa.scalar(None, values.type))


def timestamps(clock: Clock, days: np.ndarray) -> pa.Array:
    """ISO-8601 text ("2025-03-01T14:22:05"); null where ``days`` is NaN."""
    valid = ~np.isnan(days)
    stamps = pa.array(clock.to_datetime64(np.where(valid, days, 0.0)))
    text = pc.replace_substring(stamps.cast(pa.string()), " ", "T", max_replacements=1)
    return text if valid.all() else _mask(text, valid)


def dates(clock: Clock, day_index: np.ndarray) -> pa.Array:
    return pa.array(clock.dates()[day_index]).cast(pa.string())


def numbers(values: np.ndarray) -> pa.Array:
    """Float column with NaN as null (so CSV holds an empty field, not "nan")."""
    values = np.asarray(values, dtype=np.float64)
    return pa.array(values, mask=np.isnan(values))


def labels(options: tuple[str, ...], index: np.ndarray) -> pa.Array:
    """Category text from indexes; negative index means missing."""
    index = np.asarray(index, dtype=np.int64)
    out = pa.array(options, pa.string()).take(pa.array(np.maximum(index, 0)))
    return out if (index >= 0).all() else _mask(out, index >= 0)


def keyed(variants: pa.Array, n_owners: int, owner: np.ndarray, variant: np.ndarray, valid: np.ndarray) -> pa.Array:
    """Pick variant ``variant`` of owner ``owner`` from a variant-major array; null if not valid."""
    index = np.asarray(variant, dtype=np.int64) * n_owners + np.asarray(owner, dtype=np.int64)
    return pc.take(variants, pa.array(np.where(valid, index, 0), mask=~np.asarray(valid, dtype=bool)))
