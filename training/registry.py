"""The model registry: log a trained target, register it, and move its aliases.

Each target is a registered model ``radar-<target>`` whose versions carry the aliases

* ``champion``: what scoring uses;
* ``challenger``: the latest version the promotion gate kept out (see ``training.gate``);
* ``previous_champion``: the version a :func:`rollback` would restore.

**History.** The registered model's tag ``radar.champion_history`` is a JSON list of the
versions that were champion before the current one, oldest first. Every promotion (by the
gate or by :func:`promote`) pushes the outgoing champion; :func:`rollback` pops. Rolling
back is therefore *undo*: v1 → v2 → v3, then two rollbacks give v2 and then v1, and a third
reports there is nothing earlier. A rolled-back version is not pushed again, so rollbacks
never bounce between two versions; to go forward again, :func:`promote` it by number.
The read-modify-write of the tag is not atomic: run one promotion at a time per target.

Every function takes the tracking URI explicitly (default: ``Settings().tracking_uri``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

from radar.config import Settings, TrainingConfig
from training.bundle import TargetBundle
from training.gate import CHAMPION as CHAMPION_CONTENDER
from training.gate import GateDecision, Outcomes, decide
from training.pyfunc import (
    BUNDLE_ARTIFACT,
    MODEL_CODE,
    bundle_signature,
    pip_requirements,
    save_bundle,
    to_pyfunc_input,
    unwrap_bundle,
)
from training.tracking import (
    DEFAULT_EXPERIMENT,
    bundle_params,
    flatten_params,
    metric_names,
    quiet_mlflow_events,
    target_run,
    using_store,
)

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"
HISTORY_TAG = "radar.champion_history"
MODEL_ARTIFACT = "model"
#: Only the last promotions are remembered: a registered-model tag holds 5,000 characters.
MAX_HISTORY = 200


class NothingToRollBack(LookupError):
    """The target has no earlier champion to restore."""


@dataclass
class ModelVersionInfo:
    """One registered version, as the ``/models`` endpoint and reports show it."""

    name: str
    version: int
    run_id: str
    target: str
    model_type: str
    trained_at: str
    #: The run's metrics (``test_*``, ``baseline_*_test_*``, ``cost_*``).
    metrics: dict[str, float]
    aliases: list[str]
    tags: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AliasChange:
    """What a promotion or rollback changed."""

    name: str
    champion_before: int | None
    champion_after: int | None
    previous_champion: int | None
    history: list[int] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.champion_before != self.champion_after

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"changed": self.changed}


def model_name(target: str) -> str:
    """Registered model name of a target (or flat-table model): ``radar-<name>``."""
    return target if target.startswith("radar-") else f"radar-{target}"


def _uri(tracking_uri: str | None) -> str:
    return tracking_uri or Settings().tracking_uri


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _missing(err: MlflowException) -> bool:
    return err.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)


# --- logging -------------------------------------------------------------------------


def _log_plots(plots: Mapping[str, Any] | None) -> None:
    for filename, figure in (plots or {}).items():
        name = filename if "." in filename else f"{filename}.png"
        mlflow.log_figure(figure, f"plots/{name}")


def _privacy_safe_example(input_example: pd.DataFrame) -> pd.DataFrame:
    """A few rows of features with a plain index: the index holds person ids, which must
    not be written into an artifact."""
    return to_pyfunc_input(input_example.head(5).reset_index(drop=True))


def log_target(
    bundle: TargetBundle,
    *,
    params: Mapping[str, Any],
    plots: Mapping[str, Any] | None,
    input_example: pd.DataFrame,
    tracking_uri: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    decision: GateDecision | None = None,
    name: str | None = None,
) -> ModelVersionInfo:
    """Log one target's run and register its model as a new version of ``radar-<target>``.

    Opens a run named after the target (nested under the active run, if any), logs params,
    every contender's test metrics, the model's cost and the plots, and the bundle as an
    MLflow pyfunc model. With a ``decision``, applies it (see :func:`apply_decision`).
    """
    uri = _uri(tracking_uri)
    registered = model_name(name or bundle.target)
    example = _privacy_safe_example(input_example)
    with using_store(uri) as client, target_run(bundle.target, uri, experiment):
        mlflow.log_params(flatten_params(params) | bundle_params(bundle))
        mlflow.log_metrics(metric_names(bundle))
        mlflow.set_tags({"radar.target": bundle.target, "radar.model_type": bundle.model_type})
        if bundle.notes:
            mlflow.log_text("\n".join(bundle.notes), "notes.txt")
        _log_plots(plots)
        with tempfile.TemporaryDirectory() as folder, quiet_mlflow_events():
            logged = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT,
                python_model=str(MODEL_CODE),
                artifacts={BUNDLE_ARTIFACT: str(save_bundle(bundle, Path(folder)))},
                signature=bundle_signature(bundle, example),
                input_example=example,
                pip_requirements=pip_requirements(),
                registered_model_name=registered,
            )
        version = int(logged.registered_model_version)
        _tag_version(client, registered, version, bundle)
    if decision is not None:
        apply_decision(registered, version, decision, tracking_uri=uri)
    return version_info(registered, version=version, tracking_uri=uri)


def _tag_version(client: MlflowClient, name: str, version: int, bundle: TargetBundle) -> None:
    tags = {
        "target": bundle.target,
        "model_type": bundle.model_type,
        "kind": bundle.kind,
        "trained_at": bundle.trained_at,
        "test_snapshot": str(bundle.snapshot_plan.get("test", "")),
        "horizon_days": str(bundle.horizon_days),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, value)


# --- reading -------------------------------------------------------------------------


def _alias_version(client: MlflowClient, name: str, alias: str) -> int | None:
    try:
        return int(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as err:
        # MLflow reports an unknown alias as an invalid parameter, not as a missing resource.
        if _missing(err) or ("alias" in err.message and "not found" in err.message):
            return None
        raise


def version_info(
    target: str, *, alias: str | None = None, version: int | None = None, tracking_uri: str | None = None
) -> ModelVersionInfo | None:
    """Version, run, training time, metrics and tags of ``radar-<target>`` at an alias or
    version number (champion by default); None if there is no such version."""
    name = model_name(target)
    with using_store(_uri(tracking_uri)) as client:
        if version is None:
            version = _alias_version(client, name, alias or CHAMPION)
            if version is None:
                return None
        try:
            mv = client.get_model_version(name, str(version))
        except MlflowException as err:
            if _missing(err):
                return None
            raise
        metrics = client.get_run(mv.run_id).data.metrics if mv.run_id else {}
        tags = dict(mv.tags)
        return ModelVersionInfo(
            name=name,
            version=int(mv.version),
            run_id=mv.run_id or "",
            target=tags.get("target", target),
            model_type=tags.get("model_type", ""),
            trained_at=tags.get("trained_at", ""),
            metrics=dict(metrics),
            aliases=sorted(mv.aliases),
            tags=tags,
        )


def load_bundle_with_info(
    target_or_model_name: str, alias: str = CHAMPION, *, tracking_uri: str | None = None
) -> tuple[TargetBundle, ModelVersionInfo]:
    """The bundle at an alias, loaded through pyfunc, with its version info.

    The alias is resolved to a version number first, so the bundle and the info describe
    the same version even if the alias moves meanwhile.
    """
    uri = _uri(tracking_uri)
    info = version_info(target_or_model_name, alias=alias, tracking_uri=uri)
    if info is None:
        raise LookupError(f"{model_name(target_or_model_name)} has no version with alias {alias!r}")
    with using_store(uri):
        model = mlflow.pyfunc.load_model(f"models:/{info.name}/{info.version}")
    return unwrap_bundle(model), info


def load_bundle(target_or_model_name: str, alias: str = CHAMPION, *, tracking_uri: str | None = None) -> TargetBundle:
    """The TargetBundle registered as ``radar-<target>@<alias>``."""
    return load_bundle_with_info(target_or_model_name, alias, tracking_uri=tracking_uri)[0]


def champion_bundle(target: str, *, tracking_uri: str | None = None) -> TargetBundle | None:
    """The current champion's bundle, or None when the target has no champion yet."""
    try:
        return load_bundle(target, CHAMPION, tracking_uri=tracking_uri)
    except LookupError:
        return None


