"""The command line's output is Radar's own: no third-party warnings around the report.

A flat-table ``radar train`` logs and registers a real model in a real MLflow store (a
SQLite file), the step where MLflow warns about untyped pyfunc ``predict`` methods and
about pickling a Python object with CloudPickle. Radar fixes both causes (a typed predict;
the model logged as code), so neither may reach the terminal.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
#: What a Python warning or a library's WARNING log line looks like on the terminal.
WARNING_LINE = re.compile(r"Warning:|\bWARNING\b|warnings\.warn", re.IGNORECASE)


def _table(path: Path, n: int = 600) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    pd.DataFrame(
        {
            "customer_ref": [f"C{i}" for i in range(n)],
            "visits": np.round(np.exp(x) * 3),
            "spend": np.round(np.exp(rng.normal(size=n)) * 50, 2),
            "plan": rng.choice(["a", "b", "c"], n),
            "churned": (rng.random(n) < 1 / (1 + np.exp(-2 * x))).astype(int),
        }
    ).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess:
    folder = tmp_path_factory.mktemp("quiet")
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}", "PYTHONPATH": str(ROOT)}
    # Nothing from the test run's own warning settings leaks into the command.
    env.pop("PYTHONWARNINGS", None)
    args = [sys.executable, "-m", "radar.cli", "train", "--table", str(_table(folder / "flat.csv")),
            "--label", "churned", "--id", "customer_ref", "--name", "quiet"]
    return subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def test_training_a_model_prints_no_third_party_warnings(trained: subprocess.CompletedProcess) -> None:
    assert trained.returncode == 0, trained.stderr[-3000:]
    output = trained.stdout + trained.stderr
    assert "Registered radar-quiet v1 as champion" in output  # it did log and register a model
    assert "Add type hints" not in output
    assert "CloudPickle" not in output
    assert "Successfully registered model" not in output and "Created version" not in output
    assert [line for line in output.splitlines() if WARNING_LINE.search(line)] == []


def test_the_logged_model_is_code_that_loads_and_scores(trained: subprocess.CompletedProcess) -> None:
    """Logged as code rather than as a pickled object, the model still loads and scores."""
    import mlflow

    from training.pyfunc import to_pyfunc_input

    folder = Path(trained.args[trained.args.index("--table") + 1]).parent
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    try:
        stored = Path(mlflow.artifacts.download_artifacts("models:/radar-quiet@champion", dst_path=str(folder / "m")))
        model = mlflow.pyfunc.load_model("models:/radar-quiet@champion")
    finally:
        mlflow.set_tracking_uri(None)
    files = {p.name for p in stored.iterdir()}
    assert "pyfunc_code.py" in files and "python_model.pkl" not in files
    frame = pd.read_csv(folder / "flat.csv").drop(columns=["churned", "customer_ref"]).head(5)
    answers = model.predict(to_pyfunc_input(frame))
    assert len(answers) == 5 and answers["probability"].between(0, 1).all()
