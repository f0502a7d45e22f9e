"""The KPI report: one self-contained HTML file (tables, charts and model health).

``render_report(kpis, model_health, path)`` takes the figures of :func:`serving.kpis.compute_kpis`
and a plain model-health structure (``list[TargetHealth]``), so it needs neither the CRM nor
MLflow; :func:`collect_model_health` fills that structure from the registry. Charts are
matplotlib PNGs inlined as base64 ``data:`` URIs: the file opens anywhere, offline, and can
be mailed as it is. The report holds aggregates only, never a person's e-mail or phone.
"""

from __future__ import annotations

import base64
import io
import math
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # reports are rendered headless (CLI, schedulers)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from jinja2 import Environment, FileSystemLoader, select_autoescape  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from features.atomic import write_text  # noqa: E402
from radar.text import plural  # noqa: E402
from serving.kpis import LTV_CAC_TARGET, Kpis  # noqa: E402

TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE = "report.html.j2"
#: The plots training logs with every run (training.pipeline), shown per champion.
HEALTH_PLOTS: dict[str, str] = {"gain": "plots/gain.png", "calibration": "plots/reliability.png"}
#: Test metrics shown per contender, when present, in this order.
HEALTH_METRICS: tuple[str, ...] = (
    "auc", "pr_auc", "brier", "ece", "precision_top10", "lift_top10", "c_index", "integrated_brier",
)


@dataclass
class TargetHealth:
    """One target's champion as the report shows it; ``version`` None means no model yet."""

    target: str
    version: int | None = None
    model_type: str = ""
    trained_at: str = ""
    #: Test-snapshot metrics by contender: {"model": {...}, "<baseline>": {...}}.
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    #: Which contender serves (the gate's pick: "model" or a baseline) and the gate's reasons.
    served: str = ""
    gate: str = ""
    #: PNG bytes by plot name ("gain", "calibration").
    images: dict[str, bytes] = field(default_factory=dict)
    note: str = ""


# --- model health from the registry --------------------------------------------------------


def collect_model_health(targets: Iterable[str] | None = None, *, tracking_uri: str | None = None) -> list[TargetHealth]:
    """Each target's champion from the registry: version, test metrics and its gain and
    calibration plots. A target without a champion reads "no model yet"; an unreachable
    registry is reported on each target rather than failing the whole report."""
    from mlflow.exceptions import MlflowException

    from training.datasets import TARGETS
    from training.registry import load_bundle_with_info

    health = []
    for target in targets or TARGETS:
        try:
            bundle, info = load_bundle_with_info(target, tracking_uri=tracking_uri)
        except LookupError:
            health.append(TargetHealth(target, note="no model yet"))
            continue
        except (MlflowException, OSError) as err:
            health.append(TargetHealth(target, note=f"registry unavailable ({err.__class__.__name__})"))
            continue
        images, note = _run_plots(info.run_id, tracking_uri)
        health.append(
            TargetHealth(
                target=target,
                version=info.version,
                model_type=info.model_type or bundle.model_type,
                trained_at=info.trained_at or bundle.trained_at,
                metrics={name: dict(values) for name, values in bundle.metrics.items()},
                served=bundle.contender,
                gate=info.tags.get("decision_reason", ""),
                images=images,
                note=note,
            )
        )
    return health


def _run_plots(run_id: str, tracking_uri: str | None) -> tuple[dict[str, bytes], str]:
    """The champion run's gain and calibration PNGs (a fallback baseline run has none)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from radar.config import Settings
    from training.tracking import using_store

    images: dict[str, bytes] = {}
    missing = []
    with tempfile.TemporaryDirectory() as folder, using_store(tracking_uri or Settings().tracking_uri):
        for name, artifact in HEALTH_PLOTS.items():
            try:
                local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact, dst_path=folder)
                images[name] = Path(local).read_bytes()
            except (MlflowException, OSError):
                missing.append(name)
    return images, f"no {' or '.join(missing)} plot logged" if missing else ""


# --- formatting ----------------------------------------------------------------------------


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT


def fmt_money(value: object) -> str:
    """Money without decimals: ``12,345``; a dash when unknown."""
    return "–" if _missing(value) else f"{float(value):,.0f}"


def fmt_count(value: object) -> str:
    return "–" if _missing(value) else f"{int(value):,}"


def fmt_rate(value: object) -> str:
    """A share as a percentage with one decimal: ``18.7 %``."""
    return "–" if _missing(value) else f"{100 * float(value):.1f} %"


def fmt_ratio(value: object) -> str:
    """LTV/CAC and other multiples: ``4.2×``."""
    return "–" if _missing(value) else f"{float(value):.1f}×"


def fmt_number(value: object, digits: int = 1) -> str:
    return "–" if _missing(value) else f"{float(value):,.{digits}f}"


def fmt_metric(value: object) -> str:
    return "–" if _missing(value) else f"{float(value):.3f}"


# --- charts --------------------------------------------------------------------------------


def png_data_uri(figure: Figure) -> str:
    """A figure as an inline ``data:image/png;base64`` URI (the figure is closed)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return bytes_data_uri(buffer.getvalue())


