"""Tracking, registry, aliases and the gate against a real MLflow SQLite store.

One store per module keeps the suite quick (creating the SQLite schema takes seconds);
each test registers its own target name, so tests never see each other's versions.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from radar.config import ModelConfig, Settings, TrainingConfig
from training import registry
from training.bundle import TargetBundle
from training.gate import GateDecision, Outcomes
from training.metrics import binary_metrics
from training.models import ProbabilityModel
from training.tracking import using_store

from test_models import make_frame

CONFIG = TrainingConfig(gate_bootstrap_rounds=200)
TEST_SNAPSHOT = {"test": "2024-06-01", "validation": "2024-03-01", "train": ["2024-01-01"]}


class Rule:
    """A baseline with the model interface: referrals a little more likely."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.where(X["channel"].astype(str) == "referral", 0.6, 0.45)


@pytest.fixture(scope="module")
def data() -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
    return {"train": make_frame(4000, 1), "val": make_frame(2000, 2), "test": make_frame(2000, 3)}


def fit(data: dict, columns: list[str]) -> ProbabilityModel:
    (X, y), (Xv, yv) = data["train"], data["val"]
    return ProbabilityModel(ModelConfig(max_trees=60), seed=3).fit(X[columns], y, Xv[columns], yv)


@pytest.fixture(scope="module")
def models(data) -> dict[str, ProbabilityModel]:
    """Strong (every driver), weak (visits only) and useless (noise only)."""
    return {
        "strong": fit(data, ["visits", "channel", "noise"]),
        "weak": fit(data, ["visits"]),
        "useless": fit(data, ["noise"]),
    }


