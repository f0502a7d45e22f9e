"""The MLflow project: `mlflow run mlproject -e <entry> --env-manager local` in a subprocess,
against a temporary SQLite store named by MLFLOW_TRACKING_URI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from radar.config import ModelConfig
from training.gate import GateDecision
from training import registry
from training.bundle import TargetBundle
from training.metrics import binary_metrics
from training.models import ProbabilityModel

from test_models import make_frame

REPO = Path(__file__).resolve().parents[1]
PROJECT = REPO / "mlproject"
NEVER_PROMOTE = GateDecision(False, ["kept out: the entry points move the aliases in these tests"])


def pipeline_missing() -> str:
    """Why training.pipeline cannot be imported yet (it is written alongside), or ''."""
    try:
        import training.pipeline  # noqa: F401
    except ImportError as err:
        return str(err)
    return ""


def mlflow_run(entry: str, store: str, cwd: Path, timeout: int = 300, **params: object) -> subprocess.CompletedProcess:
    bin_dir = str(Path(sys.executable).parent)
    env = os.environ | {"MLFLOW_TRACKING_URI": store, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    env.pop("MLFLOW_RUN_ID", None)
    # The radar experiment keeps artifacts beside the store; MLflow's Default experiment
    # would put them under the directory the store was first created from.
    args = [sys.executable, "-m", "mlflow", "run", str(PROJECT), "-e", entry, "--env-manager", "local"]
    args += ["--experiment-name", "radar"]
    for key, value in params.items():
        args += ["-P", f"{key}={value}"]
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def printed(done: subprocess.CompletedProcess) -> dict:
    """The JSON the entry point printed (MLflow's own chatter goes to stderr)."""
    return json.loads(done.stdout[done.stdout.index("{") :])


def tiny_bundle(target: str, seed: int) -> TargetBundle:
    (X, y), (Xv, yv), (Xt, yt) = make_frame(1500, seed), make_frame(800, seed + 1), make_frame(800, seed + 2)
    model = ProbabilityModel(ModelConfig(max_trees=20, min_child_samples=20), seed=seed).fit(X, y, Xv, yv)
    prob = model.predict_proba(Xt)
    return TargetBundle(
        target=target,
        kind="binary",
        model=model,
        feature_names=list(X.columns),
        model_type="lightgbm",
        metrics={"model": binary_metrics(yt, prob)},
        reference_probabilities=np.sort(prob),
        horizon_days=90,
        snapshot_plan={"test": "2024-06-01"},
        trained_at="2024-09-01T00:00:00+00:00",
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """Two versions of radar-lead_quality, neither promoted by the gate."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('project') / 'mlflow.db'}"
    for seed in (1, 2):
        bundle = tiny_bundle("lead_quality", seed)
        decision = NEVER_PROMOTE
        example = make_frame(5, 9)[0]
        registry.log_target(bundle, params={}, plots=None, input_example=example, tracking_uri=uri, decision=decision)
    return uri


def test_the_project_file_declares_typed_entry_points() -> None:
    spec = yaml.safe_load((PROJECT / "MLproject").read_text())
    entries = spec["entry_points"]
    assert set(entries) >= {"train", "evaluate", "promote"}
    train = entries["train"]["parameters"]
    assert train["data_dir"] == "path" and train["horizon_days"] == {"type": "int", "default": 90}
    assert train["customers"]["default"] == 0 and train["n_snapshots"]["default"] == 12
    assert (PROJECT / spec["python_env"]).exists()


def test_promote_and_rollback_entries_move_the_aliases(store, tmp_path, monkeypatch) -> None:
    change = printed(mlflow_run("promote", store, tmp_path, target="lead_quality", version=1))
    assert change["champion_after"] == 1 and change["changed"]
    # No version given: the challenger (the latest version kept out by the gate) goes up.
    # The same entry point in process: `mlflow run` of this entry was just shown to work,
    # and each run costs an interpreter start and MLflow's project set-up.
    from training import entrypoints

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("RADAR_MLFLOW_TRACKING_URI", store)
    change = entrypoints.promote(entrypoints.parser().parse_args(["promote", "--target", "lead_quality"]))
    assert change["champion_before"] == 1 and change["champion_after"] == 2
    assert registry.version_info("lead_quality", tracking_uri=store).version == 2
    change = printed(mlflow_run("rollback", store, tmp_path, target="lead_quality"))
    assert change["champion_after"] == 1
    assert registry.version_info("lead_quality", tracking_uri=store).version == 1


def test_evaluate_entry_scores_the_alias_on_a_data_folder(store, tmp_path) -> None:
    missing = pipeline_missing()
    if missing:
        pytest.skip(f"training.pipeline not importable yet: {missing}")
    from radar.demo import generate_world

    registry.promote("lead_quality", 1, tracking_uri=store)
    generate_world(n_customers=1500, seed=1, out_dir=tmp_path / "world")
    result = printed(mlflow_run("evaluate", store, tmp_path, target="lead_quality", data_dir=tmp_path / "world"))
    assert result["model_name"] == "radar-lead_quality" and result["version"] == 1
    assert {"auc", "brier", "ece"} <= set(result["metrics"])


@pytest.mark.slow
def test_train_entry_on_a_tiny_demo_world(tmp_path) -> None:
    missing = pipeline_missing()
    if missing:
        pytest.skip(f"training.pipeline not importable yet: {missing}")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = mlflow_run(
        "train", store, tmp_path, timeout=900, data_dir=tmp_path / "world", customers=1500, seed=1, n_snapshots=4
    )
    report = printed(done)
    registered = [t for t, r in report["targets"].items() if r["registration"]]
    assert registered, report
    for target in registered:
        registration = report["targets"][target]["registration"]
        info = registry.version_info(target, version=registration["version"], tracking_uri=store)
        assert info is not None and info.aliases == [registration["alias"]]
