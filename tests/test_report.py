"""The KPI report: one self-contained, atomically written HTML file with the right figures."""

import base64
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import serving.report as report
from features.ingest import load_crm
from radar.config import Settings
from radar.demo import generate_world
from serving.kpis import ACQUISITION_COLUMNS, Kpis, compute_kpis
from serving.report import TargetHealth, fmt_money, fmt_rate, fmt_ratio, render_report

MONTH = pd.Timestamp("2026-01-01")


def _row(spend: float, leads: int, conversions: int, ltv: float) -> dict[str, object]:
    cac = spend / conversions
    return {
        "spend": spend, "leads": leads, "cost_per_lead": spend / leads, "conversions": conversions,
        "conversion_rate": conversions / leads, "cac": cac, "avg_ticket": 150.0, "ltv": ltv,
        "ltv_cac": ltv / cac, "ltv_cac_low": ltv / cac < 3, "nps": 20.0, "nps_answers": 10,
        "median_cycle_days": 12.0, "mature": True,
    }


def hand_made_kpis() -> Kpis:
    """Two channels: ads (LTV/CAC 0.5, flagged) and referral (LTV/CAC 10, not flagged)."""
    rows = {"ads": _row(1234.0, 40, 4, 154.25), "referral": _row(500.0, 10, 5, 1000.0)}
    by_channel = pd.DataFrame.from_dict(rows, orient="index")[list(ACQUISITION_COLUMNS)].rename_axis("channel")
    by_month = by_channel.assign(month=MONTH).set_index("month", append=True)
    overall = _row(1734.0, 50, 9, 400.0)
    return Kpis(
        as_of=pd.Timestamp("2026-04-01"),
        horizon_days=30,
        by_channel_month=by_month,
        by_channel=by_channel,
        overall={k: float(v) for k, v in overall.items()},
        funnel=pd.DataFrame({"people": [50, 50, 30, 12, 9]}, index=pd.Index(["need", "search", "evaluation", "decision", "use"], name="stage")),
        churn=pd.DataFrame({"active_customers": [8, 9], "indifference": [1, 2], "service": [0, 1]}, index=[MONTH, MONTH + pd.offsets.MonthBegin(1)]),
        ltv_inputs=pd.DataFrame({"revenue_per_year": [300.0], "churn_rate": [0.5], "lifetime_years": [0.16], "ltv": [48.0]}, index=["all"]),
    )


def _tiny_png() -> bytes:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1])
    uri = report.png_data_uri(fig)
    return base64.b64decode(uri.split(",", 1)[1])


HEALTH = [
    TargetHealth(
        "purchase_probability", version=3, model_type="lightgbm", trained_at="2026-04-01",
        metrics={"model": {"auc": 0.9071, "brier": 0.05}, "rf_rule": {"auc": 0.7851, "brier": 0.07}},
        images={"gain": _tiny_png(), "calibration": _tiny_png()},
    ),
    TargetHealth("time_to_close", note="no model yet"),
]


def _external_references(html: str) -> list[str]:
    """Every src/href/url() that is not an inline data: URI or a page anchor."""
    refs = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']*)["\']', html) + re.findall(r"url\(([^)]*)\)", html)
    return [r for r in refs if not r.startswith(("data:", "#"))]


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> str:
    path = render_report(hand_made_kpis(), HEALTH, tmp_path_factory.mktemp("r") / "report.html")
    return path.read_text(encoding="utf-8")


def test_one_self_contained_file(tmp_path) -> None:
    path = render_report(hand_made_kpis(), HEALTH, tmp_path / "out" / "report.html")
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]
    text = path.read_text(encoding="utf-8")
    assert _external_references(text) == []
    assert "http://" not in text and "https://" not in text
    assert text.count("data:image/png;base64,") >= 5  # 4 KPI charts + 2 model plots


def test_headline_figures(html) -> None:
    headline = html.split('id="headline"', 1)[1].split("</div>\n</div>", 1)[0]
    for value in (fmt_money(1734.0), fmt_rate(9 / 50), fmt_money(1734.0 / 9), fmt_ratio(400 / (1734 / 9))):
        assert value in headline
    assert "1,734" in headline and "18.0 %" in headline and "193" in headline


def test_ltv_cac_flag_where_expected(html) -> None:
    table = html.split('id="by-channel"', 1)[1].split("</table>", 1)[0]
    ads = re.search(r'<tr data-channel="ads"[^>]*>.*?</tr>', table, re.S).group(0)
    referral = re.search(r'<tr data-channel="referral"[^>]*>.*?</tr>', table, re.S).group(0)
    assert 'class="low"' in ads and "below 3×" in ads and "0.5×" in ads
    assert "low" not in referral and "below" not in referral and "10.0×" in referral


def test_model_health(html) -> None:
    section = html.split('id="health-purchase_probability"', 1)[1].split("</section>", 1)[0]
    assert "0.907" in section and "0.785" in section and "rf_rule" in section
    assert section.count("data:image/png;base64,") == 2
    assert "No model yet" in html.split('id="health-time_to_close"', 1)[1]


def test_written_atomically(tmp_path, monkeypatch) -> None:
    path = render_report(hand_made_kpis(), HEALTH, tmp_path / "report.html")
    before = path.read_text(encoding="utf-8")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    # A failure while writing leaves the previous report whole and no temporary file behind.
    monkeypatch.setattr(Path, "write_text", broken)
    with pytest.raises(RuntimeError):
        render_report(hand_made_kpis(), HEALTH, path)
    monkeypatch.undo()
    assert path.read_text(encoding="utf-8") == before
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_no_personal_data_and_demo_world_renders(tmp_path) -> None:
    generate_world(2000, seed=11, out_dir=tmp_path / "crm", file_format="parquet")
    data = load_crm(tmp_path / "crm").data
    kpis = compute_kpis(data, Settings())
    assert kpis.overall["leads"] > 0 and np.isfinite(kpis.overall["cac"])
    path = render_report(kpis, [TargetHealth("lead_quality", note="no model yet")], tmp_path / "report.html")
    text = path.read_text(encoding="utf-8")
    assert _external_references(text) == []
    assert fmt_money(kpis.overall["spend"]) in text
    emails = data.leads["email"].dropna().astype(str).head(200)
    phones = data.leads["phone"].dropna().astype(str).head(200)
    assert not any(e in text for e in emails) and not any(p in text for p in phones)
    assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", text)
