"""Coercion and contract checks on tiny hand-made frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.contract import TABLES
from features.io import RawTable
from features.mapping import Mapping, TableMapping
from features.validation import contract_schema, parse_datetimes, parse_numbers, validate_tables


def _raw(frame: pd.DataFrame, name: str = "x.csv") -> RawTable:
    frame = frame.astype(str).replace("nan", "")
    return RawTable(Path(name), frame, pd.Series(np.nan, index=frame.index, dtype=object))


def _validate(tables: dict[str, pd.DataFrame], mapping: Mapping | None = None):
    raws = {name: [_raw(frame, f"{name}.csv")] for name, frame in tables.items()}
    return validate_tables(raws, mapping or Mapping(), Path("."))


def test_dates_mixed_formats_offsets_and_words() -> None:
    values = pd.Series(["2024-03-01", "2024-03-01T12:00:00+02:00", "01/02/2024", "1709294400",
                        "3 March 2024", "today", "yesterday", "3", "1850-01-01", None])
    parsed, failed = parse_datetimes(values, ["%d/%m/%Y"], dayfirst=False)
    assert parsed.dtype == np.dtype("datetime64[ns]")
    assert parsed.iloc[:5].tolist() == [pd.Timestamp("2024-03-01"), pd.Timestamp("2024-03-01 10:00"),
                                        pd.Timestamp("2024-02-01"), pd.Timestamp("2024-03-01 12:00"),
                                        pd.Timestamp("2024-03-03")]
    assert failed.tolist() == [False] * 5 + [True] * 4 + [False]


#: Strings on the edge of the plain ISO shapes that Arrow reads without pandas.
ISO_EDGES = ["2024-03-01T10:00:00", "2024-03-01 10:00:00", "2024-03-01", "2024-02-29", "2023-02-29",
             "2025-02-30T10:00:00", "2024-13-01", "2024-00-10", "2024-01-00", "2024-01-01T24:00:00",
             "2024-01-01T23:59:60", "2024-01-01T10:60:00", "1949-12-31T23:59:59", "1950-01-01T00:00:00",
             "2100-12-31T23:59:59", "2101-01-01", "0099-01-01T00:00:00", "2024-1-01T10:00:00",
             "2024-01-01T10:00:00.5", "2024-01-01T10:00:00Z", "2024-01-01T10:00:00xyz", "n/a", None]


@pytest.mark.parametrize("dtype", ["str", object])
def test_plain_iso_dates_read_as_the_full_parser_reads_them(dtype: object) -> None:
    from features.validation import _parse_by_distinct

    values = pd.Series(ISO_EDGES, dtype=dtype)
    parsed, failed = parse_datetimes(values, [], dayfirst=False)
    full, full_failed = _parse_by_distinct(values, [], dayfirst=False)
    assert parsed.dtype == full.dtype == np.dtype("datetime64[ns]")
    assert parsed.equals(full) and failed.tolist() == full_failed.tolist()
    by_text = dict(zip(ISO_EDGES, parsed))
    assert by_text["2024-02-29"] == pd.Timestamp("2024-02-29") and by_text["2024-03-01 10:00:00"] == pd.Timestamp("2024-03-01 10:00")
    # Days that do not exist and years outside the plausible range are not moved to a real day.
    assert failed[ISO_EDGES.index("2025-02-30T10:00:00")] and failed[ISO_EDGES.index("2023-02-29")]
    assert failed[ISO_EDGES.index("1949-12-31T23:59:59")] and not failed[ISO_EDGES.index("1950-01-01T00:00:00")]


def test_plain_iso_dates_read_from_their_digits_match_the_full_parser_on_random_dates() -> None:
    """Random dates in every plain ISO shape, real and impossible (months 00-13, days 00-32,
    hours to 24, minutes and seconds to 60, years either side of the plausible range), more
    rows than one block and shapes mixed within blocks: read as the full parser reads them."""
    from features.validation import _DATE_BLOCK, _parse_by_distinct

    rng = np.random.default_rng(7)
    n = _DATE_BLOCK + 7_000

    def two(high: int) -> np.ndarray:
        return np.char.zfill(rng.integers(0, high + 1, n).astype(str), 2)

    year = rng.integers(1940, 2111, n).astype(str)
    day = np.char.add(np.char.add(np.char.add(np.char.add(year, "-"), two(13)), "-"), two(32))
    clock = np.char.add(np.char.add(np.char.add(np.char.add(two(24), ":"), two(60)), ":"), two(60))
    shape = rng.integers(0, 3, n)
    text = np.where(shape == 0, np.char.add(np.char.add(day, "T"), clock),
                    np.where(shape == 1, np.char.add(np.char.add(day, " "), clock), day))
    values = pd.Series(text.tolist(), dtype="str")
    parsed, failed = parse_datetimes(values, [], dayfirst=False)
    full, full_failed = _parse_by_distinct(values, [], dayfirst=False)
    assert parsed.equals(full) and failed.tolist() == full_failed.tolist()
    assert 0.2 < failed.mean() < 0.9  # both real and impossible dates were drawn


def test_blocks_of_iso_dates_read_in_place_as_the_full_parser_reads_them() -> None:
    """Blocks of real dates of one width (read back to back), and blocks where a value of
    that width is in another shape, a missing value or a longer one sits among them (read
    value by value): as the full parser reads them."""
    import pyarrow

    from features.validation import _DATE_BLOCK, _parse_by_distinct, _plain_iso_block

    moments = pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(_DATE_BLOCK) * 7919, unit="s")
    stamps = moments.strftime("%Y-%m-%dT%H:%M:%S").to_numpy(dtype=object)
    stamps[::3] = moments[::3].strftime("%Y-%m-%d %H:%M:%S")
    days = moments.strftime("%Y-%m-%d").to_numpy(dtype=object)
    mixed = stamps.copy()
    mixed[5], mixed[9], mixed[11], mixed[13] = "2024/03/01T10:00:00", "2024-03-01T10:0a:00", None, "2024-03-01 10:00:00.5"
    mixed[17], mixed[19] = days[17], "2024-03-01T10:00:0٣"
    blocks = [stamps, days, mixed]
    done = [_plain_iso_block(pyarrow.array(list(b), type=pyarrow.large_string()))[1] for b in blocks]
    assert done[0].all() and done[1].all()
    assert np.flatnonzero(~done[2]).tolist() == [5, 9, 11, 13, 19]
    values = pd.Series(np.concatenate(blocks).tolist(), dtype="str")
    parsed, failed = parse_datetimes(values, [], dayfirst=False)
    full, full_failed = _parse_by_distinct(values, [], dayfirst=False)
    assert parsed.equals(full) and failed.tolist() == full_failed.tolist()
    assert parsed.iloc[:_DATE_BLOCK].equals(pd.Series(moments.to_numpy(dtype="datetime64[ns]")))


def test_dayfirst_for_free_form_dates() -> None:
    parsed, _ = parse_datetimes(pd.Series(["03/04/2024 10:00"]), [], dayfirst=True)
    assert parsed.item() == pd.Timestamp("2024-04-03 10:00")
    parsed, _ = parse_datetimes(pd.Series(["03/04/2024 10:00"]), [], dayfirst=False)
    assert parsed.item() == pd.Timestamp("2024-03-04 10:00")


def test_numbers_in_local_forms() -> None:
    values = pd.Series(["1,234.50", "€12", "(7.5)", "1e3", "abc", "NaN", "-inf", None, " 42 "])
    numbers, bad, non_finite = parse_numbers(values, ".")
    assert numbers.iloc[:4].tolist() == [1234.5, 12.0, -7.5, 1000.0] and numbers.iloc[8] == 42.0
    assert bad.tolist() == [False] * 4 + [True] + [False] * 4
    assert non_finite.tolist() == [False] * 5 + [True, True, False, False]
    numbers, _, _ = parse_numbers(pd.Series(["1.234,50", "12,5", "12.5"]), ",")
    assert numbers.tolist() == [1234.5, 12.5, 12.5]


def test_several_problems_make_one_reject_line() -> None:
    orders = pd.DataFrame({"customer_id": ["C1", "C2"], "email": ["", "ann@x.com"],
                           "timestamp": ["2024-01-01", "soon"], "amount": ["5", "-3"], "status": ["paid", "lost"]})
    result = _validate({"orders": orders})["orders"]
    assert len(result.data) == 1 and len(result.rejects) == 1
    reject = result.rejects.iloc[0]
    assert reject.row_number == 2
    assert reject.field == "timestamp; amount; status"
    assert reject.reason == "unparseable date 'soon' in timestamp; negative amount -3; unknown order status 'lost'"
    raw = json.loads(reject.raw)
    assert raw["email"].startswith("a***@x.com#") and raw["amount"] == "-3"


def test_email_value_is_masked_in_rejects() -> None:
    interactions = pd.DataFrame({"email": ["ann@x.com"], "timestamp": ["2024-01-01"], "type": ["fax"]})
    mapping = Mapping(tables={"interactions": TableMapping(values={"type": {"Fax": "call"}})})
    assert _validate({"interactions": interactions}, mapping)["interactions"].rejects.empty  # value map
    bad_email = pd.DataFrame({"email": ["ann@x.com"], "timestamp": ["2024-01-01"], "type": ["telex"]})
    rejects = _validate({"interactions": bad_email})["interactions"].rejects
    assert "ann@x.com" not in rejects.to_csv()


def test_unknown_keys_only_when_minting_table_present() -> None:
    interactions = pd.DataFrame({"customer_id": ["C1", "C9", "C9"], "email": ["", "", "a@b.com"],
                                 "timestamp": ["2024-01-01"] * 3, "type": ["call"] * 3})
    alone = _validate({"interactions": interactions})["interactions"]
    assert alone.rejects.empty  # no orders table: customer ids cannot be checked
    orders = pd.DataFrame({"customer_id": ["C1"], "timestamp": ["2024-01-01"], "amount": ["1"]})
    both = _validate({"interactions": interactions, "orders": orders})["interactions"]
    # C9 alone is unknown; C9 with an e-mail still has a usable person key.
    assert both.rejects["row_number"].tolist() == [2]
    assert both.rejects["reason"].item() == "unknown customer_id 'C9'"


def test_duplicate_keeps_first_valid_occurrence() -> None:
    deals = pd.DataFrame({"deal_id": ["D1", "D1", "D1"], "lead_id": ["L1"] * 3,
                          "created_at": ["never", "2024-01-02", "2024-01-03"]})
    result = _validate({"deals": deals})["deals"]
    assert result.data["created_at"].tolist() == [pd.Timestamp("2024-01-02")]
    assert result.rejects["kind"].tolist() == ["unparseable_date", "duplicate_key"]
    assert "first in deals.csv row 2" in result.rejects["reason"].iloc[1]


def test_extra_columns_kept_for_leads_dropped_elsewhere() -> None:
    leads = pd.DataFrame({"Lead ID": ["L1"], "Created At": ["2024-01-01"], "Industry": ["retail"], "employees": ["12"]})
    orders = pd.DataFrame({"customer_id": ["C1"], "timestamp": ["2024-01-01"], "amount": ["3"], "coupon": ["X"]})
    result = _validate({"leads": leads, "orders": orders})
    assert result["leads"].attribute_columns == ["Industry", "employees"]
    assert result["leads"].data["lead_id"].item() == "L1"  # "Lead ID" matched without a mapping
    assert result["leads"].data["employees"].dtype == np.dtype("float64")
    assert result["orders"].dropped_columns == ["coupon"] and "coupon" not in result["orders"].data


def test_missing_markers_are_configurable() -> None:
    spend = pd.DataFrame({"date": ["2024-01-01"] * 3, "channel": ["ads", "Select", "unknown"], "amount": ["1"] * 3})
    default = _validate({"spend": spend})["spend"]
    assert default.rejects["row_number"].tolist() == [2]
    custom = _validate({"spend": spend}, Mapping(missing_markers=["", "unknown"]))["spend"]
    assert custom.rejects["row_number"].tolist() == [3]


TEXT_EDGES = ["", "N/A", "n/a", "SELECT", "Select", "-", " x", "x ", "\tx", "x\n", "é", "\u00a0x", "x\u3000",
              "\u00c9", "ok", "N/A ", "a" * 12_000, None, "İ", "\x1fx"]


@pytest.mark.parametrize("dtype", ["str", "string[pyarrow]"])
def test_arrow_text_cleaning_is_what_pandas_string_methods_give(dtype: str) -> None:
    from features.validation import _as_text, _blank_missing

    values = pd.Series(TEXT_EDGES * 3, dtype=dtype)
    missing = frozenset({"", "n/a", "select", "-"})
    stripped = values.str.strip()
    assert _as_text(values).equals(stripped)
    # Nothing to trim: the column itself comes back, not a copy.
    clean = pd.Series(["ab", "c-d", None, "x"], dtype=dtype)
    assert _as_text(clean) is clean
    longest = max(len(m) for m in missing)
    short = (stripped.str.len() <= longest).fillna(False).to_numpy(dtype=bool)
    marker = np.zeros(len(stripped), dtype=bool)
    marker[short] = stripped[short].str.lower().isin(missing).fillna(False).to_numpy(dtype=bool)
    blank = marker | (stripped.str.len() == 0).fillna(False).to_numpy(dtype=bool)
    assert _blank_missing(stripped, missing).equals(stripped.where(~blank, np.nan))
    assert _blank_missing(clean, missing) is clean


def test_the_first_broken_table_in_table_order_is_the_one_named() -> None:
    # Leads and orders are prepared first (they mint the ids others are checked against);
    # a missing column is still reported for the first table in the contract's order.
    from features.errors import RadarInputError

    tables = {
        "leads": pd.DataFrame({"lead_id": ["L1"], "created_at": ["2024-01-01"]}),
        "interactions": pd.DataFrame({"lead_id": ["L1"], "type": ["call"]}),
        "orders": pd.DataFrame({"customer_id": ["C1"], "timestamp": ["2024-01-02"]}),
    }
    with pytest.raises(RadarInputError, match="interactions needs column"):
        _validate(tables)


def test_schema_is_built_from_the_contract() -> None:
    schema = contract_schema(TABLES["orders"])
    assert set(schema.columns) == set(TABLES["orders"].names)
    assert not schema.columns["amount"].nullable and schema.columns["status"].nullable


@pytest.mark.parametrize("table", list(TABLES))
def test_accepted_plus_rejected_is_read_on_random_junk(table: str) -> None:
    rng = np.random.default_rng(3)
    junk = ["", "x", "-1", "2024-01-01", "1e9", "inf", "call", "paid", "L1", "a@b.com", "N/A", "0"]
    frame = pd.DataFrame({c: rng.choice(junk, 200) for c in TABLES[table].names})
    result = _validate({table: frame})[table]
    assert len(result.data) + len(result.rejects) == 200
    assert result.rejects["row_number"].is_unique


def test_missing_markers_blanked_in_arrow_text_as_in_python_text() -> None:
    # The Arrow path rules most cells out by length and first byte and blanks through the
    # validity bitmap; it must blank exactly the cells the plain-Python path blanks.
    import random

    import pyarrow

    from features.mapping import Mapping
    from features.validation import _blank_missing

    missing = Mapping().missing_set()
    words = ["", "NA", "na", "N/A", "n/a", "NULL", "nULL", "none", "NONE", "Select", "SELECT", "-", "--", "web",
             "sms", "\u212aX", "nA ", " na", "ñull", "Sélect", "x" * 30, "é" * 5, "Ｓelect", "selects", None]
    rng = random.Random(7)
    for _ in range(200):
        cells = [rng.choice(words) for _ in range(rng.randint(0, 30))]
        chunks, i = [], 0
        while i < len(cells):
            k = rng.randint(1, 6)
            chunks.append(pyarrow.array(cells[i:i + k], type=pyarrow.large_string()))
            i += k
        text = pyarrow.chunked_array(chunks, type=pyarrow.large_string())
        if len(cells) > 3 and rng.random() < 0.3:
            text, cells = text.slice(1, len(cells) - 2), cells[1:-1]  # chunks not starting at 0
        arrow = text.to_pandas(types_mapper={pyarrow.large_string(): pd.StringDtype("pyarrow", na_value=np.nan)}.get)
        got = _blank_missing(arrow, missing)
        expected = _blank_missing(pd.Series(cells, dtype=object), missing)
        assert got.dtype == arrow.dtype
        assert got.isna().tolist() == expected.isna().tolist(), cells
        assert got.dropna().tolist() == expected.dropna().tolist()