# --- aliases, promotion and rollback ---------------------------------------------------


def _history(client: MlflowClient, name: str) -> list[int]:
    raw = client.get_registered_model(name).tags.get(HISTORY_TAG)
    return [int(v) for v in json.loads(raw)] if raw else []


def _write_history(client: MlflowClient, name: str, history: list[int]) -> None:
    history = history[-MAX_HISTORY:]
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    if history:
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, str(history[-1]))
    elif _alias_version(client, name, PREVIOUS_CHAMPION) is not None:
        client.delete_registered_model_alias(name, PREVIOUS_CHAMPION)


def _exists(client: MlflowClient, name: str, version: int) -> bool:
    try:
        client.get_model_version(name, str(version))
    except MlflowException as err:
        if _missing(err):
            return False
        raise
    return True


def _make_champion(client: MlflowClient, name: str, version: int, how: str, reason: str) -> AliasChange:
    """Move ``champion`` to ``version``, pushing the outgoing champion onto the history."""
    before = _alias_version(client, name, CHAMPION)
    history = _history(client, name)
    if before != version:
        if before is not None:
            history.append(before)
        client.set_registered_model_alias(name, CHAMPION, str(version))
        _write_history(client, name, history)
    if _alias_version(client, name, CHALLENGER) == version:
        client.delete_registered_model_alias(name, CHALLENGER)
    client.set_model_version_tag(name, str(version), "decision", how)
    client.set_model_version_tag(name, str(version), "decision_reason", reason)
    client.set_model_version_tag(name, str(version), "champion_since", _now())
    return AliasChange(name, before, version, history[-1] if history else None, history)


