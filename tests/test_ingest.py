"""Loading a CRM folder end to end: files, encodings, mapping, rejects, the validated folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.contract import TABLES
from features.errors import RadarInputError
from features.ingest import MARKER_FILE, load_crm, report_tables, write_validated
from features.io import read_table
from features.mapping import load_mapping
from radar.config import IdentityConfig, Settings

FIXTURES = Path(__file__).parent / "fixtures"

#: (table, row_number) → kind of every broken row in tests/fixtures/broken.
EXPECTED_REJECTS = {
    ("leads", 3): "unparseable_date",
    ("leads", 4): "missing_required",
    ("leads", 5): "duplicate_key",
    ("leads", 6): "malformed_row",
    ("interactions", 2): "unknown_value",
    ("interactions", 3): "no_person_key",
    ("interactions", 4): "unknown_key",
    ("interactions", 5): "unknown_key",
    ("interactions", 6): "not_finite",
    ("interactions", 7): "not_finite",
    ("interactions", 8): "unparseable_date",
    ("orders", 2): "below_minimum",
    ("orders", 3): "not_finite",
    ("orders", 4): "not_finite",
    ("orders", 5): "absurd_number",
    ("orders", 6): "duplicate_key",
    ("orders", 7): "unparseable_number",
    ("orders", 8): "unknown_value",
    ("deals", 2): "missing_required",
    ("deals", 3): "unknown_value",
    ("deals", 4): "no_person_key",
    ("deals", 5): "below_minimum",
    ("spend", 2): "missing_required",
    ("spend", 3): "unparseable_date",
}


@pytest.fixture(scope="module")
def broken():
    return load_crm(FIXTURES / "broken", settings=Settings())


def test_every_row_is_accepted_or_rejected(broken) -> None:
    for name, table in broken.report.tables.items():
        assert table.accepted + table.rejected == table.read, name
        assert len(broken.data.tables()[name]) == table.accepted
        assert (broken.rejects["table"] == name).sum() == table.rejected
    reads = {name: t.read for name, t in broken.report.tables.items()}
    assert reads == {"leads": 6, "interactions": 9, "orders": 9, "deals": 5, "spend": 3}


def test_broken_rows_rejected_with_reasons(broken) -> None:
    got = {(r.table, r.row_number): r.kind for r in broken.rejects.itertuples()}
    assert got == EXPECTED_REJECTS
    for reject in broken.rejects.itertuples():
        assert reject.field and reject.reason
        # The reason names the field (or the row / person key) and the problem.
        assert reject.field.replace("person key", "person key") in reject.reason or reject.field == "row"
        assert reject.source_file == f"{reject.table}.csv"
        assert json.loads(reject.raw)


def test_reason_wording(broken) -> None:
    reasons = dict(zip(zip(broken.rejects["table"], broken.rejects["row_number"]), broken.rejects["reason"]))
    assert reasons[("leads", 3)] == "unparseable date 'yesterday' in created_at"
    assert reasons[("orders", 2)] == "negative amount -12.5"
    assert reasons[("interactions", 2)] == "unknown interaction type 'fax'"
    assert reasons[("interactions", 5)] == "unknown customer_id 'C404'"
    assert reasons[("orders", 6)] == "duplicate order_id 'O1' (first in orders.csv row 1)"
    assert reasons[("leads", 6)] == "row has 9 fields, the header has 8"


def test_rejects_mask_personal_data(broken) -> None:
    raw = json.loads(broken.rejects.set_index(["table", "row_number"]).loc[("leads", 5), "raw"])
    assert raw["email"].startswith("d***@corp.com#")
    assert "dup@corp.com" not in broken.rejects.to_csv()
    overflow = json.loads(broken.rejects.set_index(["table", "row_number"]).loc[("leads", 6), "raw"])
    assert overflow["_extra_fields"] == ["EXTRA"]


def test_encodings_and_delimiters(broken) -> None:
    leads = broken.data.leads
    assert leads.loc[leads["lead_id"] == "L1", "industry"].item() == "Café"  # Latin-1 file
    assert leads.loc[leads["lead_id"] == "L1", "contact_name"].item() == "Zoë"
    assert set(broken.data.orders["customer_id"]) == {"C1", "C9"}  # BOM file, header intact
    assert broken.data.orders.loc[broken.data.orders["customer_id"] == "C9", "amount"].item() == 1234.5
    assert broken.data.interactions["type"].tolist() == ["email_open", "web_visit"]  # semicolons
    assert broken.data.deals["deal_id"].tolist() == ["D1"]  # tabs


def test_contract_dtypes(broken) -> None:
    for name, frame in broken.data.tables().items():
        for column in TABLES[name].columns:
            dtype = frame[column.name].dtype
            if column.kind == "datetime":
                assert dtype == np.dtype("datetime64[ns]"), (name, column.name)
            elif column.kind == "number":
                assert dtype == np.dtype("float64"), (name, column.name)
            else:
                assert pd.api.types.is_string_dtype(dtype) or dtype == object, (name, column.name)
        if name != "spend":
            assert frame["person_id"].notna().all()
    assert isinstance(broken.data.leads.index, pd.RangeIndex)


def test_same_person_across_tables(broken) -> None:
    leads, orders = broken.data.leads, broken.data.orders
    ana = leads.loc[leads["lead_id"] == "L1", "person_id"].item()
    assert orders.loc[orders["customer_id"] == "C1", "person_id"].item() == ana
    assert set(broken.data.interactions["person_id"]) == {ana}  # lead_id L1 and " Ana@Shop.com "
    assert broken.data.interactions["email"].dropna().tolist() == ["ana@shop.com"]


@pytest.mark.parametrize(
    "name, words",
    [
        ("empty.csv", "empty"),
        ("blank.csv", "empty"),
        ("dup_header.csv", "duplicated column name"),
        ("no_header.csv", "header row"),
        ("missing_header.csv", "no header"),
        ("binary.csv", "not a text"),
    ],
)
def test_unreadable_file_is_one_clear_error(name: str, words: str) -> None:
    with pytest.raises(RadarInputError) as caught:
        read_table(FIXTURES / "unreadable" / name)
    assert name in str(caught.value) and words in str(caught.value)


def test_unreadable_table_in_folder(tmp_path: Path) -> None:
    (tmp_path / "leads.csv").write_text("lead_id,email,Email\n", encoding="utf-8")
    with pytest.raises(RadarInputError, match="leads.csv.*duplicated"):
        load_crm(tmp_path, settings=Settings())


def test_folder_without_tables(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(RadarInputError, match="no CRM tables"):
        load_crm(tmp_path, settings=Settings())


def test_missing_required_column_names_it(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text("customer_id,timestamp\nC1,2024-01-01\n", encoding="utf-8")
    with pytest.raises(RadarInputError, match="orders.csv.*amount"):
        load_crm(tmp_path, settings=Settings())


def test_mapping_file(tmp_path: Path) -> None:
    folder = FIXTURES / "mapped"
    result = load_crm(folder, folder / "mapping.yaml", settings=Settings())
    leads = result.data.leads.set_index("lead_id")
    # Renamed columns, "Select"/"N/A" as missing, value maps, day-first dates.
    assert leads.loc["101", "email"] == "ana@shop.com"
    assert pd.isna(leads.loc["101", "status"]) and leads.loc["102", "status"] == "Lead"
    assert leads.loc["101", "source"] == "paid_social" and pd.isna(leads.loc["103", "source"])
    assert leads.loc["101", "created_at"] == pd.Timestamp("2024-04-03")
    assert leads.loc["102", "created_at"] == pd.Timestamp("2023-12-25 14:30")
    assert leads.loc["103", "created_at"] == pd.Timestamp("2024-05-06")
    # Default region GB for a national number; the row's Country wins where given.
    assert leads.loc["101", "phone"] == "+447911123456"
    assert leads.loc["102", "phone"] == "+14155550132"
    assert leads.loc["103", "phone"] == "+4930901820"
    interactions = result.data.interactions
    assert interactions["type"].tolist() == ["email_open", "call", "nps"]
    assert interactions["timestamp"].tolist()[1] == pd.Timestamp("2024-02-13")
    assert result.rejects["reason"].tolist() == ["unknown interaction type 'Fax Sent'"]
    deals = result.data.deals.set_index("deal_id")
    assert deals["outcome"].to_dict() == {"OP1": "won", "OP2": "lost"}
    assert deals.loc["OP1", "amount"] == 1200.5
    # Same person through lead_id across tables.
    assert deals.loc["OP1", "person_id"] == leads.loc["101", "person_id"]


def test_default_phone_region_from_settings(tmp_path: Path) -> None:
    (tmp_path / "leads.csv").write_text(
        "lead_id,phone,created_at\nL1,(415) 555-0132,2024-01-01\n", encoding="utf-8"
    )
    us = load_crm(tmp_path, settings=Settings(identity={"default_phone_region": "US"}))
    assert us.data.leads["phone"].item() == "+14155550132"
    gb = load_crm(tmp_path, settings=Settings())
    assert gb.data.leads["phone"].item() == "(415) 555-0132"  # invalid in GB: kept, not linked
    assert gb.report.identity.invalid_phones == 1


def test_invalid_mapping_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("tables:\n  orders:\n    columns: {Total: amout}\n", encoding="utf-8")
    with pytest.raises(RadarInputError, match="mapping.yaml.*amout"):
        load_mapping(path)
    path.write_text("tables: [unclosed\n", encoding="utf-8")
    with pytest.raises(RadarInputError, match="not valid YAML"):
        load_mapping(path)


def test_example_mapping_is_valid() -> None:
    mapping = load_mapping(Path(__file__).parents[1] / "data" / "mapping.example.yaml")
    assert mapping.tables["interactions"].values["type"]["Email Opened"] == "email_open"
    assert mapping.table("orders").delimiter == ";"


def test_glob_stacks_files_and_hashes_columns(tmp_path: Path) -> None:
    for month, rows in (("01", "C1,O1,2024-01-05,10,Ann\n"), ("02", "C1,O2,2024-02-05,20,Ann\nC2,O1,2024-02-06,5,Bo\n")):
        (tmp_path / f"orders_2024-{month}.csv").write_text("cust,order_id,timestamp,amount,first_name\n" + rows, encoding="utf-8")
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "hash_columns: [first_name]\ntables:\n  orders:\n    file: 'orders_*.csv'\n    columns: {cust: customer_id}\n",
        encoding="utf-8",
    )
    result = load_crm(tmp_path, mapping, settings=Settings(identity=IdentityConfig(hash_secret="k")))
    assert result.report.tables["orders"].read == 3
    assert result.report.tables["orders"].dropped_columns == ["first_name"]
    duplicate = result.rejects.iloc[0]
    assert (duplicate.source_file, duplicate.row_number) == ("orders_2024-02.csv", 2)
    assert "first in orders_2024-01.csv row 1" in duplicate.reason
    assert json.loads(duplicate.raw)["first_name"].startswith("Bo***#")


def test_hash_columns_on_lead_attributes(tmp_path: Path) -> None:
    (tmp_path / "leads.csv").write_text(
        "lead_id,created_at,first_name,employees\nL1,2024-01-01,Ann,12\nL2,2024-01-02,Ann,\n", encoding="utf-8"
    )
    mapping = tmp_path / "m.yaml"
    mapping.write_text("hash_columns: [first_name]\n", encoding="utf-8")
    leads = load_crm(tmp_path, mapping, settings=Settings(identity=IdentityConfig(hash_secret="s"))).data.leads
    assert leads["first_name"].nunique() == 1 and "Ann" not in leads["first_name"].tolist()
    assert leads["employees"].dtype == np.dtype("float64")


def test_parquet_with_native_types(tmp_path: Path) -> None:
    orders = pd.DataFrame(
        {
            "customer_id": [1.0, 2.0, np.nan, 4.0, 5.0],
            "email": [None, None, "x@y.com", None, None],
            "timestamp": pd.to_datetime(["2024-01-01 10:00", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"],
                                        format="ISO8601").tz_localize("Europe/Berlin"),
            "amount": [10.0, np.inf, np.nan, 3.0, -2.5],
        }
    )
    orders.to_parquet(tmp_path / "orders.parquet")
    result = load_crm(tmp_path, settings=Settings())
    data = result.data.orders
    assert data["customer_id"].tolist()[0] == "1" and data["timestamp"].iloc[0] == pd.Timestamp("2024-01-01 09:00")
    assert result.rejects["kind"].tolist() == ["not_finite", "missing_required", "below_minimum"]
    # Native numbers are quoted as the text they would have been in a CSV.
    assert result.rejects["value"].tolist() == ["inf", "", "-2.5"]
    assert result.rejects["reason"].tolist() == ["not a finite number 'inf' in amount", "missing required amount",
                                                 "negative amount -2.5"]


def test_write_validated_round_trip(broken, tmp_path: Path) -> None:
    out = write_validated(broken, tmp_path / "validated")
    assert (out / MARKER_FILE).is_file() and (out / "rejects.csv").is_file()
    again = load_crm(out)
    for name, frame in broken.data.tables().items():
        pd.testing.assert_frame_equal(again.data.tables()[name], frame, check_dtype=True)
    assert again.report.to_dict()["tables"] == broken.report.to_dict()["tables"]
    assert len(again.rejects) == len(broken.rejects)
    assert again.origins["leads"]["row_number"].tolist() == [1, 2]


def test_report_prints_and_progress(tmp_path: Path) -> None:
    from rich.console import Console

    calls: list[tuple[str, float | None]] = []
    result = load_crm(FIXTURES / "broken", settings=Settings(), progress=lambda m, f=None: calls.append((m, f)))
    console = Console(record=True, width=160)
    for table in report_tables(result.report):
        console.print(table)
    text = console.export_text()
    assert "interactions" in text and "unknown key (customer_id)" in text and "persons" in text
    assert calls[-1] == ("Loaded", 1.0)
    assert json.dumps(result.report.to_dict())
