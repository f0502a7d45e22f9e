"""Flat tables: reading, column handling, training with the leakage guard, scoring."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.errors import RadarInputError
from radar.config import Settings, TrainingConfig
from training.flat import (
    OTHER_LEVEL,
    FlatModel,
    load_flat_table,
    score_flat,
    train_flat,
)

X_EDUCATION = Path(__file__).resolve().parents[2] / "shared" / "data" / "x_education_leads.csv"
N = 3000


def _planted_frame(n: int = N, seed: int = 11) -> pd.DataFrame:
    """Leads with two honest columns, two leaks and three identifiers, as a CRM would export them."""
    rng = np.random.default_rng(seed)
    visits = rng.poisson(3, n)
    industry = rng.choice(["retail", "finance", "health", "energy"], size=n)
    # A bump in visits (neither few nor many convert best): something trees fit and a line cannot.
    sector = np.select([industry == "finance", industry == "energy"], [1.0, -1.0], 0.0)
    logit = 2.0 * (np.abs(visits - 4) <= 1) + sector - 1.5
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    noisy = y ^ (rng.random(n) < 0.03)
    return pd.DataFrame(
        {
            "Lead Ref": [f"L-{i:06d}" for i in range(n)],
            "Record": np.arange(1000, 1000 + n),
            "Hash": [uuid.UUID(int=int(v)).hex for v in rng.integers(0, 2**62, n)],
            "Visits": visits.astype(str),
            "Industry": np.where(rng.random(n) < 0.05, "Select", industry),
            "Outcome Note": np.where(noisy, "Enrolled", "Dropped"),
            "Won Amount": np.where(y & (rng.random(n) < 0.7), rng.integers(100, 900, n).astype(str), ""),
            "Converted": np.where(y, "Yes", "No"),
        }
    )


@pytest.fixture(scope="module")
def planted_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("flat") / "leads.csv"
    _planted_frame().to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def trained(planted_csv):
    table = load_flat_table(planted_csv, "Converted", id_column="Lead Ref")
    return table, *train_flat(table, "converted", Settings())


# --- Reading ---------------------------------------------------------------------------------


def test_labels_yes_no_and_numbers_and_rejects_with_reasons(tmp_path):
    labels = ["Yes", "no", " 1 ", "0", "TRUE", "false", "1.0", "maybe", "", "Select", "2"]
    path = tmp_path / "t.csv"
    pd.DataFrame({"x": [str(i) for i in range(len(labels))], "won": labels}).to_csv(path, index=False)
    table = load_flat_table(path, "won")
    assert table.y.tolist() == [1, 0, 1, 0, 1, 0, 1]
    assert table.n_accepted + table.n_rejected == table.n_read == len(labels)
    reasons = dict(zip(table.rejects["row_number"], table.rejects["reason"]))
    assert reasons[8] == "label 'maybe' is not binary (expected Yes/No, 1/0 or True/False)"
    assert reasons[9] == reasons[10] == "label is missing"
    assert "not binary" in reasons[11]
    assert "4 rejected" in table.messages[0]


def test_label_with_one_class_is_an_input_error(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"x": ["1", "2"], "won": ["Yes", "yes"]}).to_csv(path, index=False)
    with pytest.raises(RadarInputError, match="both classes"):
        load_flat_table(path, "won")


def test_missing_label_column_names_the_columns(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"x": ["1", "2"], "won": ["Yes", "No"]}).to_csv(path, index=False)
    with pytest.raises(RadarInputError, match="'x', 'won'"):
        load_flat_table(path, "Converted")


def test_identifiers_dropped_with_a_message(planted_csv):
    table = load_flat_table(planted_csv, "converted", id_column="lead ref")
    dropped = table.schema.dropped
    assert dropped["Lead Ref"] == "the id column"
    assert "sequence" in dropped["Record"]
    assert "UUID" in dropped["Hash"]
    assert any("'Hash'" in m for m in table.messages)
    assert table.ids is not None and table.ids.iloc[0] == "L-000000"


def test_numbers_in_text_are_numbers_and_markers_are_missing(planted_csv):
    table = load_flat_table(planted_csv, "Converted")
    assert table.X["Visits"].dtype == float
    assert table.X["Won Amount"].dtype == float and table.X["Won Amount"].isna().any()
    assert isinstance(table.X["Industry"].dtype, pd.CategoricalDtype)
    assert "Select" not in table.X["Industry"].cat.categories
    assert table.X["Industry"].isna().mean() == pytest.approx(0.05, abs=0.015)


def test_rare_levels_pool_into_other(tmp_path):
    n = 1000
    city = np.array(["London"] * 600 + ["Leeds"] * 396 + ["Ely", "Wells", "Ripon", "Truro"])
    path = tmp_path / "t.csv"
    pd.DataFrame({"city": city, "y": np.tile(["1", "0"], n // 2)}).to_csv(path, index=False)
    table = load_flat_table(path, "y")
    assert table.schema.categories["city"] == ["Leeds", "London", OTHER_LEVEL]
    assert (table.X["city"] == OTHER_LEVEL).sum() == 4


# --- Training ----------------------------------------------------------------------------------


def test_planted_leaks_excluded_and_signal_kept(trained):
    _, bundle, report = trained
    assert set(report.leakage.excluded) == {"Outcome Note", "Won Amount"}
    assert set(bundle.feature_names) == {"Visits", "Industry"}
    assert report.model_type == "lightgbm"
    assert 0.7 < report.auc < 0.95
    assert report.auc_with_excluded is not None and report.auc_with_excluded > report.auc
    assert any("Outcome Note" in note for note in bundle.notes)


def test_bundle_carries_metrics_baselines_and_reference(trained):
    _, bundle, _ = trained
    assert bundle.target == "converted" and bundle.kind == "binary"
    assert {"model", "logistic", "base_rate"} <= set(bundle.metrics)
    assert any(k.startswith("single_column:") for k in bundle.metrics)
    assert bundle.metrics["model"]["auc"] >= bundle.metrics["base_rate"]["auc"]
    ref = bundle.reference_probabilities
    assert len(ref) == 600 and np.all(np.diff(ref) >= 0)
    assert isinstance(bundle.model, FlatModel)


def test_force_include_puts_a_flagged_column_back(trained):
    table, _, _ = trained
    bundle, report = train_flat(
        table, "converted", Settings(), force_include=["Won Amount"], compare_with_excluded=False
    )
    assert "Won Amount" in bundle.feature_names and "Outcome Note" not in bundle.feature_names
    assert report.leakage.forced == ["Won Amount"]


def test_force_include_of_an_unknown_column_is_refused(trained):
    table, _, _ = trained
    with pytest.raises(RadarInputError, match="Nope"):
        train_flat(table, "converted", Settings(), force_include=["Nope"])


def test_few_positives_leave_the_baselines_to_contend_and_the_best_serves(trained):
    table, _, _ = trained
    settings = Settings(training=TrainingConfig(min_positives=100_000))
    bundle, report = train_flat(table, "converted", settings, compare_with_excluded=False)
    assert "model" not in bundle.metrics
    best = min(bundle.metrics, key=lambda name: bundle.metrics[name]["brier"])
    assert bundle.model_type == report.model_type == report.served == best
    assert any("too few for boosted trees" in note for note in report.notes)
    # The served baseline scores straight away, like any model.
    assert np.allclose(bundle.predict(report.test_features)["probability"], report.test_predictions[best])


# --- Scoring -----------------------------------------------------------------------------------


def test_score_flat_gives_id_probability_score_grade(trained, planted_csv, tmp_path):
    _, bundle, _ = trained
    new = _planted_frame(n=50, seed=99).drop(columns=["Converted"])
    new.loc[0, "Industry"] = "mining"  # unseen at training: scored as missing, not an error
    path = tmp_path / "new.csv"
    new.to_csv(path, index=False)
    scores = score_flat(bundle, path)
    assert list(scores.columns) == ["Lead Ref", "probability", "score", "percentile", "grade"]
    assert scores["Lead Ref"].tolist() == new["Lead Ref"].tolist()
    assert scores["score"].tolist() == np.round(100 * scores["probability"]).astype(int).tolist()
    # Percentile among the held-out test probabilities, graded A >= 90, B >= 70, C >= 40.
    reference = bundle.reference_probabilities
    expected_pct = 100 * np.searchsorted(reference, scores["probability"], side="right") / len(reference)
    assert np.allclose(scores["percentile"], np.round(expected_pct, 1))
    expected = np.select([expected_pct >= 90, expected_pct >= 70, expected_pct >= 40], ["A", "B", "C"], "D")
    assert scores["grade"].tolist() == expected.tolist()
    by_row = score_flat(bundle, path, id_column=None)
    assert np.allclose(by_row["probability"], scores["probability"])


def test_score_flat_without_id_uses_row_numbers(trained, tmp_path):
    _, bundle, _ = trained
    path = tmp_path / "new.csv"
    _planted_frame(n=5).drop(columns=["Lead Ref"]).to_csv(path, index=False)
    scores = score_flat(bundle, path)
    assert scores["row_number"].tolist() == [1, 2, 3, 4, 5]


# --- The real export -----------------------------------------------------------------------------


@pytest.mark.skipif(not X_EDUCATION.is_file(), reason=f"shared data absent: {X_EDUCATION}")
def test_x_education_guard_finds_post_contact_columns_and_model_reaches_088():
    table = load_flat_table(X_EDUCATION, "Converted")
    assert table.n_accepted == 9240
    assert {"Prospect ID", "Lead Number"} <= set(table.schema.dropped)
    bundle, report = train_flat(table, "converted", Settings())
    # Sales staff's status tags and quality judgement are filled in after contact.
    assert {"Tags", "Lead Quality"} <= set(report.leakage.excluded)
    assert not set(report.leakage.excluded) & {"Total Time Spent on Website", "Lead Source", "Lead Origin"}
    assert report.auc >= 0.88
    assert report.auc >= bundle.metrics["logistic"]["auc"]
    assert report.auc_with_excluded is not None and report.auc_with_excluded > 0.97


def test_malformed_rows_are_rejected_not_dropped(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("x,won\n1,Yes\n2,No,extra\n3,No\n4,Yes\n", encoding="utf-8")
    table = load_flat_table(path, "won")
    assert table.n_read == 4 and table.n_accepted == 3
    assert table.rejects["row_number"].tolist() == [2]
    assert "fields" in table.rejects["reason"].iloc[0]


def test_bundle_survives_pickling_and_headers_may_drift(trained, tmp_path):
    import pickle

    _, bundle, report = trained
    restored = pickle.loads(pickle.dumps(bundle))
    new = _planted_frame(n=20, seed=5).rename(columns={"Visits": " visits ", "Industry": "INDUSTRY"})
    path = tmp_path / "drift.csv"
    new.to_csv(path, index=False)
    drifted = score_flat(restored, path)
    _planted_frame(n=20, seed=5).to_csv(path, index=False)
    assert np.allclose(drifted["probability"], score_flat(bundle, path)["probability"])


def test_train_report_prints_plain_and_rich(trained):
    from rich.console import Console

    _, _, report = trained
    assert "Outcome Note" in report.to_text() and "logistic" in report.to_text()
    console = Console(record=True, width=200)
    console.print(report)
    assert "Won Amount" in console.export_text()


# --- The command line: train then score, as a new user does -----------------------------------


def test_train_then_score_a_flat_table_with_defaults(planted_csv, tmp_path, monkeypatch):
    """Right after `radar train --table`, `radar score --table` works: something always
    serves, whatever the gate thinks of calibration. A second run meets the champion."""
    import json

    from typer.testing import CliRunner

    from radar.cli import app

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    env = {"RADAR_WORK_DIR": str(tmp_path / "work")}
    runner = CliRunner()
    metrics = tmp_path / "metrics.json"
    args = ["train", "--table", str(planted_csv), "--label", "Converted", "--id", "Lead Ref", "--name", "leads",
            "--metrics-out", str(metrics)]
    first = runner.invoke(app, args, env=env)
    assert first.exit_code == 0, first.output
    payload = json.loads(metrics.read_text())
    assert payload["registration"]["alias"] == "champion" and payload["gate"]["served"] == "model"
    assert "serves" in first.output and "Δ Brier" in first.output
    out = tmp_path / "scores.csv"
    scored = runner.invoke(app, ["score", "--table", str(planted_csv), "--model", "leads", "--out", str(out)], env=env)
    assert scored.exit_code == 0, scored.output
    scores = pd.read_csv(out)
    assert scores["Lead Ref"].tolist() == pd.read_csv(planted_csv)["Lead Ref"].tolist()
    second = runner.invoke(app, args, env=env)
    assert second.exit_code == 0, second.output
    gate = json.loads(metrics.read_text())["gate"]
    # The same data and seed give the same model: within noise of the champion, it stays out.
    assert not gate["promote"] and "champion" in gate["reasons"][-1]
    assert any(d["b"] == "champion" for d in gate["differences"])
