"""Precomputed answers: every person's answer by id, made once per day and champion.

Scoring one person by id costs a model call and an explanation per target; a CRM that
asks for thousands of people a minute asks again and again about the same day. So when a
day is materialised (``radar features --materialize``, the quickstart) and when the
scoring server starts with champions the stored answers were not made by, every stored
person is scored and explained once, through the very code that answers a request
(``ScoringApp.target_records``), and each answer is kept in the feature store per day,
target and champion version, with ``serving.precomputed_top_k`` reasons.

``POST /score`` by id then reads the stored answer of each target asked for; the trend
against the score history is added as it is read. An answer is only read when it was made
for that day by the champion serving now, with the request's ``top_k`` reasons (the
default) or none asked for, and for every person the target applies to; anything else is
computed. Writing a day again
drops its answers in the same transaction, so a re-materialised day is never answered
from the old features. Answers by history are always computed.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from serving.feature_store import StoreUnavailable
from serving.scoring import ValueBasis
from training.datasets import TARGETS

logger = logging.getLogger(__name__)
#: Persons scored per pass: bounded memory, and batches large enough for the models.
CHUNK_SIZE = 5_000


def stale_targets(app: Any, day: date | None = None) -> list[str]:
    """Champion targets whose stored answers for ``day`` (default: the latest) are missing
    or were made by another version or with another number of reasons than configured."""
    store = app.store
    if store is None or not store.exists() or not store.days():
        return []
    day = day or store.days()[-1]
    k = app.settings.serving.precomputed_top_k
    stale = []
    sets = store.answer_sets(day)
    for target, champion in app.models.champions.items():
        made = sets.get(target)
        if made is None or made[0] != champion.version or made[1] != k:
            stale.append(target)
    return [t for t in TARGETS if t in stale]


def precompute_answers(app: Any, day: date | None = None, targets: list[str] | None = None,
                       record_history: bool = False) -> dict[str, int]:
    """Score and explain everyone stored for ``day`` (default: the latest) with each
    champion and store the answers; returns the answers stored per target. With
    ``record_history`` (a day being materialised), each score is also a point of the
    score history for that day, as ``radar score`` records them."""
    store = app.store
    day = day or store.days()[-1]
    targets = [t for t in (targets or TARGETS) if t in app.models.champions]
    k = app.settings.serving.precomputed_top_k
    moment = pd.Timestamp(day)
    people = store.person_ids(day)
    payloads: dict[str, list[tuple[str, str]]] = {t: [] for t in targets}
    points: list[dict[str, Any]] = []
    for start in range(0, len(people), CHUNK_SIZE):
        found = store.read_rows(people[start:start + CHUNK_SIZE], day)
        basis = ValueBasis.stored(found.population)
        for target in targets:
            applies = found.eligible[target]
            if not applies.any():
                continue
            deals = None
            if target == "time_to_close":
                deals = store.read_deals(day, found.rows.take(np.flatnonzero(applies)))
            grouped: dict[str, list[dict[str, Any]]] = {}
            for record in app.target_records(target, found.rows, applies, moment, k, basis, deals):
                grouped.setdefault(record["person_id"], []).append(record)
                if record_history:
                    points.append({"person_id": record["person_id"], "target": target, "score": record["score"],
                                   "deal_id": record.get("deal_id"), "probability": record["probability"],
                                   "model_version": record["model_version"]})
            # A person the target applies to without an answer (no open deal left) is kept
            # as an empty list, so the set stays complete and is read, not recomputed.
            for pid in dict.fromkeys(found.rows.ids[applies].tolist()):
                payloads[target].append((pid, json.dumps(grouped.get(pid, []), default=_plain)))
    for target in targets:
        store.write_answers(day, target, app.models.champions[target].version, k, payloads[target])
    if record_history and app.history is not None and points:
        app.history.record(pd.DataFrame(points), day)
    return {t: len(p) for t, p in payloads.items()}


def refresh_answers(app: Any) -> dict[str, int]:
    """What the server runs after loading: precompute the latest day's stale targets, in
    one process of the server at a time (the others keep computing on a miss meanwhile).
    Never raises: an answer not stored is an answer computed."""
    if not app.settings.serving.precompute_answers:
        return {}
    try:
        stale = stale_targets(app)
        if not stale:
            return {}
        # One process of every server sharing the store: a lock file beside a SQLite store,
        # an advisory lock in a PostgreSQL one.
        with app.store.exclusive("answers") as mine:
            if not mine:
                return {}
            stale = stale_targets(app)  # another process may have just made them
            done = precompute_answers(app, targets=stale) if stale else {}
        logger.info("precomputed answers: %s", done)
        return done
    except StoreUnavailable as err:  # one line: the store is down, not broken
        logger.warning("precomputing answers skipped: %s; answers by id are computed", err)
        return {}
    except Exception:  # logged: scoring must not stop because a cache could not be filled
        logger.exception("precomputing answers failed; answers by id are computed")
        return {}


def _plain(value: Any) -> Any:
    """What json cannot write itself: times as ISO text, numpy scalars as numbers."""
    if isinstance(value, (pd.Timestamp, date)):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in an answer")
