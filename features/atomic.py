"""Writing outputs so that no half-written file is ever visible.

Every file Radar produces (validated tables, features, scores, lists, reports) is written
to a temporary file beside its destination and renamed into place: a rename within one
folder is atomic, so a reader sees the old file or the new one, never a torn one, even when
the writer is killed mid-way.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


@contextmanager
def atomic_path(destination: Path) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``destination`` in one step."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent
    )
    os.close(handle)
    temp = Path(temp_name)
    # mkstemp makes the file private (0600); outputs are shared like any file written
    # with open(), so give them ordinary permissions.
    temp.chmod(0o644)
    try:
        yield temp
        os.replace(temp, destination)
    finally:
        temp.unlink(missing_ok=True)


def write_parquet(frame: pd.DataFrame, destination: Path) -> Path:
    """Write a frame as Parquet atomically."""
    with atomic_path(destination) as temp:
        frame.to_parquet(temp)
    return Path(destination)


def write_csv(frame: pd.DataFrame, destination: Path, *, index: bool = False) -> Path:
    """Write a frame as UTF-8 CSV atomically."""
    with atomic_path(destination) as temp:
        frame.to_csv(temp, index=index)
    return Path(destination)


def write_text(text: str, destination: Path) -> Path:
    """Write text (JSON, HTML, Markdown) atomically."""
    with atomic_path(destination) as temp:
        temp.write_text(text, encoding="utf-8")
    return Path(destination)
