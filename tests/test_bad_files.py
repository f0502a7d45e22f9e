"""The bad-files corpus (tests/bad_files) through Radar's real entry points.

Every case either loads, with each row read accounted for as accepted or rejected with a
reason naming its row, field and problem, or is refused with ONE clear error naming the
file and the problem: exit code 2, the message on stderr, no traceback. What each case
does and why is in docs/reliability.md ("Bad files").
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from features.errors import RadarInputError
from features.ingest import load_crm
from radar.config import Settings

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).parent / "bad_files"
_spec = importlib.util.spec_from_file_location("make_bad_files", CORPUS / "make_bad_files.py")
make_bad_files = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_bad_files)  # type: ignore[union-attr]


@dataclass
class Loads:
    """A case Radar reads: counts per table (read, accepted, rejected), reject kinds by row."""

    counts: dict[str, tuple[int, int, int]]
    kinds: dict[tuple[str, int], str] = field(default_factory=dict)
    #: Words the reason of a rejected row must hold, by (table, row).
    words: dict[tuple[str, int], str] = field(default_factory=dict)


LOADS: dict[str, Loads] = {
    "truncated_mid_row": Loads({"leads": (4, 3, 1)}, {("leads", 4): "malformed_row; unparseable_date"},
                               {("leads", 4): "the file ends in the middle of this row"}),
    "truncated_mid_quote": Loads({"leads": (4, 3, 1)}, {("leads", 4): "malformed_row"},
                                 {("leads", 4): "quoted cell is never closed"}),
    "stray_quote": Loads({"leads": (4, 3, 1)}, {("leads", 2): "malformed_row"},
                         {("leads", 2): "quoted cell is never closed"}),
    "cp1252": Loads({"leads": (2, 2, 0)}),
    "utf16_bom": Loads({"leads": (2, 2, 0)}),
    "utf16_no_bom": Loads({"leads": (2, 2, 0)}),
    "utf8_bom": Loads({"orders": (2, 2, 0)}),
    "semicolon": Loads({"orders": (3, 2, 1)}, {("orders", 3): "unparseable_number"},
                       {("orders", 3): "unparseable number '12,50' in amount (a decimal comma?"}),
    "mixed_dates": Loads(
        {"leads": (9, 5, 4)},
        {("leads", 6): "unparseable_date", ("leads", 7): "unparseable_date", ("leads", 8): "unparseable_date",
         ("leads", 9): "missing_required"},
        {("leads", 6): "unparseable date '2024-02-30' in created_at", ("leads", 9): "missing required created_at"},
    ),
    "non_finite_numbers": Loads(
        {"orders": (9, 2, 7)},
        {**{("orders", n): "not_finite" for n in (2, 3, 4, 5)}, **{("orders", n): "absurd_number" for n in (6, 7, 8)}},
        {("orders", 2): "not a finite number 'NaN' in amount", ("orders", 5): "'1e400'",
         ("orders", 7): "absurd amount 1.23457e+29"},
    ),
    "header_only": Loads({"leads": (0, 0, 0)}),
    "duplicate_ids": Loads(
        {"leads": (5, 3, 2), "orders": (3, 2, 1)},
        {("leads", 4): "duplicate_key", ("leads", 5): "duplicate_key", ("orders", 3): "duplicate_key"},
        {("leads", 4): "duplicate lead_id 'L2' (first in leads.csv row 2)",
         ("orders", 3): "duplicate order_id 'O1' (first in orders.csv row 1)"},
    ),
    "orders_before_customer": Loads({"leads": (3, 3, 0), "orders": (4, 4, 0)}),
    # Written at test time (several megabytes): see make_bad_files.write_long_line.
    "long_line": Loads({"leads": (4, 3, 1)}, {("leads", 2): "too_long"},
                       {("leads", 2): "value of 5,242,880 characters in industry"}),
    "long_line_extra_field": Loads({"leads": (5, 3, 2)}, {("leads", 2): "too_long", ("leads", 5): "malformed_row"},
                                   {("leads", 5): "row has 6 fields, the header has 5"}),
}

#: Cases Radar refuses: the file named in the error, and words of its problem.
REFUSED: dict[str, tuple[str, str]] = {
    "empty_file": ("leads.csv", "the file is empty"),
    "duplicated_headers": ("leads.csv", "duplicated column name 'Email' (columns 2 and 4)"),
    "duplicated_after_mapping": ("leads.csv", "columns 'Lead ID' and 'lead_id' both map to leads.lead_id"),
    "missing_required": ("orders.csv", "orders needs column(s) amount"),
    "binary_junk": ("orders.csv", "not a text (CSV) file: it holds binary data"),
    "zip_renamed": ("leads.csv", "ZIP archive (or an Excel .xlsx workbook)"),
    "truncated_gzip": ("leads.csv.gz", "compressed file is cut short or damaged"),
}


def case_folder(case: str, tmp_path: Path) -> Path:
    if case.startswith("long_line"):
        return make_bad_files.write_long_line(tmp_path / case, extra_field=case.endswith("extra_field")).parent
    return CORPUS / case


def test_the_corpus_is_what_its_script_writes(tmp_path: Path) -> None:
    make_bad_files.write_all(tmp_path)
    committed = {p.relative_to(CORPUS) for p in CORPUS.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")}
    written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    assert committed == written
    for relative in written:
        if relative.suffix == ".gz":
            # Compressed bytes differ between zlib builds; both must be cut-short gzip.
            for path in (CORPUS / relative, tmp_path / relative):
                with pytest.raises(EOFError):
                    gzip.decompress(path.read_bytes())
            continue
        assert (CORPUS / relative).read_bytes() == (tmp_path / relative).read_bytes(), relative
    assert set(make_bad_files.cases()) | {"long_line", "long_line_extra_field"} == set(LOADS) | set(REFUSED)


def _assert_rejects_explained(rejects: pd.DataFrame) -> None:
    """Every reject names its file, row, field(s) and problem(s)."""
    for reject in rejects.itertuples():
        assert reject.source_file and int(reject.row_number) >= 1
        fields, reasons, kinds = reject.field.split("; "), reject.reason.split("; "), reject.kind.split("; ")
        assert len(fields) == len(reasons) == len(kinds) >= 1, reject
        for name, reason, kind in zip(fields, reasons, kinds):
            assert name and reason and kind
            assert name in reason or name in ("row", "person key"), (name, reason)
        assert isinstance(json.loads(reject.raw), dict)


@pytest.mark.parametrize("case", list(LOADS))
def test_load_crm_accounts_for_every_row(case: str, tmp_path: Path) -> None:
    expected = LOADS[case]
    result = load_crm(case_folder(case, tmp_path), settings=Settings())
    counts = {name: (t.read, t.accepted, t.rejected) for name, t in result.report.tables.items()}
    assert counts == expected.counts
    for name, table in result.report.tables.items():
        assert table.accepted + table.rejected == table.read
        assert len(result.data.tables()[name]) == table.accepted
        assert "person_id" in result.data.tables()[name].columns
    got = {(r.table, int(r.row_number)): r.kind for r in result.rejects.itertuples()}
    assert got == expected.kinds
    reasons = {(r.table, int(r.row_number)): r.reason for r in result.rejects.itertuples()}
    for key, words in expected.words.items():
        assert words in reasons[key], (key, reasons[key])
    _assert_rejects_explained(result.rejects)


def test_text_in_other_encodings_is_decoded() -> None:
    for case, wanted in (("cp1252", ["Café €uro", "Zoë & Söhne"]), ("utf16_bom", ["Café", "Zoë"]),
                         ("utf16_no_bom", ["Café", "Zoë"])):
        leads = load_crm(CORPUS / case, settings=Settings()).data.leads
        assert leads["industry"].tolist() == wanted, case
    orders = load_crm(CORPUS / "utf8_bom", settings=Settings()).data.orders
    assert orders["customer_id"].tolist() == ["C1", "C2"]  # the BOM is not part of the first name


def test_rows_after_a_stray_quote_survive() -> None:
    leads = load_crm(CORPUS / "stray_quote", settings=Settings()).data.leads
    assert leads["lead_id"].tolist() == ["L1", "L5", "L3"]
    assert leads["industry"].tolist() == ["retail", "tech", "retail"]


def test_mixed_date_formats_and_numbers() -> None:
    leads = load_crm(CORPUS / "mixed_dates", settings=Settings()).data.leads.set_index("lead_id")
    assert leads["created_at"].to_dict() == {
        "L1": pd.Timestamp("2024-03-01"), "L2": pd.Timestamp("2024-03-01 08:00"), "L3": pd.Timestamp("2024-03-15"),
        "L4": pd.Timestamp("2024-03-15"), "L5": pd.Timestamp("2024-03-01 12:00"),
    }
    amounts = load_crm(CORPUS / "non_finite_numbers", settings=Settings()).data.orders["amount"].tolist()
    assert amounts == [12.5, 999999.0]
    assert load_crm(CORPUS / "semicolon", settings=Settings()).data.orders["amount"].tolist() == [12.5, 1234.5]


def test_a_multi_megabyte_cell_is_not_copied_into_the_rejects(tmp_path: Path) -> None:
    rejects = load_crm(case_folder("long_line", tmp_path), settings=Settings()).rejects
    raw = json.loads(rejects["raw"].item())
    assert len(rejects["raw"].item()) < 2_000 and raw["industry"].endswith("(5,242,880 characters)")
    assert len(rejects["value"].item()) <= 80


def test_orders_before_their_customer_existed_are_kept_with_a_warning() -> None:
    result = load_crm(CORPUS / "orders_before_customer", settings=Settings())
    orders = result.data.orders.set_index("order_id")
    leads = result.data.leads.set_index("lead_id")
    # O1 (2023-11-20) is Ana's, linked by e-mail to lead L1 created on 2024-01-05: kept.
    assert orders.loc["O1", "person_id"] == leads.loc["L1", "person_id"]
    assert orders.loc["O1", "timestamp"] < leads.loc["L1", "created_at"]
    warnings = result.report.tables["orders"].warnings
    assert len(warnings) == 1
    assert warnings[0].startswith("1 order(s) dated before their person's first lead") and "orders.csv row 1" in warnings[0]
    assert result.report.tables["leads"].warnings == []
    assert result.rejects.empty


@pytest.mark.parametrize("case", list(REFUSED))
def test_load_crm_refuses_with_one_clear_error(case: str) -> None:
    name, words = REFUSED[case]
    with pytest.raises(RadarInputError) as caught:
        load_crm(CORPUS / case, settings=Settings())
    assert caught.value.path is not None and caught.value.path.name == name
    assert words in str(caught.value)


# --- `radar validate`, the command a user runs ---------------------------------------------


def _radar_validate(folder: Path, out: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> tuple[int, str, str]:
    """`radar validate FOLDER --out OUT` through the CLI's own entry point, in this process."""
    from radar import cli

    monkeypatch.setenv("RADAR_WORK_DIR", str(out.parent / "work"))
    monkeypatch.chdir(out.parent)
    monkeypatch.setattr(sys, "argv", ["radar", "validate", str(folder), "--out", str(out)])
    with pytest.raises(SystemExit) as ended:
        cli.main()
    captured = capfd.readouterr()
    return int(ended.value.code or 0), captured.out, captured.err


