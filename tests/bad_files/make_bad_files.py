"""Writes the bad-files corpus: one folder per case, each holding the CRM file(s) of that case.

Run ``python tests/bad_files/make_bad_files.py`` to (re)write the committed folders. Their
bytes matter (encodings, byte-order marks, cut-off endings, binary junk), so they are made
here rather than typed in an editor. The one large case, a CSV line several megabytes long,
is not committed: ``write_long_line`` writes it at test time.

What Radar does with each case, and why, is in docs/reliability.md ("Bad files").
"""

from __future__ import annotations

import codecs
import gzip
import io
import random
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

LEADS_HEADER = "lead_id,email,created_at,source,industry\n"
LEADS_ROWS = [
    "L1,ana@shop.com,2024-01-05,web,retail\n",
    "L2,bob@corp.com,2024-01-06,ads,tech\n",
    "L3,cat@corp.com,2024-01-07,web,retail\n",
]


def _leads(*extra: str) -> str:
    return LEADS_HEADER + "".join(LEADS_ROWS) + "".join(extra)


def cases() -> dict[str, dict[str, bytes | str]]:
    """Case folder → file name → content."""
    full = _leads()
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_STORED) as archive:
        # A fixed date: the same bytes on every run.
        archive.writestr(zipfile.ZipInfo("leads.csv", date_time=(2024, 1, 1, 0, 0, 0)), full)
    gz = gzip.compress((full * 200).encode("utf-8"), mtime=0)
    junk = random.Random(7).randbytes(4096)
    cp1252 = LEADS_HEADER + "L1,ana@shop.com,2024-01-05,web,Café €uro\nL2,zoe@corp.com,2024-01-06,ads,Zoë & Söhne\n"
    utf16 = LEADS_HEADER + "L1,ana@shop.com,2024-01-05,web,Café\nL2,zoe@corp.com,2024-01-06,ads,Zoë\n"
    return {
        # --- files Radar reads: accepted rows plus rejects with reasons -----------------
        # Cut in the middle of the last row: it has fewer fields than the header.
        "truncated_mid_row": {"leads.csv": full + "L4,dan@corp.com,2024-0"},
        # Cut inside a quoted cell: the file ends with an unclosed quote.
        "truncated_mid_quote": {"leads.csv": full + 'L4,dan@corp.com,2024-01-08,web,"Acme, Inc'},
        # A stray quote opens a cell that is never closed: the rows after it must survive.
        "stray_quote": {"leads.csv": LEADS_HEADER + LEADS_ROWS[0] + 'L2,bob@corp.com,2024-01-06,ads,"Acme, Inc\n'
                        + "".join(LEADS_ROWS[1:]).replace("L2,", "L5,")},
        "cp1252": {"leads.csv": cp1252.encode("cp1252")},
        "utf16_bom": {"leads.csv": codecs.BOM_UTF16_LE + utf16.encode("utf-16-le")},
        "utf16_no_bom": {"leads.csv": utf16.encode("utf-16-le")},
        "utf8_bom": {"orders.csv": codecs.BOM_UTF8 + "customer_id,order_id,timestamp,amount,status\n"
                     "C1,O1,2024-02-01,12.50,paid\nC2,O2,2024-02-02,7,paid\n".encode("utf-8")},
        "semicolon": {"orders.csv": "customer_id;order_id;timestamp;amount;status\n"
                      "C1;O1;2024-02-01;12.50;paid\nC2;O2;2024-02-02;1,234.50;paid\nC3;O3;2024-02-03;12,50;paid\n"},
        "mixed_dates": {"leads.csv": LEADS_HEADER
                        + "L1,a@x.com,2024-03-01,web,a\n"
                        + "L2,b@x.com,2024-03-01T10:00:00+02:00,web,a\n"
                        + "L3,c@x.com,03/15/2024,web,a\n"
                        + "L4,d@x.com,15 March 2024,web,a\n"
                        + "L5,e@x.com,1709294400,web,a\n"
                        + "L6,f@x.com,2024-02-30,web,a\n"
                        + "L7,g@x.com,yesterday,web,a\n"
                        + "L8,h@x.com,9999-12-31,web,a\n"
                        + "L9,i@x.com,,web,a\n"},
        "non_finite_numbers": {"orders.csv": "customer_id,order_id,timestamp,amount,status\n"
                               "C1,O1,2024-02-01,12.5,paid\n"
                               "C2,O2,2024-02-02,NaN,paid\n"
                               "C3,O3,2024-02-03,inf,paid\n"
                               "C4,O4,2024-02-04,-Infinity,paid\n"
                               "C5,O5,2024-02-05,1e400,paid\n"
                               "C6,O6,2024-02-06,9.99e99,paid\n"
                               "C7,O7,2024-02-07,123456789012345678901234567890,paid\n"
                               "C8,O8,2024-02-08,1e308,paid\n"
                               "C9,O9,2024-02-09,999999,paid\n"},
        "header_only": {"leads.csv": LEADS_HEADER},
        "duplicate_ids": {
            "leads.csv": _leads("L2,bob2@corp.com,2024-01-09,web,tech\n", "L1,ana@shop.com,2024-01-05,web,retail\n"),
            "orders.csv": "customer_id,order_id,lead_id,timestamp,amount,status\n"
                          "C1,O1,L1,2024-02-01,10,paid\nC2,O2,L2,2024-02-02,20,paid\nC1,O1,L1,2024-02-01,10,paid\n",
        },
        "orders_before_customer": {
            "leads.csv": _leads(),
            # Ana (L1, lead from 2024-01-05) bought on 2023-11-20, before her lead existed;
            # Bob's order is after his lead; C9 has no lead at all.
            "orders.csv": "customer_id,order_id,email,timestamp,amount,status\n"
                          "C1,O1,ana@shop.com,2023-11-20,10,paid\n"
                          "C2,O2,bob@corp.com,2024-02-02,20,paid\n"
                          "C1,O3,ana@shop.com,2024-02-03,30,paid\n"
                          "C9,O4,,2024-02-04,40,paid\n",
        },
        # --- files Radar refuses: one clear error naming the file and the problem -----
        "empty_file": {"leads.csv": b""},
        "duplicated_headers": {"leads.csv": "lead_id,email,created_at,Email\nL1,a@x.com,2024-01-01,b@x.com\n"},
        # Two different names for one contract column ("Lead ID" is read as lead_id).
        "duplicated_after_mapping": {"leads.csv": "Lead ID,email,created_at,lead_id\nL1,a@x.com,2024-01-01,L2\n"},
        "missing_required": {"orders.csv": "customer_id,order_id,timestamp,status\nC1,O1,2024-02-01,paid\n"},
        "binary_junk": {"orders.csv": junk},
        "zip_renamed": {"leads.csv": zipped.getvalue()},
        "truncated_gzip": {"leads.csv.gz": gz[: len(gz) // 2]},
    }


def write_long_line(folder: Path, megabytes: int = 5, *, extra_field: bool = False) -> Path:
    """``leads.csv`` whose second row is one line of ``megabytes`` MB (a pasted blob in a cell).

    With ``extra_field`` another row also has one field too many, which sends the file
    through the csv-module reader (whose default cell limit is 128 KiB) instead of pandas'.
    """
    folder.mkdir(parents=True, exist_ok=True)
    blob = "x" * (megabytes * 1024 * 1024)
    rows = [LEADS_ROWS[0], f"L2,bob@corp.com,2024-01-06,ads,{blob}\n", *LEADS_ROWS[2:], "L4,dan@corp.com,2024-01-08,web,retail\n"]
    if extra_field:
        rows.append("L5,eve@corp.com,2024-01-09,web,retail,EXTRA\n")
    path = folder / "leads.csv"
    path.write_text(LEADS_HEADER + "".join(rows), encoding="utf-8")
    return path


def write_all(root: Path = HERE) -> None:
    """Write every committed case under ``root`` (this folder by default)."""
    for case, files in cases().items():
        folder = root / case
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (folder / name).write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


if __name__ == "__main__":
    write_all()
