"""Drift monitoring: PSI by hand, profiles kept with the bundles, `radar monitor` on a world
that moved and one that did not, nothing read from after the as-of, and /metrics."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from features.contract import CRMData
from features.pipeline import build_features
from radar.config import MonitoringConfig, Settings
from radar.demo import generate_world
from serving.monitor import EXIT_DRIFT, monitor_crm, render_html, render_markdown, target_drift
from serving.scoring import Champion, load_champions
from servers import running_server
from training.drift import NoProfile, bin_column, build_profile, compare, judge, profile_of, psi

KEY = "monitor-key-1"
#: The fixture `trained` world (tests/conftest.py): same arguments, byte-identical files.
WORLD = {"n_customers": 3000, "seed": 11}


# --- PSI and bins, worked by hand -------------------------------------------------------------


def test_psi_of_identical_distributions_is_zero() -> None:
    assert psi([0.25, 0.25, 0.5], [0.25, 0.25, 0.5]) == 0.0


def test_psi_hand_worked() -> None:
    # (0.7 - 0.5) ln(0.7 / 0.5) + (0.3 - 0.5) ln(0.3 / 0.5) = 0.067294 + 0.102165
    assert psi([0.5, 0.5], [0.7, 0.3]) == pytest.approx(0.169460, abs=1e-6)
    # Counts are normalised: 10/30/60 vs 20/30/50 -> 0.1 ln 2 + 0 + (-0.1) ln(5/6)
    assert psi([10, 30, 60], [20, 30, 50]) == pytest.approx(0.1 * math.log(2) - 0.1 * math.log(5 / 6))
    # Symmetric in its arguments.
    assert psi([0.7, 0.3], [0.5, 0.5]) == pytest.approx(psi([0.5, 0.5], [0.7, 0.3]))


def test_psi_floors_empty_bins() -> None:
    # Reference bin 2 is empty: floored at 1e-4, so (0.9 - 1) ln 0.9 + (0.1 - 1e-4) ln(0.1 / 1e-4).
    expected = (0.9 - 1) * math.log(0.9) + (0.1 - 1e-4) * math.log(0.1 / 1e-4)
    assert psi([1, 0], [0.9, 0.1]) == pytest.approx(expected)
    assert math.isfinite(psi([1, 0], [0, 1]))


def test_psi_refuses_mismatched_bins() -> None:
    with pytest.raises(ValueError):
        psi([0.5, 0.5], [1.0])
    with pytest.raises(ValueError):
        psi([0, 0], [0.5, 0.5])


def test_numeric_bins_are_quantiles_of_the_reference_with_a_missing_bin() -> None:
    values = pd.Series([0.0] * 6 + [1, 2, 3, 4] + [np.nan] * 2)
    binned = bin_column(values, bins=4)
    # Quartiles of the ten present values (observed values, not interpolated): 0, 0, 2.
    assert binned.kind == "numeric"
    assert binned.edges == [0.0, 2.0]
    # <= 0: six, (0, 2]: two, > 2: two, missing: two (of twelve).
    assert binned.proportions == pytest.approx([0.5, 2 / 12, 2 / 12, 2 / 12])
    assert binned.missing_share == pytest.approx(2 / 12)
    assert binned.labels() == ["<= 0", "(0, 2]", "> 2", "missing"]
    # Values beyond the reference range land in the end bins; text counts as missing.
    assert list(binned.counts(pd.Series([-5.0, 0.0, 1.5, 99.0, np.nan]))) == [2, 1, 1, 1]
    assert list(binned.counts(pd.Series(["x", 1.0], dtype=object))) == [0, 1, 0, 1]


def test_categorical_bins_keep_the_frequent_categories_and_an_other_bucket() -> None:
    values = pd.Series(["a"] * 5 + ["b"] * 3 + ["c"] + [None], dtype=object)
    binned = bin_column(values, max_categories=2)
    assert binned.kind == "categorical"
    assert binned.categories == ["a", "b"]
    assert binned.proportions == pytest.approx([0.5, 0.3, 0.1, 0.1])
    assert binned.labels() == ["a", "b", "other", "missing"]
    # An unseen category goes to "other"; works on pandas categoricals too.
    now = pd.Series(pd.Categorical(["a", "z", None, "b", "b"]))
    assert list(binned.counts(now)) == [1, 2, 1, 1]


def _frame(n: int, rng: np.random.Generator, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({
        "amount": rng.gamma(2.0, 50.0, n) * (1 + shift),
        "visits": rng.poisson(2, n).astype(float),
        "source": pd.Categorical(rng.choice(["web", "ads", "event"], n, p=[0.6, 0.3, 0.1])),
    })


def test_compare_a_population_with_itself_and_with_a_shifted_one() -> None:
    rng = np.random.default_rng(0)
    reference = _frame(5000, rng)
    scores = rng.uniform(size=5000)
    profile = build_profile(reference, scores, "2026-07-01", MonitoringConfig())
    assert profile.as_of == "2026-07-01" and profile.n_rows == 5000

    same = compare(profile, reference, scores)
    assert same.score_psi == 0.0
    assert (same.features["psi"] == 0.0).all()
    level, table, note = judge(same, MonitoringConfig())
    assert level == "ok" and note == "" and set(table["level"]) == {"ok"}

    moved = _frame(5000, rng, shift=1.0)
    moved.loc[moved.index[:1000], "visits"] = np.nan  # 20 % newly missing
    moved = moved.drop(columns="source")  # a column that no longer arrives
    result = compare(profile, moved, rng.uniform(size=5000) ** 3)
    level, table, _ = judge(result, MonitoringConfig())
    assert level == "alert"
    assert table.loc["amount", "psi"] > 0.25 and table.loc["amount", "level"] == "alert"
    assert table.loc["visits", "missing_now"] == pytest.approx(0.2)
    assert table.loc["source", "missing_now"] == 1.0 and table.loc["source", "level"] == "alert"
    assert result.score_psi > 0.25
    assert table.loc["visits", "level"] == "alert"  # 20 points more missing: past the 10-point alert
    assert table["level"].iloc[0] == "alert"  # worst first


def test_small_populations_are_reported_but_not_judged() -> None:
    rng = np.random.default_rng(1)
    profile = build_profile(_frame(3000, rng), rng.uniform(size=3000), "2026-01-01")
    small = _frame(50, rng, shift=2.0)
    level, table, note = judge(compare(profile, small, rng.uniform(size=50)), MonitoringConfig(min_rows=200))
    assert level == "ok"
    assert "only 50 rows" in note and "would be alert" in note
    assert table.loc["amount", "level"] == "alert"


def test_profile_survives_its_plain_dict_form() -> None:
    rng = np.random.default_rng(2)
    frame = _frame(1000, rng)
    scores = rng.uniform(size=1000)
    profile = build_profile(frame, scores, "2026-01-01")
    bundle = type("Bundle", (), {"target": "x", "profile": profile.to_dict()})()
    again = profile_of(bundle)
    assert again == profile
    assert compare(again, frame, scores).score_psi == 0.0


def test_bundles_without_a_profile_say_so() -> None:
    old = type("OldBundle", (), {"target": "lead_quality"})()  # an older pickle: no attribute
    with pytest.raises(NoProfile, match="trained before Radar kept a drift profile"):
        profile_of(old)
    drift = target_drift("lead_quality", Champion(old, "3"), pd.DataFrame({"a": [1.0]}), MonitoringConfig())  # type: ignore[arg-type]
    assert drift.comparison is None and "retrain" in drift.note


def test_monitoring_config_refuses_warn_above_alert() -> None:
    with pytest.raises(ValueError):
        MonitoringConfig(psi_warn=0.3, psi_alert=0.2)


# --- the command, on the trained world and on a moved copy ----------------------------------


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The trained world again (same seed: same files) and a copy whose order amounts
    arrive in cents, as after an export change."""
    root = tmp_path_factory.mktemp("monitor_worlds")
    same, shifted = root / "same", root / "shifted"
    generate_world(out_dir=same, **WORLD)
    generate_world(out_dir=shifted, **WORLD)
    orders = pd.read_csv(shifted / "orders.csv", dtype=str, keep_default_na=False)
    amount = pd.to_numeric(orders["amount"], errors="coerce") * 100
    orders["amount"] = amount.map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    orders.to_csv(shifted / "orders.csv", index=False)
    return {"same": same, "shifted": shifted}