@pytest.mark.parametrize("case", list(LOADS))
def test_radar_validate_writes_accepted_rows_and_rejects(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capfd: pytest.CaptureFixture) -> None:
    out = tmp_path / "validated"
    code, stdout, stderr = _radar_validate(case_folder(case, tmp_path), out, monkeypatch, capfd)
    assert code == 0, stderr
    assert "Traceback" not in stdout + stderr
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    counts = {name: (t["read"], t["accepted"], t["rejected"]) for name, t in report["tables"].items()}
    assert counts == LOADS[case].counts
    rejects = pd.read_csv(out / "rejects.csv", dtype=str, keep_default_na=False)
    assert {(r.table, int(r.row_number)) for r in rejects.itertuples()} == set(LOADS[case].kinds)
    _assert_rejects_explained(rejects)
    for name, (_, accepted, _) in LOADS[case].counts.items():
        assert len(pd.read_parquet(out / f"{name}.parquet")) == accepted
        assert f"{accepted:,}" in stdout
    if case == "orders_before_customer":
        assert "Warnings (rows kept)" in stdout and "dated before their person's first lead" in stdout


@pytest.mark.parametrize("case", list(REFUSED))
def test_radar_validate_refuses_with_exit_2_on_stderr(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capfd: pytest.CaptureFixture) -> None:
    name, words = REFUSED[case]
    out = tmp_path / "validated"
    code, stdout, stderr = _radar_validate(CORPUS / case, out, monkeypatch, capfd)
    assert code == 2
    message = " ".join(stderr.split())
    assert message.startswith("error:") and name in message and words in message, stderr
    assert "Traceback" not in stdout + stderr and "error:" not in stdout
    assert not out.exists()


