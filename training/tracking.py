"""MLflow tracking plumbing: which store, which run, and how a bundle's numbers are named.

Nothing here runs at import time. MLflow's fluent API (``start_run``, ``log_model``) reads
the tracking URI from a module global, and ``mlflow.set_tracking_uri`` also writes it into
the ``MLFLOW_TRACKING_URI`` environment variable; :func:`using_store` sets both for one
block and puts both back, so Radar never leaves the caller's process pointed elsewhere.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Run

from training.bundle import TargetBundle

DEFAULT_EXPERIMENT = "radar"
#: MLflow rejects longer parameter values; the tail is cut rather than failing the run.
MAX_PARAM_CHARS = 6000
_ENV = "MLFLOW_TRACKING_URI"


@contextmanager
def quiet_mlflow_events() -> Iterator[None]:
    """MLflow's own event lines ("Successfully registered model…", "Created version…",
    printed straight to stderr) off for the block: Radar reports what it registered, with
    the alias the gate gave, and the two lines would say it again without it."""
    from mlflow.utils.logging_utils import MLFLOW_LOGGING_STREAM

    was = MLFLOW_LOGGING_STREAM.enabled
    MLFLOW_LOGGING_STREAM.enabled = False
    try:
        yield
    finally:
        MLFLOW_LOGGING_STREAM.enabled = was


@contextmanager
def using_store(tracking_uri: str) -> Iterator[MlflowClient]:
    """Point MLflow's fluent API at ``tracking_uri`` for the block; yields a client on it."""
    saved_env = os.environ.get(_ENV)
    current = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    # A URI that only comes from the environment is restored through the environment;
    # setting it as the global would outlive a later change of the variable.
    saved_uri = None if current == saved_env else current
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield MlflowClient(tracking_uri=tracking_uri)
    finally:
        mlflow.set_tracking_uri(saved_uri)
        if saved_env is None:
            os.environ.pop(_ENV, None)
        else:
            os.environ[_ENV] = saved_env


@contextmanager
def target_run(run_name: str, tracking_uri: str, experiment: str = DEFAULT_EXPERIMENT) -> Iterator[Run]:
    """A run for one target: nested under the active run if there is one, else a new run.

    Nesting keeps targets apart when one parent run trains all four (``mlflow run``
    starts such a parent): each child has its own params, metrics and model.
    """
    parent = mlflow.active_run()
    if parent is not None:
        with mlflow.start_run(run_name=run_name, nested=True, experiment_id=parent.info.experiment_id) as run:
            yield run
        return
    experiment_id = experiment_id_for(experiment, tracking_uri)
    with mlflow.start_run(run_name=run_name, experiment_id=experiment_id) as run:
        yield run


def artifact_root(tracking_uri: str) -> str | None:
    """Artifacts next to a local SQLite store; None (MLflow's choice) for any other store.

    Without this MLflow puts a SQLite store's artifacts under the *current directory*,
    so running from another folder would scatter models around the disk.
    """
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    db = Path(tracking_uri[len(prefix):])
    return (db.parent / "mlartifacts").resolve().as_uri()


def experiment_id_for(name: str, tracking_uri: str) -> str:
    """The experiment's id, creating it (with artifacts beside a SQLite store) if new."""
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return mlflow.create_experiment(name, artifact_location=artifact_root(tracking_uri))


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts as dotted keys, values as strings MLflow accepts."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flatten_params(value, prefix=f"{name}.")
        else:
            flat[name] = str(value)[:MAX_PARAM_CHARS]
    return flat


def _finite(metrics: Mapping[str, float | None]) -> dict[str, float]:
    """Only real numbers: a NaN AUC (one-class test set) is better absent than plotted."""
    out = {}
    for key, value in metrics.items():
        if value is None:
            continue
        number = float(value)
        if math.isfinite(number):
            out[key] = number
    return out


def candidate_key(bundle: TargetBundle) -> str:
    """Which entry of ``bundle.metrics`` is the registered model: ``model`` for LightGBM,
    else the baseline's own name (small-data fallback)."""
    if bundle.model_type in bundle.metrics:
        return bundle.model_type
    if "model" in bundle.metrics:
        return "model"
    raise KeyError(f"{bundle.target}: no metrics for {bundle.model_type!r} in the bundle")


def split_metrics(bundle: TargetBundle) -> tuple[dict[str, float | None], dict[str, dict[str, float | None]]]:
    """The served contender's test metrics, and every *other* contender's (the baselines,
    and the model when a baseline serves in its place)."""
    own = candidate_key(bundle)
    others = {name: dict(m) for name, m in bundle.metrics.items() if name != own}
    return dict(bundle.metrics[own]), others


def metric_names(bundle: TargetBundle) -> dict[str, float]:
    """Run metrics: ``test_<m>`` for the model, ``baseline_<name>_test_<m>`` per baseline,
    ``cost_<k>`` for size and explanation time."""
    candidate, baselines = split_metrics(bundle)
    out = _finite({f"test_{k}": v for k, v in candidate.items()})
    for name, metrics in baselines.items():
        out |= _finite({f"baseline_{name}_test_{k}": v for k, v in metrics.items()})
    out |= _finite({f"cost_{k}": v for k, v in bundle.cost.items()})
    return out


def bundle_params(bundle: TargetBundle) -> dict[str, str]:
    """What the bundle says about itself, logged next to the caller's params."""
    plan = {f"snapshot.{k}": v for k, v in bundle.snapshot_plan.items()}
    return flatten_params(
        {
            "target": bundle.target,
            "kind": bundle.kind,
            "model_type": bundle.model_type,
            "horizon_days": bundle.horizon_days,
            "n_features": len(bundle.feature_names),
            "has_service_model": bundle.service_model is not None,
            **plan,
        }
    )