def _radar(args: list[str], settings: Settings, monkeypatch: pytest.MonkeyPatch,
           capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`radar ARGS` in this process against the trained registry: exit code, out, err."""
    from radar import cli

    monkeypatch.setenv("RADAR_WORK_DIR", str(settings.work_dir))
    monkeypatch.setenv("RADAR_MLFLOW_TRACKING_URI", settings.tracking_uri)
    monkeypatch.setattr(sys, "argv", ["radar", *args])
    with pytest.raises(SystemExit) as ended:
        cli.main()
    captured = capsys.readouterr()
    code = ended.value.code
    return (0 if code is None else int(code)), captured.out, captured.err


def test_unshifted_world_exits_0_with_a_markdown_report(trained, worlds, tmp_path, monkeypatch, capsys) -> None:
    settings = trained[0]
    out = tmp_path / "drift.md"
    code, printed, _ = _radar(["monitor", str(worlds["same"]), "--out", str(out)], settings, monkeypatch, capsys)
    assert code == 0, printed
    assert "Drift as of" in printed and "purchase_probability" in printed
    report = out.read_text(encoding="utf-8")
    assert report.startswith("# Radar drift report")
    for target in load_champions(settings):
        assert f"## {target}:" in report
    assert "alert" not in printed.split("\n")[0]


def test_shifted_world_exits_3_and_names_the_feature(trained, worlds, tmp_path, monkeypatch, capsys) -> None:
    settings = trained[0]
    out = tmp_path / "drift.html"
    code, printed, _ = _radar(["monitor", str(worlds["shifted"]), "--out", str(out)], settings, monkeypatch, capsys)
    assert code == EXIT_DRIFT, printed
    purchase = next(line for line in printed.splitlines() if line.strip().startswith("purchase_probability"))
    assert "alert" in purchase and "paid_amount_mean" in purchase
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert '<tr class="alert"><td>paid_amount_mean</td>' in page


def test_bad_input_exits_2(trained, worlds, tmp_path, monkeypatch, capsys) -> None:
    settings = trained[0]
    code, _, err = _radar(["monitor", str(tmp_path / "nowhere")], settings, monkeypatch, capsys)
    assert code == 2 and "nowhere" in err
    code, _, err = _radar(["monitor", str(worlds["same"]), "--out", str(tmp_path / "r.txt")], settings, monkeypatch, capsys)
    assert code == 2 and ".md or .html" in err
    code, _, err = _radar(["monitor", str(worlds["same"]), "--as-of", "2026-13-01"], settings, monkeypatch, capsys)
    assert code == 2 and "YYYY-MM-DD" in err


def test_champions_without_profiles_exit_2_with_a_clear_message(trained, worlds, monkeypatch, capsys) -> None:
    import dataclasses

    import serving.scoring

    settings = trained[0]
    old = {t: Champion(dataclasses.replace(c.bundle, profile=None), c.version) for t, c in load_champions(settings).items()}
    monkeypatch.setattr(serving.scoring, "load_champions", lambda settings: old)
    code, _, err = _radar(["monitor", str(worlds["same"])], settings, monkeypatch, capsys)
    assert code == 2
    assert "trained before Radar kept a drift profile" in err and "retrain" in err


# --- nothing from the future ---------------------------------------------------------------


def _before(data: CRMData, moment: pd.Timestamp) -> CRMData:
    """Only what was known before ``moment``: later rows dropped, later outcomes blanked."""
    leads = data.leads[data.leads["created_at"] < moment]
    leads = leads.assign(**{c: leads[c].where(leads[c] < moment) for c in ("qualified_at", "converted_at")})
    deals = data.deals[data.deals["created_at"] < moment]
    closed = deals["closed_at"] < moment
    deals = deals.assign(closed_at=deals["closed_at"].where(closed), outcome=deals["outcome"].where(closed))
    return CRMData(
        leads=leads,
        interactions=data.interactions[data.interactions["timestamp"] < moment],
        orders=data.orders[data.orders["timestamp"] < moment],
        deals=deals,
        spend=data.spend[data.spend["date"] < moment] if data.spend is not None else None,
    )


def test_monitor_reads_nothing_from_after_the_as_of(trained) -> None:
    settings, data, end = trained
    moment = end - pd.Timedelta(days=61)
    champions = load_champions(settings)
    full = monitor_crm(data, moment, champions, settings)
    known = monitor_crm(_before(data, moment), moment, champions, settings)
    assert full.profiled == list(champions)
    for target in champions:
        a, b = full.targets[target].comparison, known.targets[target].comparison
        assert a is not None and b is not None
        assert a.n_now == b.n_now and a.score_psi == b.score_psi
        pd.testing.assert_frame_equal(a.features, b.features)
    # And the report renders in both formats.
    assert "## purchase_probability" in render_markdown(full)
    assert "<h2>purchase_probability" in render_html(full)


def test_profile_is_the_test_snapshot_built_before_its_as_of(trained) -> None:
    settings, data, _ = trained
    bundle = load_champions(settings)["purchase_probability"].bundle
    stored = profile_of(bundle)
    test_day = pd.Timestamp(bundle.snapshot_plan["test"])
    assert stored.as_of == test_day.date().isoformat()
    # Everyone known before the test day is in purchase_probability's test snapshot:
    # rebuilt from only what was known then, the profile comes out the same.
    X = build_features(_before(data, test_day), test_day, settings.features)[bundle.feature_names]
    again = build_profile(X, bundle.predict(X)["probability"].to_numpy(), test_day, settings.monitoring)
    assert again.n_rows == stored.n_rows
    for name, binned in stored.features.items():
        assert again.features[name].edges == binned.edges, name
        assert again.features[name].categories == binned.categories, name
        assert again.features[name].proportions == pytest.approx(binned.proportions), name
    assert again.score.proportions == pytest.approx(stored.score.proportions)


# --- /metrics on the real server -------------------------------------------------------------


def test_metrics_endpoint_carries_the_drift_gauges(trained) -> None:
    from serving.feature_store import FeatureStore, default_store_path
    from serving.monitor import monitor_store

    settings = trained[0]
    with running_server(settings, KEY, "monitor_server.log") as (url, _):
        deadline = time.monotonic() + 60
        while True:
            # No key: /metrics is open, as BentoML's own is (put it behind the network's
            # scrape policy, not the API key).
            answer = httpx.get(f"{url}/metrics", timeout=10)
            assert answer.status_code == 200
            if "radar_drift_computed_timestamp_seconds " in answer.text or time.monotonic() > deadline:
                break
            time.sleep(0.25)
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    assert "radar_drift_computed_timestamp_seconds" in families, "no drift figures within a minute"
    assert any(name.startswith("bentoml_") for name in families), "BentoML's own metrics are still there"
    champions = load_champions(settings)
    expected = monitor_store(FeatureStore(default_store_path(settings)), champions, settings)
    score = {s.labels["target"]: s.value for s in families["radar_score_psi"].samples}
    assert set(score) == set(champions)
    for target, value in score.items():
        assert value == pytest.approx(expected.targets[target].comparison.score_psi)
    for name in ("radar_feature_psi", "radar_feature_missing_share", "radar_feature_missing_share_training"):
        samples = families[name].samples
        assert len(samples) == sum(len(c.bundle.feature_names) for c in champions.values())
        assert all(math.isfinite(s.value) and s.value >= 0 for s in samples)
        assert {"target", "feature"} <= set(samples[0].labels)
    assert all(0 <= s.value <= 1 for s in families["radar_feature_missing_share"].samples)
    feature = {(s.labels["target"], s.labels["feature"]): s.value for s in families["radar_feature_psi"].samples}
    table = expected.targets["purchase_probability"].comparison.features
    assert feature[("purchase_probability", "tenure_days")] == pytest.approx(table.loc["tenure_days", "psi"])
