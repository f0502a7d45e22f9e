"""Drift monitoring: each champion's features and scores today against its training profile.

``radar monitor DIR`` builds today's features from a CRM export with the point-in-time
pipeline (events strictly before the as-of), scores each target's eligible people with its
champion, and compares both with the profile kept in the champion's bundle (the figures
themselves are computed in :mod:`training.drift`). The server does the same over the latest
day materialised in the online feature store when its champions load, and publishes the
figures as Prometheus gauges on BentoML's ``/metrics`` (:func:`publish_gauges`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from html import escape
from pathlib import Path

import pandas as pd

from features.contract import CRMData
from features.pipeline import build_features
from features.rows import FeatureRows
from radar.config import MonitoringConfig, Settings
from radar.text import plural
from serving.feature_store import FeatureStore
from serving.scoring import Champion, target_rows
from training.drift import LEVELS, Comparison, Level, NoProfile, compare, judge, profile_of, worst_level

logger = logging.getLogger(__name__)

#: Exit code of `radar monitor` when drift passes ``monitoring.fail_on`` (2 is bad input).
EXIT_DRIFT = 3


@dataclass
class TargetDrift:
    """One champion's figures today (``comparison`` is None when it could not be compared)."""

    target: str
    version: str
    level: Level
    comparison: Comparison | None = None
    #: The judged feature table, worst first (see ``training.drift.judge``).
    features: pd.DataFrame | None = None
    note: str = ""
    reference_as_of: str | None = None

    @property
    def judged(self) -> bool:
        return self.comparison is not None and not self.note


@dataclass
class DriftReport:
    """Every champion's drift at one as-of."""

    as_of: date
    source: str
    config: MonitoringConfig
    targets: dict[str, TargetDrift] = field(default_factory=dict)

    @property
    def level(self) -> Level:
        return worst_level([t.level for t in self.targets.values()])

    @property
    def failed(self) -> bool:
        """Whether the figures pass the level a scheduler should be told about."""
        return LEVELS.index(self.level) >= LEVELS.index(self.config.fail_on)

    @property
    def profiled(self) -> list[str]:
        return [name for name, t in self.targets.items() if t.comparison is not None]


def target_drift(target: str, champion: Champion, rows: pd.DataFrame, config: MonitoringConfig) -> TargetDrift:
    """Compare one champion's eligible rows today (and its scores of them) with its profile."""
    try:
        profile = profile_of(champion.bundle)
    except NoProfile as err:
        return TargetDrift(target, champion.version, "ok", note=str(err))
    if len(rows) == 0:
        return TargetDrift(target, champion.version, "ok", note="nobody is eligible today",
                           reference_as_of=profile.as_of)
    scores = champion.bundle.predict(rows)["probability"].to_numpy(dtype=float)
    comparison = compare(profile, rows, scores)
    level, table, note = judge(comparison, config)
    return TargetDrift(target, champion.version, level, comparison, table, note, profile.as_of)


def monitor_crm(data: CRMData, as_of: pd.Timestamp, champions: dict[str, Champion], settings: Settings) -> DriftReport:
    """Drift of every champion over a CRM export at ``as_of`` (features from events strictly
    before it, the populations each target scores: ``serving.scoring.eligible``)."""
    moment = pd.Timestamp(as_of)
    features = build_features(data, moment, settings.features)
    report = DriftReport(moment.date(), "CRM export", settings.monitoring)
    for target, champion in champions.items():
        rows = target_rows(target, data, features, moment, settings)
        report.targets[target] = target_drift(target, champion, rows, settings.monitoring)
    return report


def monitor_store(store: FeatureStore, champions: dict[str, Champion], settings: Settings,
                  as_of: date | None = None) -> DriftReport:
    """Drift of every champion over a materialised day of the feature store (default: the
    latest), with the populations stored beside the features."""
    stored = store.read_day(as_of)
    report = DriftReport(stored.as_of, "feature store", settings.monitoring)
    for target, champion in champions.items():
        people = stored.features.loc[stored.features.index.intersection(stored.eligible.get(target, pd.Index([])))]
        if target == "time_to_close":  # one row per open deal, as it is scored
            people = store.read_deals(stored.as_of, FeatureRows.from_frame(people)).to_frame()
        report.targets[target] = target_drift(target, champion, people, settings.monitoring)
    return report


# --- reports -------------------------------------------------------------------------------


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _summary_rows(report: DriftReport) -> list[list[str]]:
    rows = []
    for name, t in report.targets.items():
        if t.comparison is None or t.features is None:
            rows.append([name, t.version, "not compared", "", "", "", t.note])
            continue
        flagged = t.features[t.features["level"] != "ok"]
        worst = t.features.index[0] if len(t.features) else ""
        worst_text = f"{worst} ({t.features['psi'].iloc[0]:.3f})" if len(t.features) else ""
        rows.append([
            name, t.version, t.level if t.judged else f"{t.level} (not judged)", f"{t.comparison.score_psi:.3f}",
            worst_text, f"{(flagged['level'] == 'alert').sum()} alert, {(flagged['level'] == 'warn').sum()} warn",
            t.note,
        ])
    return rows