def bytes_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def spend_conversion_chart(by_channel: pd.DataFrame) -> Figure:
    """Spend against conversions per channel: far right and low is expensive growth."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(by_channel["spend"], by_channel["conversions"], s=40)
    for channel, row in by_channel.iterrows():
        ax.annotate(str(channel), (row["spend"], row["conversions"]), textcoords="offset points", xytext=(4, 4))
    ax.set(xlabel="spend (mature lead months)", ylabel="converted leads", title="Spend vs conversions by channel")
    ax.grid(alpha=0.3)
    return fig


def ltv_cac_chart(by_channel: pd.DataFrame) -> Figure:
    """LTV/CAC per channel with the 3× line; bars below it in red."""
    values = by_channel["ltv_cac"].dropna().sort_values()
    fig, ax = plt.subplots(figsize=(6, 0.5 * max(len(values), 2) + 1))
    colours = ["#c0392b" if v < LTV_CAC_TARGET else "#2e86c1" for v in values]
    ax.barh([str(c) for c in values.index], values.to_numpy(), color=colours)
    ax.axvline(LTV_CAC_TARGET, color="black", linestyle="--", label=f"{LTV_CAC_TARGET:g}× target")
    ax.set(xlabel="LTV / CAC", title="LTV/CAC by channel")
    ax.legend(loc="lower right")
    return fig


def funnel_chart(funnel: pd.DataFrame) -> Figure:
    fig, ax = plt.subplots(figsize=(6, 3))
    stages = [str(s) for s in funnel.index][::-1]
    people = funnel["people"].to_numpy()[::-1]
    ax.barh(stages, people, color="#2e86c1")
    for y, n in enumerate(people):
        ax.annotate(f"{int(n):,}", (n, y), textcoords="offset points", xytext=(4, -4))
    ax.set(xlabel="people who reached the stage", title="Customer journey")
    return fig


def churn_chart(churn: pd.DataFrame) -> Figure:
    """Churn by indifference and after a service problem, stacked per month."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    labels = [pd.Timestamp(m).strftime("%Y-%m") for m in churn.index]
    x = np.arange(len(labels))
    ax.bar(x, churn["indifference"], label="indifference", color="#95a5a6")
    ax.bar(x, churn["service"], bottom=churn["indifference"], label="service", color="#c0392b")
    ax.set_xticks(x, labels, rotation=60, fontsize=7)
    ax.set(ylabel="customers who went quiet", title="Churn by cause (as-of month)")
    ax.legend()
    return fig


# --- tables for the template ---------------------------------------------------------------


def _acquisition_row(label: str, row: pd.Series) -> dict[str, Any]:
    return {
        "label": label,
        "spend": fmt_money(row["spend"]),
        "leads": fmt_count(row["leads"]),
        "cost_per_lead": fmt_number(row["cost_per_lead"], 2),
        "conversions": fmt_count(row["conversions"]),
        "conversion_rate": fmt_rate(row["conversion_rate"]),
        "cac": fmt_money(row["cac"]),
        "avg_ticket": fmt_money(row["avg_ticket"]),
        "ltv": fmt_money(row["ltv"]),
        "ltv_cac": fmt_ratio(row["ltv_cac"]),
        "low": bool(row["ltv_cac_low"]),
        "nps": fmt_number(row["nps"]),
        "nps_answers": fmt_count(row["nps_answers"]),
        "cycle": fmt_number(row["median_cycle_days"]),
        "mature": bool(row["mature"]),
    }


def channel_rows(kpis: Kpis) -> list[dict[str, Any]]:
    return [_acquisition_row(str(channel), row) for channel, row in kpis.by_channel.iterrows()]