def _metric_key(text: str) -> str:
    """An MLflow-safe metric name piece."""
    return "".join(c if c.isalnum() or c in "_-./" else "_" for c in text)


def _record_in_run(client: MlflowClient, run_id: str, decision: GateDecision) -> None:
    client.set_tag(run_id, "radar.decision", CHAMPION if decision.promote else CHALLENGER)
    client.set_tag(run_id, "radar.decision_reason", decision.summary[:5000])
    client.set_tag(run_id, "radar.served", decision.served)
    client.log_dict(run_id, decision.to_dict(), "gate_decision.json")
    for d in decision.differences:
        stem = f"gate_{_metric_key(d.a)}_minus_{_metric_key(d.b)}_{d.metric}"
        for suffix, value in (("", d.estimate), ("_low", d.low), ("_high", d.high)):
            if value == value:  # NaN is better absent than plotted
                client.log_metric(run_id, stem + suffix, float(value))


def apply_decision(
    target: str, version: int, decision: GateDecision, *, tracking_uri: str | None = None
) -> AliasChange | None:
    """Make ``version`` champion or challenger as the gate decided; the reasons go on the
    version's tags and into its run. Returns the alias change when it was promoted."""
    name = model_name(target)
    with using_store(_uri(tracking_uri)) as client:
        mv = client.get_model_version(name, str(version))
        if mv.run_id:
            _record_in_run(client, mv.run_id, decision)
        if decision.promote:
            return _make_champion(client, name, version, "promoted by gate", decision.summary[:5000])
        client.set_registered_model_alias(name, CHALLENGER, str(version))
        client.set_model_version_tag(name, str(version), "decision", "kept as challenger")
        client.set_model_version_tag(name, str(version), "decision_reason", decision.summary[:5000])
        return None


def _latest_version(client: MlflowClient, name: str) -> int:
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        raise LookupError(f"{name} has no versions")
    return max(int(v.version) for v in versions)


def promote(
    target: str, version: int | None = None, *, tracking_uri: str | None = None, reason: str = "manual promotion"
) -> AliasChange:
    """Force a version to champion, bypassing the gate (the outgoing champion can be rolled
    back to). ``version=None`` promotes the challenger, or else the latest version."""
    name = model_name(target)
    with using_store(_uri(tracking_uri)) as client:
        if version is None:
            version = _alias_version(client, name, CHALLENGER) or _latest_version(client, name)
        if not _exists(client, name, int(version)):
            raise LookupError(f"{name} has no version {version}")
        return _make_champion(client, name, int(version), "promoted by hand", reason)


def rollback(target: str, *, tracking_uri: str | None = None) -> AliasChange:
    """Restore the champion before the current one (undo; see the module doc)."""
    name = model_name(target)
    with using_store(_uri(tracking_uri)) as client:
        current = _alias_version(client, name, CHAMPION)
        history = _history(client, name)
        # Versions deleted since they were champion cannot come back; skip them.
        while history and (history[-1] == current or not _exists(client, name, history[-1])):
            history.pop()
        if not history:
            raise NothingToRollBack(f"{name} has no earlier champion to roll back to")
        restored = history.pop()
        client.set_registered_model_alias(name, CHAMPION, str(restored))
        _write_history(client, name, history)
        client.set_model_version_tag(name, str(restored), "decision", "restored by rollback")
        if current is not None:
            client.set_model_version_tag(name, str(current), "rolled_back_at", _now())
        return AliasChange(name, current, restored, history[-1] if history else None, history)


# --- the gate, wired to the registry ---------------------------------------------------

def predict_for_gate(bundle: TargetBundle, X: pd.DataFrame, rows: Outcomes) -> np.ndarray:
    """A registered bundle's test predictions as the gate reads them: P(positive), or
    P(won within each of ``rows.days``) for survival."""
    scores = bundle.predict(X)
    if rows.kind == "survival":
        return scores[[f"p_won_{d}d" for d in rows.days]].to_numpy(dtype=float)
    return scores["probability"].to_numpy(dtype=float)