SUMMARY_HEADER = ["target", "version", "level", "score PSI", "worst feature (PSI)", "features", "note"]
FEATURE_HEADER = ["feature", "PSI", "missing at training", "missing now", "level", "largest move"]


def _feature_rows(t: TargetDrift, top: int) -> list[list[str]]:
    assert t.features is not None
    return [
        [name, f"{r.psi:.3f}", _pct(r.missing_reference), _pct(r.missing_now), r.level, r.moved]
        for name, r in t.features.head(top).iterrows()
    ]


def _thresholds(config: MonitoringConfig) -> str:
    return (f"PSI warn {config.psi_warn}, alert {config.psi_alert}; missing share change warn "
            f"{config.missing_share_warn:.0%}, alert {config.missing_share_alert:.0%}; judged from "
            f"{plural(config.min_rows, 'row')}; exit {EXIT_DRIFT} at {config.fail_on}")


def render_markdown(report: DriftReport, top: int = 15) -> str:
    """The report as Markdown: a summary, then each target's worst features first."""
    def table(header: list[str], rows: list[list[str]]) -> list[str]:
        cell = lambda v: str(v).replace("|", "\\|")  # noqa: E731
        return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows)]

    lines = [
        f"# Radar drift report, {report.as_of.isoformat()}",
        "",
        f"Overall: **{report.level}**. Today's data: {report.source}, features from events before "
        f"{report.as_of.isoformat()}. Thresholds: {_thresholds(report.config)}.",
        "",
        *table(SUMMARY_HEADER, _summary_rows(report)),
    ]
    for name, t in report.targets.items():
        if t.comparison is None:
            continue
        lines += [
            "",
            f"## {name}: {t.level}",
            "",
            f"Champion v{t.version}; training profile of the snapshot as of {t.reference_as_of} "
            f"({plural(t.comparison.n_reference, 'row')}) against {plural(t.comparison.n_now, 'row')} today. "
            f"Score PSI {t.comparison.score_psi:.3f} ({t.comparison.score_moved}).",
            *(["", f"Note: {t.note}"] if t.note else []),
            "",
            *table(FEATURE_HEADER, _feature_rows(t, top)),
        ]
    return "\n".join(lines) + "\n"


def render_html(report: DriftReport, top: int = 15) -> str:
    """The same report as one self-contained HTML page."""
    def table(header: list[str], rows: list[list[str]], level_column: int | None) -> str:
        head = "".join(f"<th>{escape(h)}</th>" for h in header)
        body = []
        for row in rows:
            level = str(row[level_column]).split(" ")[0] if level_column is not None else ""
            cells = "".join(f"<td>{escape(str(v))}</td>" for v in row)
            body.append(f'<tr class="{escape(level)}">{cells}</tr>')
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

    parts = [
        f"<h1>Radar drift report, {report.as_of.isoformat()}</h1>",
        f"<p>Overall: <b>{escape(report.level)}</b>. Today's data: {escape(report.source)}, features from "
        f"events before {report.as_of.isoformat()}. Thresholds: {escape(_thresholds(report.config))}.</p>",
        table(SUMMARY_HEADER, _summary_rows(report), 2),
    ]
    for name, t in report.targets.items():
        if t.comparison is None:
            continue
        parts += [
            f"<h2>{escape(name)}: {escape(t.level)}</h2>",
            f"<p>Champion v{escape(t.version)}; training profile of the snapshot as of "
            f"{escape(str(t.reference_as_of))} ({plural(t.comparison.n_reference, 'row')}) against "
            f"{plural(t.comparison.n_now, 'row')} today. Score PSI {t.comparison.score_psi:.3f} "
            f"({escape(t.comparison.score_moved)}).</p>",
            f"<p>Note: {escape(t.note)}</p>" if t.note else "",
            table(FEATURE_HEADER, _feature_rows(t, top), 4),
        ]
    style = ("body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}tr.warn{background:#fff4cc}"
             "tr.alert{background:#ffd6d6}")
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Radar drift "
            f"{report.as_of.isoformat()}</title><style>{style}</style></head><body>{''.join(parts)}</body></html>\n")


def write_report(report: DriftReport, out: Path, top: int = 15) -> Path:
    """Markdown for ``.md``, HTML for ``.html``/``.htm`` (written atomically)."""
    from features.atomic import write_text

    suffix = Path(out).suffix.lower()
    if suffix == ".md":
        text = render_markdown(report, top)
    elif suffix in (".html", ".htm"):
        text = render_html(report, top)
    else:
        raise ValueError(f"--out must end in .md or .html, not {suffix or 'nothing'!r}")
    write_text(text, out)
    return Path(out)


