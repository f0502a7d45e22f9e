"""An orders log alone (customer, date, amount, maybe quantity) is enough for two targets.

purchase_probability and churn_by_indifference are trained from it and compared with the
BG/NBD and recency-frequency baselines; lead_quality and time_to_close need leads and
deals, so they are skipped with a note. Users' own column names come in through a mapping
file: ``radar validate LOG --mapping m.yaml`` then ``radar train`` on the validated folder
(``train_all`` reads a folder without a mapping).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.ingest import load_crm, write_validated
from radar.config import Settings
from radar.demo import generate_world
from training.pipeline import TrainReport, train_all

ORDER_TARGETS = ("purchase_probability", "churn_by_indifference")
SKIPPED = ("lead_quality", "time_to_close")
BASELINES = ("bgnbd", "rf_rule")

MAPPING = """\
tables:
  orders:
    file: orders.csv
    columns:
      customer: customer_id
      date: timestamp
      total: amount
      state: status
"""


def orders_log_from_demo(people: int, seed: int, folder: Path) -> Path:
    """A shop's orders export: the demo world's orders with the shop's own column names,
    a quantity column Radar has no use for, and nothing else (no leads, deals, events)."""
    world = folder / "world"
    generate_world(people, seed, world)
    orders = pd.read_csv(world / "orders.csv", dtype=str, keep_default_na=False)
    # Orders linked only through an e-mail or lead id have no customer number in a shop's log.
    orders = orders[orders["customer_id"] != ""]
    log = pd.DataFrame(
        {
            "customer": orders["customer_id"],
            "date": orders["timestamp"],
            "total": orders["amount"],
            "state": orders["status"],
            "qty": np.random.default_rng(seed).integers(1, 4, len(orders)),
        }
    )
    out = folder / "log"
    out.mkdir()
    log.to_csv(out / "orders.csv", index=False)
    (out / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
    return out


def simulated_bgnbd_log(customers: int, seed: int, folder: Path, days: int = 900) -> Path:
    """Orders drawn from the BG/NBD story itself: each customer buys as a Poisson process
    at their own rate and, after each purchase, leaves for good with their own probability.
    Dates are day-first text without a time and there is no status (every order is paid)."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(shape=0.8, scale=1 / 25, size=customers)  # purchases per day
    leave = rng.beta(1.2, 4.0, size=customers)
    first = rng.integers(0, days // 2, size=customers)
    # Purchases after the first: geometric count before leaving, exponential gaps.
    extra = rng.geometric(leave) - 1
    owner = np.repeat(np.arange(customers), extra + 1)
    gaps = rng.exponential(1 / np.repeat(rate, extra + 1))
    starts = np.r_[0, np.cumsum(extra + 1)[:-1]]
    gaps[starts] = first
    # One cumulative sum over everyone, minus what earlier customers contributed.
    running = np.cumsum(gaps)
    day = np.floor(running - np.repeat(running[starts] - first, extra + 1)).astype(int)
    keep = day < days
    dates = pd.Timestamp("2022-01-01") + pd.to_timedelta(day[keep], unit="D")
    log = pd.DataFrame(
        {
            "client": [f"K{i:06d}" for i in owner[keep]],
            "order date": dates.strftime("%d/%m/%Y"),
            "value": np.round(rng.gamma(2.0, 30.0, size=int(keep.sum())), 2),
        }
    )
    out = folder / "simulated"
    out.mkdir()
    log.to_csv(out / "orders.csv", index=False)
    mapping = (
        "date_formats: ['%d/%m/%Y']\ntables:\n  orders:\n    columns:\n"
        "      client: customer_id\n      order date: timestamp\n      value: amount\n"
    )
    (out / "mapping.yaml").write_text(mapping, encoding="utf-8")
    return out


def validate_then_train(log: Path, work: Path, register: bool, snapshots: int = 12) -> TrainReport:
    """What a user runs: validate with the mapping, then train on the validated folder."""
    base = Settings(work_dir=work / ".radar", mlflow_tracking_uri=f"sqlite:///{work / 'm.db'}")
    settings = base.model_copy(update={"training": base.training.model_copy(update={"n_snapshots": snapshots})})
    loaded = load_crm(log, log / "mapping.yaml", settings=settings)
    validated = write_validated(loaded, work / "validated")
    return train_all(validated, settings, register=register)


def _check_shape(report: TrainReport) -> None:
    """Exactly the two order targets trained, each against both baselines; the others noted."""
    trained = {t for t, r in report.results.items() if r.bundle is not None}
    assert trained == set(ORDER_TARGETS)
    for target in SKIPPED:
        notes = report.results[target].notes
        assert notes and all(n.startswith(f"{target}:") for n in notes), notes
    for target in ORDER_TARGETS:
        assert {"model", *BASELINES} <= set(report.results[target].comparison.index)


#: On a small log BG/NBD's two-parameter prior is hard to beat for purchase_probability
#: (measured at 6-8 k people: model 0.865-0.867 vs BG/NBD 0.864-0.875); the strict
#: comparison runs on a 20 k log in the slow test.
SMALL_LOG_AUC_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def small_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return orders_log_from_demo(6_000, 3, tmp_path_factory.mktemp("orders-only"))


@pytest.fixture(scope="module")
def small_report(small_log: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainReport:
    return validate_then_train(small_log, tmp_path_factory.mktemp("train"), register=True)


def test_log_is_read_with_the_mapping_and_quantity_is_reported_dropped(small_log: Path) -> None:
    loaded = load_crm(small_log, small_log / "mapping.yaml", settings=Settings())
    report = loaded.report.tables["orders"]
    assert set(loaded.data.tables()) == {"orders"}
    assert report.accepted + report.rejected == report.read
    assert report.accepted > 0.98 * report.read
    assert "qty" in report.dropped_columns


def test_orders_only_trains_the_two_order_targets(small_report: TrainReport) -> None:
    _check_shape(small_report)


def test_orders_only_registers_a_champion_per_order_target(small_report: TrainReport) -> None:
    for target in ORDER_TARGETS:
        registration = small_report.results[target].registration
        # The model or, when it fails the gate, its best baseline serves.
        assert registration.get("promoted") or registration.get("fallback"), registration
    for target in SKIPPED:
        assert not small_report.results[target].registration


def test_model_holds_its_own_against_bgnbd_on_a_small_log(small_report: TrainReport) -> None:
    churn = small_report.results["churn_by_indifference"].comparison["auc"]
    assert churn["model"] >= churn["bgnbd"], churn.to_dict()
    purchase = small_report.results["purchase_probability"].comparison["auc"]
    assert purchase["model"] >= purchase["bgnbd"] - SMALL_LOG_AUC_TOLERANCE, purchase.to_dict()


@pytest.mark.slow
def test_model_is_at_least_as_good_as_bgnbd_on_a_20k_demo_log(tmp_path: Path) -> None:
    report = validate_then_train(orders_log_from_demo(20_000, 3, tmp_path), tmp_path, register=False)
    _check_shape(report)
    for target in ORDER_TARGETS:
        result = report.results[target]
        auc = result.comparison["auc"]
        assert result.bundle.model_type == "lightgbm", result.notes
        assert auc["model"] >= auc["bgnbd"], (target, auc.to_dict())


def test_a_simulated_bgnbd_log_without_status_trains(tmp_path: Path) -> None:
    log = simulated_bgnbd_log(3_000, 11, tmp_path)
    report = validate_then_train(log, tmp_path, register=False, snapshots=6)
    _check_shape(report)
