"""Entry points of the MLflow project (``mlproject/MLproject``): parse, call the library, log.

Each command mirrors its entry point's parameters. Under ``mlflow run`` the project's run
is already open (``MLFLOW_RUN_ID``); ``start_run`` resumes it, and per-target runs nest
under it. Run by hand, a fresh run is opened in the ``radar`` experiment.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow

from radar.config import Settings, load_settings
from training.tracking import DEFAULT_EXPERIMENT, experiment_id_for, using_store


@contextmanager
def _project_run(settings: Settings, name: str) -> Iterator[None]:
    uri = settings.tracking_uri
    with using_store(uri):
        # MLFLOW_RUN_ID (set by ``mlflow run``) wins over the experiment given here.
        with mlflow.start_run(run_name=name, experiment_id=experiment_id_for(DEFAULT_EXPERIMENT, uri)):
            yield


def _print(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, indent=2, default=str))


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Optionally write a demo world, then train, gate and register every target."""
    from training.pipeline import train_all

    base = load_settings()
    settings = base.model_copy(
        update={
            "training": base.training.model_copy(
                update={"horizon_days": args.horizon_days, "n_snapshots": args.n_snapshots, "random_seed": args.seed}
            )
        }
    )
    data_dir = Path(args.data_dir)
    if args.customers > 0:
        from radar.demo import generate_world

        generate_world(n_customers=args.customers, seed=args.seed, out_dir=data_dir)
    with _project_run(settings, "train"):
        report = train_all(data_dir, settings).to_dict()
        mlflow.log_dict(report, "train_report.json")
    return report


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Score the registered version at an alias on the test snapshot of a data folder."""
    from training.registry import evaluate_registered

    settings = load_settings()
    with _project_run(settings, f"evaluate {args.target}"):
        result = evaluate_registered(args.target, Path(args.data_dir), settings, alias=args.alias)
        mlflow.log_metrics({f"{args.alias}_{k}": v for k, v in result["metrics"].items() if v == v})
        mlflow.log_dict(result, "evaluation.json")
    return result


def promote(args: argparse.Namespace) -> dict[str, Any]:
    """Force a version (default: the challenger) to champion."""
    from training.registry import promote as promote_version

    settings = load_settings()
    version = int(args.version) if args.version else None
    with _project_run(settings, f"promote {args.target}"):
        change = promote_version(args.target, version, tracking_uri=settings.tracking_uri).to_dict()
        mlflow.log_dict(change, "alias_change.json")
    return change


def rollback(args: argparse.Namespace) -> dict[str, Any]:
    """Restore the previous champion."""
    from training.registry import rollback as rollback_target

    settings = load_settings()
    with _project_run(settings, f"rollback {args.target}"):
        change = rollback_target(args.target, tracking_uri=settings.tracking_uri).to_dict()
        mlflow.log_dict(change, "alias_change.json")
    return change


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m training.entrypoints")
    sub = top.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data-dir", required=True)
    t.add_argument("--horizon-days", type=int, default=90)
    t.add_argument("--n-snapshots", type=int, default=12)
    t.add_argument("--customers", type=int, default=0, help="0: use data-dir as is; else write a demo world there")
    t.add_argument("--seed", type=int, default=42)
    t.set_defaults(run=train)
    e = sub.add_parser("evaluate")
    e.add_argument("--target", required=True)
    e.add_argument("--alias", default="champion")
    e.add_argument("--data-dir", required=True)
    e.set_defaults(run=evaluate)
    p = sub.add_parser("promote")
    p.add_argument("--target", required=True)
    p.add_argument("--version", default="", help="empty: the challenger, else the latest version")
    p.set_defaults(run=promote)
    r = sub.add_parser("rollback")
    r.add_argument("--target", required=True)
    r.set_defaults(run=rollback)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _print(args.run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