def month_rows(kpis: Kpis) -> list[dict[str, Any]]:
    """Channel-month rows, newest month first."""
    frame = kpis.by_channel_month.sort_index(level=["month", "channel"], ascending=[False, True])
    return [
        _acquisition_row(f"{channel} · {pd.Timestamp(month):%Y-%m}", row) | {"channel": str(channel)}
        for (channel, month), row in frame.iterrows()
    ]


def headline(kpis: Kpis) -> list[tuple[str, str]]:
    """The figures at the top of the report, as (label, formatted value)."""
    o = kpis.overall
    return [
        ("Spend", fmt_money(o.get("spend"))),
        ("Leads", fmt_count(o.get("leads"))),
        ("Conversion rate", fmt_rate(o.get("conversion_rate"))),
        ("CAC", fmt_money(o.get("cac"))),
        ("Average ticket", fmt_money(o.get("avg_ticket"))),
        ("Predicted LTV", fmt_money(o.get("ltv"))),
        ("LTV/CAC", fmt_ratio(o.get("ltv_cac"))),
        ("NPS", fmt_number(o.get("nps"))),
        ("Median sales cycle (days)", fmt_number(o.get("median_cycle_days"))),
    ]


def _difference(values: dict[str, float], metric: str) -> str:
    """``+0.0012 (−0.0010 to +0.0034)``: this contender minus the served one, with the gate's interval."""
    diff, low, high = (values.get(f"{metric}{k}") for k in ("_diff", "_low", "_high"))
    if diff is None or diff != diff:
        return ""
    return f"{diff:+.4f}" + ("" if low is None or low != low else f" ({low:+.4f} to {high:+.4f})")


def health_view(health: Sequence[TargetHealth]) -> list[dict[str, Any]]:
    """Per target: its metric table (contender × metric, each contender's difference from
    the served one with the gate's interval) and inline plots."""
    views = []
    for item in health:
        names = [m for m in HEALTH_METRICS if any(m in v for v in item.metrics.values())]
        loss = "integrated_brier" if any("integrated_brier" in v for v in item.metrics.values()) else "brier"
        names_shown = [*names, f"Δ {loss} vs served (interval)"]
        rows = [
            {
                "contender": contender + (" (serves)" if contender == item.served else ""),
                "values": [fmt_metric(values.get(m)) for m in names] + [_difference(values, loss)],
            }
            for contender, values in item.metrics.items()
        ]
        names = names_shown
        images = {name: bytes_data_uri(png) for name, png in item.images.items()}
        views.append({"item": item, "metric_names": names, "rows": rows, "images": images})
    return views


def _charts(kpis: Kpis) -> dict[str, str]:
    charts = {"funnel": png_data_uri(funnel_chart(kpis.funnel))}
    channels = kpis.by_channel
    if len(channels):
        charts["spend"] = png_data_uri(spend_conversion_chart(channels))
    if channels["ltv_cac"].notna().any():
        charts["ltv_cac"] = png_data_uri(ltv_cac_chart(channels))
    if len(kpis.churn):
        charts["churn"] = png_data_uri(churn_chart(kpis.churn))
    return charts


# --- rendering -----------------------------------------------------------------------------


def render_html(kpis: Kpis, model_health: Sequence[TargetHealth]) -> str:
    """The report as one HTML string (no file, no network)."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    env.filters["plural"] = plural  # {{ n|plural("row") }}: "1 row", "12 rows"
    churn = kpis.churn.assign(month=[f"{pd.Timestamp(m):%Y-%m}" for m in kpis.churn.index])
    return env.get_template(TEMPLATE).render(
        as_of=f"{kpis.as_of:%Y-%m-%d}",
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        horizon=kpis.horizon_days,
        target=f"{LTV_CAC_TARGET:g}",
        headline=headline(kpis),
        overall_low=bool(kpis.overall.get("ltv_cac_low")),
        channels=channel_rows(kpis),
        months=month_rows(kpis),
        funnel=[(str(stage), fmt_count(n)) for stage, n in kpis.funnel["people"].items()],
        churn=churn.to_dict("records"),
        ltv=[
            (str(c), fmt_money(r["revenue_per_year"]), fmt_rate(r["churn_rate"]), fmt_number(r["lifetime_years"], 2))
            for c, r in kpis.ltv_inputs.iterrows()
        ],
        charts=_charts(kpis),
        health=health_view(model_health),
    )


def render_report(kpis: Kpis, model_health: Sequence[TargetHealth], path: Path) -> Path:
    """Write the report to ``path`` atomically (readers never see half a file); return it."""
    return write_text(render_html(kpis, model_health), Path(path))