# --- Prometheus gauges ------------------------------------------------------------------

_gauges: dict[str, object] = {}
_gauges_lock = threading.Lock()


def _gauge_set() -> dict[str, object]:
    """The gauges, created once per process. prometheus_client is imported here, not at
    module import: BentoML points it at its multiprocess directory when a worker starts,
    and a client imported earlier would keep its values to itself (see bentoml.metrics)."""
    with _gauges_lock:
        if not _gauges:
            from prometheus_client import Gauge

            # One value per series whatever the number of workers: every worker computes
            # the same figures; "livemostrecent" shows the latest of the live workers.
            mode = "livemostrecent"
            _gauges.update(
                feature_psi=Gauge("radar_feature_psi", "PSI of a feature today vs the champion's training profile",
                                  ["target", "feature"], multiprocess_mode=mode),
                missing=Gauge("radar_feature_missing_share", "Share of rows missing the feature today",
                              ["target", "feature"], multiprocess_mode=mode),
                missing_training=Gauge("radar_feature_missing_share_training",
                                       "Share of rows missing the feature in the champion's training profile",
                                       ["target", "feature"], multiprocess_mode=mode),
                score_psi=Gauge("radar_score_psi", "PSI of the champion's scores today vs its training profile",
                                ["target"], multiprocess_mode=mode),
                level=Gauge("radar_drift_level", "Drift level of the target: 0 ok, 1 warn, 2 alert (min_rows applied)",
                            ["target"], multiprocess_mode=mode),
                computed=Gauge("radar_drift_computed_timestamp_seconds",
                               "When the drift figures were last published (set after all the others)",
                               multiprocess_mode=mode),
            )
        return _gauges


def publish_gauges(report: DriftReport) -> int:
    """Set the radar_* gauges from a report; returns the number of series set."""
    gauges = _gauge_set()
    count = 0
    for name, t in report.targets.items():
        if t.comparison is None:
            continue
        gauges["score_psi"].labels(target=name).set(t.comparison.score_psi)  # type: ignore[attr-defined]
        gauges["level"].labels(target=name).set(LEVELS.index(t.level))  # type: ignore[attr-defined]
        count += 2
        for feature, row in t.comparison.features.iterrows():
            labels = {"target": name, "feature": str(feature)}
            gauges["feature_psi"].labels(**labels).set(row["psi"])  # type: ignore[attr-defined]
            gauges["missing"].labels(**labels).set(row["missing_now"])  # type: ignore[attr-defined]
            gauges["missing_training"].labels(**labels).set(row["missing_reference"])  # type: ignore[attr-defined]
            count += 3
    # Last, so a scrape that sees it sees every figure of this report.
    gauges["computed"].set(time.time())  # type: ignore[attr-defined]
    return count + 1


def publish_store_drift(store: FeatureStore | None, champions: dict[str, Champion], settings: Settings) -> DriftReport | None:
    """What the server runs once its champions are loaded: drift over the latest
    materialised day, published on /metrics. Never raises: monitoring must not stop
    serving; what went wrong is logged."""
    from serving.feature_store import StoreUnavailable, UnknownDay

    if store is None or not store.exists():
        logger.info("drift metrics: no feature store yet, nothing to compare")
        return None
    try:
        report = monitor_store(store, champions, settings)
        count = publish_gauges(report)
    except UnknownDay:
        logger.info("drift metrics: no materialised day in the feature store")
        return None
    except StoreUnavailable as err:  # a shared store down at start: one line, not a traceback
        logger.warning("drift metrics not computed: %s", err)
        return None
    except Exception:  # logged: a monitoring failure must not take scoring down
        logger.exception("drift metrics could not be computed")
        return None
    for name, t in report.targets.items():
        if t.note:
            logger.info("drift metrics, %s: %s", name, t.note)
    logger.info("drift metrics for %s: %d series, overall %s", report.as_of, count, report.level)
    return report


def summary_lines(report: DriftReport) -> list[str]:
    """A few lines for a terminal or a scheduler's log."""
    lines = [f"Drift as of {report.as_of.isoformat()} ({report.source}): {report.level}"]
    for name, t in report.targets.items():
        if t.comparison is None or t.features is None:
            lines.append(f"  {name:<24} not compared: {t.note}")
            continue
        flagged = t.features[t.features["level"] != "ok"]
        worst = ", ".join(f"{f} {r.psi:.2f}" + (f" (missing {r.missing_change:+.0%})" if abs(r.missing_change) >= 0.005 else "")
                          for f, r in flagged.head(3).iterrows())
        lines.append(
            f"  {name:<24} {t.level:<5} score PSI {t.comparison.score_psi:.3f}; "
            f"{len(flagged)} of {len(t.features)} features past a threshold" + (f": {worst}" if worst else "")
            + (f" [{t.note}]" if t.note else "")
        )
    return lines