def gate(
    bundle: TargetBundle,
    rows: Outcomes,
    predictions: Mapping[str, np.ndarray],
    test_features: pd.DataFrame,
    config: TrainingConfig,
    *,
    tracking_uri: str | None = None,
) -> GateDecision:
    """The gate's decision for a run's contenders, the current champion re-scored on the
    same test rows beside them (``training.gate``). A champion that answers another
    question (another horizon or kind) cannot be compared, and the new pick replaces it."""
    champion = champion_bundle(bundle.target, tracking_uri=tracking_uri)
    judged = dict(predictions)
    notes: list[str] = []
    if champion is not None:
        if (champion.kind, champion.horizon_days) != (bundle.kind, bundle.horizon_days):
            notes.append(
                f"the champion answers a {champion.horizon_days}-day question and this run a "
                f"{bundle.horizon_days}-day one: not comparable, so the new pick replaces it"
            )
        else:
            judged[CHAMPION_CONTENDER] = predict_for_gate(champion, test_features, rows)
    return decide(rows, judged, config, notes)


def _example_for(bundle: TargetBundle, test_features: pd.DataFrame | None) -> pd.DataFrame:
    if test_features is not None and len(test_features):
        return test_features
    return pd.DataFrame({c: [float("nan")] for c in bundle.feature_names})


def register_results(results: Mapping[str, Any], settings: Settings, *, experiment: str = DEFAULT_EXPERIMENT) -> None:
    """Gate, log and register every trained target of a pipeline run (or a flat table).

    ``results`` maps target to ``training.pipeline.TargetResult``; each gets
    ``registration`` filled in and its ``decision`` replaced by the one that saw the champion.
    """
    uri = settings.tracking_uri
    params = {"training": settings.training.model_dump(mode="json"), "features": settings.features.model_dump(mode="json")}
    for result in results.values():
        bundle = result.bundle
        if bundle is None:
            continue
        decision = gate(
            bundle, result.test_rows, result.test_predictions, result.test_features, settings.training, tracking_uri=uri
        )
        result.decision = decision
        info = log_target(
            bundle,
            params=params | result.params,
            plots=result.figures,
            input_example=_example_for(bundle, result.test_features),
            tracking_uri=uri,
            experiment=experiment,
            decision=decision,
        )
        result.registration = {
            "model_name": info.name,
            "version": info.version,
            "run_id": info.run_id,
            "served": decision.served,
            "alias": CHAMPION if decision.promote else CHALLENGER,
            "promoted": decision.promote,
            "reasons": decision.reasons,
        }


# --- scoring a registered bundle on fresh rows ------------------------------------------


def score_bundle(bundle: TargetBundle, test: Any) -> dict[str, float]:
    """Test metrics of any bundle on a split's rows (``training.datasets.TargetRows``),
    named as the training table shows them."""
    from training.metrics import binary_metrics

    scores = bundle.predict(test.X)
    if bundle.kind != "survival":
        return binary_metrics(test.y, scores["probability"].to_numpy())
    from training.pipeline import survival_metrics

    days = [int(c[len("p_won_") : -1]) for c in scores.columns if c.startswith("p_won_")]
    won_within = scores[[f"p_won_{d}d" for d in days]].to_numpy()
    return survival_metrics(test.duration, test.event, won_within, days)


def evaluate_registered(
    target: str, data_dir: Path | str, settings: Settings, *, alias: str = CHAMPION
) -> dict[str, Any]:
    """Score ``radar-<target>@<alias>`` on the test snapshot planned over ``data_dir``.

    Labels are cut with the bundle's own horizon, so the model is judged on the question
    it was trained to answer whatever the current settings say.
    """
    from features.ingest import load_crm
    from training.pipeline import build_target_rows

    bundle, info = load_bundle_with_info(target, alias, tracking_uri=settings.tracking_uri)
    training = settings.training.model_copy(update={"horizon_days": bundle.horizon_days})
    same_horizon = settings.model_copy(update={"training": training})
    data = load_crm(data_dir, settings=same_horizon).data
    plan, rows = build_target_rows(data, same_horizon, (bundle.target,))
    return {
        "model_name": info.name,
        "version": info.version,
        "alias": alias,
        "test_snapshot": plan.test.date().isoformat(),
        "recorded_test_snapshot": info.tags.get("test_snapshot", ""),
        "metrics": score_bundle(bundle, rows[bundle.target]["test"]),
    }