def _subprocess_validate(folder: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    radar = Path(sys.executable).parent / "radar"
    env = os.environ | {"RADAR_WORK_DIR": str(tmp_path / "work"), "COLUMNS": "200"}
    return subprocess.run([str(radar), "validate", str(folder), "--out", str(tmp_path / "validated")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


SUBPROCESS_FAST = ("zip_renamed", "stray_quote")


@pytest.mark.parametrize("case", SUBPROCESS_FAST)
def test_the_installed_command_in_a_process(case: str, tmp_path: Path) -> None:
    _check_process(case, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in [*LOADS, *REFUSED] if c not in SUBPROCESS_FAST])
def test_the_installed_command_in_a_process_every_case(case: str, tmp_path: Path) -> None:
    _check_process(case, tmp_path)


def _check_process(case: str, tmp_path: Path) -> None:
    done = _subprocess_validate(case_folder(case, tmp_path), tmp_path)
    assert "Traceback" not in done.stdout + done.stderr
    if case in REFUSED:
        name, words = REFUSED[case]
        assert done.returncode == 2
        message = " ".join(done.stderr.split())
        assert message.startswith("error:") and name in message and words in message, done.stderr
    else:
        assert done.returncode == 0, done.stderr
        assert done.stderr.strip() == ""
        report = json.loads((tmp_path / "validated" / "report.json").read_text(encoding="utf-8"))
        assert {n: (t["read"], t["accepted"], t["rejected"]) for n, t in report["tables"].items()} == LOADS[case].counts
