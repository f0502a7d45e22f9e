"""The online feature store: what is written for a day is read back unchanged."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from features.ingest import load_crm
from features.pipeline import build_features
from radar.config import Settings
from radar.demo import generate_world
from serving.feature_store import FeatureStore, UnknownDay, materialize
from serving.scoring import eligible
from training.datasets import TARGETS, data_span


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("world") / "crm"
    generate_world(n_customers=300, seed=3, out_dir=out)
    settings = Settings(work_dir=tmp_path_factory.mktemp("radar"))
    data = load_crm(out, settings=settings).data
    return settings, data, data_span(data)[1].normalize()


def test_features_and_targets_round_trip(world, tmp_path) -> None:
    settings, data, as_of = world
    store = FeatureStore(tmp_path / "store.sqlite")
    n = materialize(data, as_of, settings, store)
    features = build_features(data, as_of, settings.features)
    assert n == len(features)
    people = list(features.index[::7])
    rows = store.read(people + ["nobody"])
    assert rows.as_of == as_of.date() and rows.missing == ["nobody"]
    assert list(rows.features.columns) == list(features.columns)
    expected = features.loc[people]
    numeric = [c for c in features.columns if pd.api.types.is_numeric_dtype(features[c])]
    np.testing.assert_array_equal(rows.features[numeric].to_numpy(), expected[numeric].to_numpy())
    for column in set(features.columns) - set(numeric):
        assert list(rows.features[column].astype(object).where(rows.features[column].notna(), None)) == \
            list(expected[column].astype(object).where(expected[column].notna(), None)), column
    for target in TARGETS:
        want = eligible(target, data, features, as_of, settings).intersection(people)
        assert set(rows.eligible[target]) == set(want), target


def test_days_are_kept_apart_and_replaced(world, tmp_path) -> None:
    settings, data, as_of = world
    store = FeatureStore(tmp_path / "store.sqlite")
    earlier = as_of - pd.Timedelta(days=30)
    materialize(data, earlier, settings, store)
    materialize(data, as_of, settings, store)
    materialize(data, as_of, settings, store)
    assert store.days() == [earlier.date(), as_of.date()]
    assert store.read([]).as_of == as_of.date()
    assert store.read([], earlier.date()).as_of == earlier.date()
    with pytest.raises(UnknownDay):
        store.read([], date(1999, 1, 1))
