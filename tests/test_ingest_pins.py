"""``load_crm`` returns exactly the pinned tables, origins, rejects and report.

The pins (tests/fixtures/ingest_pins.json) were written by ``tests/ingest_pins.py`` before
ingest was made faster; every speed-up must leave them as they are. A failure names the
case, the frame and the columns that differ.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest_pins import PINS, cases, fingerprint, load_case

PINNED = json.loads(PINS.read_text(encoding="utf-8"))


def test_every_case_is_pinned() -> None:
    assert sorted(PINNED) == sorted(case.name for case in cases())


def _differences(got: dict, pinned: dict) -> list[str]:
    out = []
    for part in ("tables", "origins"):
        if sorted(got[part]) != sorted(pinned[part]):
            out.append(f"{part}: {sorted(got[part])} != pinned {sorted(pinned[part])}")
            continue
        out += [f"{part}.{name}: {d}" for name in pinned[part] for d in _frame_differences(got[part][name], pinned[part][name])]
    out += [f"rejects: {d}" for d in _frame_differences(got["rejects"], pinned["rejects"])]
    if got["report"] != pinned["report"]:
        out.append(f"report: {json.dumps(got['report'])[:2000]} != pinned {json.dumps(pinned['report'])[:2000]}")
    return out


def _frame_differences(got: dict, pinned: dict) -> list[str]:
    if got["rows"] != pinned["rows"] or got["columns"] != pinned["columns"]:
        return [f"{got['rows']} rows {got['columns']} != pinned {pinned['rows']} rows {pinned['columns']}"]
    return [f"column {c}: dtype {got['dtypes'][c]} (pinned {pinned['dtypes'][c]})" if got["dtypes"][c] != pinned["dtypes"][c]
            else f"column {c}: values differ" for c in pinned["columns"]
            if (got["dtypes"][c], got["digests"][c]) != (pinned["dtypes"][c], pinned["digests"][c])]


@pytest.mark.parametrize("case", cases(), ids=lambda case: case.name)
def test_load_crm_gives_the_pinned_frames_and_report(case, tmp_path: Path) -> None:
    got = fingerprint(load_case(case, tmp_path))
    assert not _differences(got, PINNED[case.name]), "\n".join(_differences(got, PINNED[case.name]))


def test_a_changed_value_is_caught(tmp_path: Path) -> None:
    # The comparison itself must see a one-cell change in one column, and name that column.
    result = load_case(cases()[0], tmp_path)
    leads = result.data.leads
    leads.loc[leads.index[0], "email"] = "someone.else@example.org"
    got = fingerprint(result)
    assert _differences(got, PINNED[cases()[0].name]) == ["tables.leads: column email: values differ"]


def test_digests_tell_apart_what_a_frame_could_confuse() -> None:
    import numpy as np
    import pandas as pd

    from ingest_pins import column_digest

    text = [["ab", "c"], ["a", "bc"], ["ab", None], ["ab", ""], ["c", "ab"]]
    assert len({column_digest(pd.Series(v, dtype="str")) for v in text}) == len(text)
    assert column_digest(pd.Series(["ab", None], dtype=object)) == column_digest(pd.Series(["ab", None], dtype="str"))
    numbers = [[1.0, np.nan], [1.0, 0.0], [np.nan, 1.0]]
    assert len({column_digest(pd.Series(v)) for v in numbers}) == len(numbers)
    times = pd.Series(pd.to_datetime(["2024-01-01", None]))
    assert column_digest(times) != column_digest(times.fillna(pd.Timestamp("2024-01-01")))
