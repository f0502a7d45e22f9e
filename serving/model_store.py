"""Where the server's champions come from: the MLflow registry, or BentoML's model store.

``radar bento export`` copies each champion bundle into BentoML's model store as
``radar-<target>``, with its registry facts as metadata, so that ``bentoml build`` packs the
models into the bento and a server keeps working when the MLflow registry is unreachable.
``load_models(settings, "auto")`` tries the registry first and falls back to the store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import joblib

from radar.config import Settings
from serving.schemas import ModelInfo
from serving.scoring import Champion
from training.datasets import TARGETS
from training.pyfunc import BUNDLE_FILE, save_bundle

Source = Literal["auto", "mlflow", "bentoml"]
logger = logging.getLogger(__name__)


@dataclass
class LoadedModels:
    """The champions the server scores with and what ``/models`` says about them."""

    champions: dict[str, Champion] = field(default_factory=dict)
    infos: dict[str, ModelInfo] = field(default_factory=dict)
    source: str = "none"
    #: Why these are not the registry's champions (served degraded from BentoML's store),
    #: or why there are none; None when the registry answered.
    problem: str | None = None


def bento_model_name(target: str) -> str:
    return f"radar-{target}"


def _test_metrics(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in sorted(metrics.items()) if k.startswith(("test_", "gate_"))}


def load_from_registry(settings: Settings, targets: tuple[str, ...] = TARGETS) -> LoadedModels:
    """Champions from MLflow (targets without a champion are left out)."""
    from training.registry import load_bundle_with_info

    loaded = LoadedModels(source="mlflow")
    for target in targets:
        try:
            bundle, info = load_bundle_with_info(target, "champion", tracking_uri=settings.tracking_uri)
        except LookupError:
            continue
        loaded.champions[target] = Champion(bundle, str(info.version))
        loaded.infos[target] = ModelInfo(
            target=target, name=info.name, version=str(info.version), model_type=bundle.model_type,
            trained_at=info.trained_at or bundle.trained_at, source="mlflow",
            test_metrics=_test_metrics(info.metrics), features=list(bundle.feature_names),
            served=bundle.contender, gate=info.tags.get("decision_reason", ""),
        )
    return loaded


def load_from_bentoml(targets: tuple[str, ...] = TARGETS) -> LoadedModels:
    """The latest exported champion of each target from BentoML's model store."""
    import bentoml
    from bentoml.exceptions import NotFound

    loaded = LoadedModels(source="bentoml")
    for target in targets:
        try:
            stored = bentoml.models.get(f"{bento_model_name(target)}:latest")
        except NotFound:
            continue
        bundle = joblib.load(Path(stored.path) / BUNDLE_FILE)
        meta = dict(stored.info.metadata)
        version = str(meta.get("mlflow_version", stored.tag.version))
        loaded.champions[target] = Champion(bundle, version)
        loaded.infos[target] = ModelInfo(
            target=target, name=str(stored.tag), version=version, model_type=bundle.model_type,
            trained_at=str(meta.get("trained_at", bundle.trained_at)), source="bentoml",
            test_metrics={k: float(v) for k, v in dict(meta.get("test_metrics", {})).items()},
            features=list(bundle.feature_names), served=bundle.contender, gate=str(meta.get("gate", "")),
        )
    return loaded


def load_models(settings: Settings, source: Source = "auto") -> LoadedModels:
    """Champions from the registry, or from the BentoML store when asked or when the
    registry is unreachable or empty."""
    if source == "bentoml":
        return _from_store_because(None)
    where = _safe_uri(settings.tracking_uri)
    try:
        loaded = load_from_registry(settings)
    # The registry may be a remote server or a file on a dead mount: whatever the failure,
    # "auto" means serving from the store beats not serving. It is logged, not swallowed.
    except Exception as err:  # noqa: BLE001
        if source == "mlflow":
            raise
        logger.warning("MLflow registry unavailable (%s); loading from the BentoML model store", type(err).__name__)
        return _from_store_because(f"MLflow registry {where} unreachable ({type(err).__name__})")
    if not loaded.champions and source == "auto":
        logger.warning("no champion in the MLflow registry; loading from the BentoML model store")
        return _from_store_because(f"no champion in the MLflow registry {where}")
    if not loaded.champions:
        loaded.problem = f"no champion in the MLflow registry {where}: run `radar train DIR`"
    return loaded


def _from_store_because(registry_problem: str | None) -> LoadedModels:
    """BentoML's store; ``problem`` says why the server is degraded or has nothing to serve."""
    loaded = load_from_bentoml()
    if loaded.champions and registry_problem:
        loaded.problem = f"{registry_problem}: serving the champions exported to BentoML's model store"
    elif not loaded.champions:
        none_here = f"BentoML's model store ({_bentoml_models_dir()}) holds no radar-* models"
        fix = "run `radar train DIR`, or `radar bento export` where the registry is reachable"
        loaded.problem = f"{registry_problem + '; ' if registry_problem else ''}{none_here}: {fix}"
    return loaded


def _bentoml_models_dir() -> str:
    from bentoml._internal.configuration.containers import BentoMLContainer

    return str(BentoMLContainer.model_store_dir.get())


def _safe_uri(uri: str) -> str:
    """The tracking URI without credentials (user:password@) for messages and logs."""
    scheme, sep, rest = uri.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return uri
    return f"{scheme}://{rest.split('@', 1)[1]}"


def export_to_bentoml(settings: Settings) -> list[str]:
    """Copy every registry champion into BentoML's model store; returns the new tags."""
    import bentoml

    tags = []
    registry = load_from_registry(settings)
    for target, champion in registry.champions.items():
        info = registry.infos[target]
        metadata = {"mlflow_version": info.version, "trained_at": info.trained_at,
                    "model_type": info.model_type, "test_metrics": info.test_metrics, "gate": info.gate}
        with bentoml.models.create(bento_model_name(target), labels={"target": target},
                                   metadata=metadata) as stored:
            save_bundle(champion.bundle, Path(stored.path))
        tags.append(str(stored.tag))
    return tags