def make_bundle(target: str, model: ProbabilityModel, data: dict, snapshot: dict = TEST_SNAPSHOT) -> TargetBundle:
    X, y = data["test"]
    prob = model.predict_proba(X)
    return TargetBundle(
        target=target,
        kind="binary",
        model=model,
        feature_names=list(model.feature_names_),
        model_type="lightgbm",
        metrics={"model": binary_metrics(y, prob), "rule": binary_metrics(y, Rule().predict_proba(X))},
        reference_probabilities=np.sort(prob),
        horizon_days=90,
        snapshot_plan=dict(snapshot),
        trained_at="2024-09-01T00:00:00+00:00",
        cost={k: float(v) for k, v in model.size().items()},
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def gate(bundle: TargetBundle, data: dict, store: str) -> GateDecision:
    """The registry's gate on the bundle's own test rows, the champion re-scored beside."""
    X, y = data["test"]
    return registry.gate(bundle, Outcomes("binary", y=y), {"model": bundle.model.predict_proba(X)}, X, CONFIG,
                         tracking_uri=store)


def register(bundle: TargetBundle, store: str, data: dict | None = None, **kwargs) -> registry.ModelVersionInfo:
    """Gate then log, as the pipeline does; ``decision`` overrides the gate."""
    decision = kwargs.pop("decision", None) or gate(bundle, data, store)
    X = kwargs.pop("X", None)
    return registry.log_target(
        bundle,
        params={"training": {"seed": 3}},
        plots=kwargs.pop("plots", None),
        input_example=X if X is not None else pd.DataFrame({c: [1.0] for c in bundle.feature_names}),
        tracking_uri=store,
        decision=decision,
    )


def champion_version(target: str, store: str) -> int | None:
    info = registry.version_info(target, alias="champion", tracking_uri=store)
    return None if info is None else info.version


def test_logged_model_loads_in_a_fresh_process_with_identical_predictions(store, models, data, tmp_path) -> None:
    X = data["test"][0].head(300)
    bundle = make_bundle("fresh_load", models["strong"], data)
    info = register(bundle, store, data, X=X)
    assert info.aliases == ["champion"]
    X.to_pickle(tmp_path / "X.pkl")
    script = textwrap.dedent(
        f"""
        import mlflow, numpy as np, pandas as pd
        from training.registry import load_bundle, using_store
        from training.pyfunc import to_pyfunc_input
        X = pd.read_pickle({str(tmp_path / "X.pkl")!r})
        bundle = load_bundle("fresh_load", tracking_uri={store!r})
        with using_store({store!r}):
            model = mlflow.pyfunc.load_model("models:/radar-fresh_load@champion")
        np.save({str(tmp_path / "bundle.npy")!r}, bundle.predict(X)["probability"].to_numpy())
        np.save({str(tmp_path / "pyfunc.npy")!r}, model.predict(to_pyfunc_input(X))["probability"].to_numpy())
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, capture_output=True, timeout=180)
    expected = bundle.predict(X)["probability"].to_numpy()
    np.testing.assert_array_equal(np.load(tmp_path / "bundle.npy"), expected)
    np.testing.assert_allclose(np.load(tmp_path / "pyfunc.npy"), expected, rtol=0, atol=1e-12)


def test_run_holds_params_metrics_cost_plots_and_version_tags(store, models, data) -> None:
    figure, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    X = data["test"][0].head(20).set_axis([f"person-{i}" for i in range(20)])
    info = register(make_bundle("logged", models["strong"], data), store, data, X=X, plots={"roc.png": figure})
    plt.close(figure)
    client = MlflowClient(tracking_uri=store)
    run = client.get_run(info.run_id)
    assert {"test_auc", "test_brier", "test_ece", "baseline_rule_test_auc", "cost_trees", "cost_leaves"} <= set(run.data.metrics)
    assert run.data.params["training.seed"] == "3" and run.data.params["target"] == "logged"
    assert run.data.params["snapshot.test"] == "2024-06-01"
    assert "plots/roc.png" in [a.path for a in client.list_artifacts(info.run_id, "plots")]
    assert {"target", "model_type", "decision", "decision_reason", "test_snapshot"} <= set(info.tags)
    assert info.tags["model_type"] == "lightgbm" and info.trained_at == "2024-09-01T00:00:00+00:00"
    # The person ids in the index never reach the stored input example.
    with using_store(store):
        import mlflow

        example_dir = mlflow.artifacts.download_artifacts(f"models:/radar-logged/{info.version}")
    stored = "".join(p.read_text(errors="ignore") for p in Path(example_dir).glob("*input_example*"))
    assert stored and "person-" not in stored


def test_worse_challenger_stays_challenger_with_the_reason_recorded(store, models, data) -> None:
    first = register(make_bundle("worse", models["weak"], data), store, data)
    assert first.aliases == ["champion"]
    second = register(make_bundle("worse", models["useless"], data), store, data)
    assert second.aliases == ["challenger"]
    assert champion_version("worse", store) == first.version
    assert "not better than champion beyond noise" in second.tags["decision_reason"]
    run = MlflowClient(tracking_uri=store).get_run(second.run_id)
    assert run.data.tags["radar.decision"] == "challenger"
    assert "not better than champion beyond noise" in run.data.tags["radar.decision_reason"]
    # The interval of the difference from the champion is a run metric, and in the JSON.
    assert run.data.metrics["gate_model_minus_champion_brier_low"] <= run.data.metrics["gate_model_minus_champion_brier"]
    assert {"served", "differences", "calibration"} <= set(json.loads(
        Path(MlflowClient(tracking_uri=store).download_artifacts(second.run_id, "gate_decision.json")).read_text()))


def test_better_challenger_is_promoted_and_the_old_champion_kept_for_rollback(store, models, data) -> None:
    first = register(make_bundle("better", models["weak"], data), store, data)
    second = register(make_bundle("better", models["strong"], data), store, data)
    assert second.aliases == ["champion"] and second.tags["decision"] == "promoted by gate"
    old = registry.version_info("better", version=first.version, tracking_uri=store)
    assert old.aliases == ["previous_champion"]


def test_promote_and_rollback_round_trip(store, models, data) -> None:
    kept_out = GateDecision(False, ["kept out: this test moves the aliases by hand"])
    bundles = [make_bundle("roundtrip", models[m], data) for m in ("useless", "weak", "strong")]
    versions = [register(b, store, decision=kept_out).version for b in bundles]
    for version in versions:
        registry.promote("roundtrip", version, tracking_uri=store)
    assert champion_version("roundtrip", store) == versions[2]
    change = registry.rollback("roundtrip", tracking_uri=store)
    assert (change.champion_before, change.champion_after, change.previous_champion) == (versions[2], versions[1], versions[0])
    # A second rollback goes one further back (undo), not back and forth.
    change = registry.rollback("roundtrip", tracking_uri=store)
    assert change.champion_after == versions[0] and change.previous_champion is None
    with pytest.raises(registry.NothingToRollBack):
        registry.rollback("roundtrip", tracking_uri=store)
    change = registry.promote("roundtrip", versions[2], tracking_uri=store)
    assert change.changed and change.previous_champion == versions[0]
    info = registry.version_info("roundtrip", tracking_uri=store)
    assert info.version == versions[2] and info.tags["decision"] == "promoted by hand"
    assert registry.rollback("roundtrip", tracking_uri=store).champion_after == versions[0]


def test_promote_without_a_version_takes_the_challenger(store, models, data) -> None:
    register(make_bundle("manual", models["strong"], data), store, data)
    challenger = register(make_bundle("manual", models["useless"], data), store, data)
    change = registry.promote("manual", tracking_uri=store)
    assert change.champion_after == challenger.version
    assert registry.version_info("manual", alias="challenger", tracking_uri=store) is None
    with pytest.raises(LookupError):
        registry.promote("manual", 99, tracking_uri=store)


def test_a_champion_from_another_test_snapshot_is_re_scored_on_the_new_rows(store, models, data) -> None:
    register(make_bundle("resnap", models["weak"], data), store, data)
    later = make_bundle("resnap", models["strong"], data, snapshot=TEST_SNAPSHOT | {"test": "2024-07-01"})
    decision = gate(later, data, store)
    vs_champion = {d.metric: d for d in decision.differences if d.b == "champion"}
    X, y = data["test"]
    weak = binary_metrics(y, models["weak"].predict_proba(X))
    strong = binary_metrics(y, models["strong"].predict_proba(X))
    assert vs_champion["brier"].estimate == pytest.approx(strong["brier"] - weak["brier"])
    assert decision.promote and vs_champion["brier"].high < 0


def test_a_champion_that_answers_another_horizon_is_replaced_with_the_reason(store, models, data) -> None:
    register(make_bundle("rehorizon", models["strong"], data), store, data)
    other = make_bundle("rehorizon", models["useless"], data)
    other.horizon_days = 30
    decision = gate(other, data, store)
    assert decision.promote and "30-day one: not comparable" in decision.summary
    assert not [d for d in decision.differences if d.b == "champion"]


def test_register_results_fills_the_pipeline_registration(store, models, data, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    X, y = data["test"]
    bundle = make_bundle("from_pipeline", models["strong"], data)
    result = SimpleNamespace(
        bundle=bundle, figures={}, test_features=X, registration={}, params={"table": "t.csv"},
        test_rows=Outcomes("binary", y=y), decision=None,
        test_predictions={"model": models["strong"].predict_proba(X), "rule": Rule().predict_proba(X)},
    )
    registry.register_results({"from_pipeline": result}, Settings(training=CONFIG))
    registration = result.registration
    assert registration["model_name"] == "radar-from_pipeline" and registration["promoted"]
    assert registration["served"] == "model" and result.decision.served == "model"
    assert json.dumps(registration)


def test_using_store_leaves_the_process_as_it_found_it(store, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    import mlflow

    with using_store(store):
        assert mlflow.get_tracking_uri() == store
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///elsewhere.db"
    assert mlflow.get_tracking_uri() == "sqlite:///elsewhere.db"
