"""Action lists a marketer or salesperson can work today.

``build_lists`` turns the champions' scores into seven ranked lists, one job each:

| list | who | expected value (the ranking) |
|---|---|---|
| ``leads_to_call`` | open leads (``lead_quality`` eligible) | P(convert) × deal value: the open deal's amount, else what a customer spends in a year on average |
| ``deals_closing_soon`` | open deals with P(won within ``closing_soon_days``) ≥ ``closing_soon_min_probability`` | that P × deal amount |
| ``stalled_deals`` | open deals whose stage has not changed for more than ``stalled_after_days`` (a deal never moved counts from its creation) | P(won by the horizon) × deal amount |
| ``drifting_customers`` | active customers at risk of churn by indifference, not in the service list | P(churn by indifference) × customer value |
| ``service_risk_customers`` | active customers whose dominant risk is service, or with a service trigger in the last ``service_trigger_days`` | P(service churn) (P(churn) when the model has no service part) × customer value |
| ``failed_payments`` | exactly the people with a failed payment in the last ``failed_payment_days`` not followed by a paid order | unrecovered failed amount × P(buy again) |
| ``likely_buyers`` | customers with P(buy within ``likely_buyer_days``) ≥ ``likely_buyer_min_probability`` | that P × their mean order, with the category they most likely buy next |

Customer value (a deliberately simple CLV): what the customer paid in the last 365 days ×
``customer_lifetime_years`` (expected remaining years). The purchase model predicts over the
training horizon H; the chance within ``d < H`` days assumes a constant daily rate:
``1 - (1 - P) ** (d / H)``. The next category is the customer's most frequent category among
paid orders of the last ``category_lookback_days`` (ties: the most recently bought, then by
name): what people bought often lately is the best simple bet on what they buy next.

Every row carries ``person_id``, the CRM's own ``lead_id`` / ``customer_id`` so the CRM can
find the person, the channel that brought them in, their segment, the owner of their open
deal, the grade and the top reasons (``reasons_text``). Lists go to the sales team, so
e-mail and phone are never included. A list whose model has no champion is empty (with its
columns). Filters (:class:`ListFilters`) apply to every list that has the column.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, field_validator

from features.atomic import atomic_path, write_csv
from features.contract import DEAL_STAGES, CRMData
from features.source_ids import source_ids
from features.pipeline import OPEN_DEAL_ID, build_features
from radar.config import ListSettings, Settings
from serving.figures import tidy_figures
from serving.scoring import Champion, ValueBasis, score_target, target_rows
from training.labels import paid_orders

LIST_NAMES: tuple[str, ...] = (
    "leads_to_call",
    "deals_closing_soon",
    "stalled_deals",
    "drifting_customers",
    "service_risk_customers",
    "failed_payments",
    "likely_buyers",
)
#: The workbook ``write_lists`` writes beside the CSV files, one sheet per list.
WORKBOOK_NAME = "lists.xlsx"
#: Columns every list starts with: who the person is in the CRM and who works them.
CONTEXT_COLUMNS: tuple[str, ...] = ("person_id", "lead_id", "customer_id", "channel", "segment", "owner", "deal_id")
#: Columns every list ends with: the model's judgement and why.
JUDGEMENT_COLUMNS: tuple[str, ...] = ("probability", "grade", "expected_value", "reasons_text")


class ListFilters(BaseModel):
    """Keep only rows whose column takes one of the given values (None: no filter)."""

    channel: tuple[str, ...] | None = None
    segment: tuple[str, ...] | None = None
    grade: tuple[str, ...] | None = None
    owner: tuple[str, ...] | None = None

    @field_validator("channel", "segment", "grade", "owner", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        # A single value on the command line or in code reads as a one-value filter.
        return (value,) if isinstance(value, str) else value


# ---------------------------------------------------------------- facts from the tables


def recent_unrecovered_failures(data: CRMData, as_of: pd.Timestamp, days: int) -> pd.DataFrame:
    """People with a failed payment in ``[as_of - days, as_of)`` that no paid order (at the
    same time or later, before ``as_of``) has recovered: the same rule as the
    ``failed_amount_unrecovered`` feature. Columns ``n_recent_failed_payments`` and
    ``days_since_failed_payment`` (the latest such failure), index ``person_id``."""
    columns = {"n_recent_failed_payments": pd.Series(dtype=float), "days_since_failed_payment": pd.Series(dtype=float)}
    orders = data.orders
    if orders is None or "status" not in orders.columns:
        return pd.DataFrame(columns).rename_axis("person_id")
    stamps = orders["timestamp"]
    failed = orders[
        (orders["status"].astype(object) == "failed")
        & (stamps >= as_of - pd.Timedelta(days=days))
        & (stamps < as_of)
        & orders["person_id"].notna()
    ]
    paid = paid_orders(data)
    last_paid = paid[paid["timestamp"] < as_of].groupby("person_id")["timestamp"].max()
    recovered_by = failed["person_id"].map(last_paid)
    open_failures = failed[recovered_by.isna() | (failed["timestamp"] > recovered_by)]
    grouped = open_failures.groupby("person_id")["timestamp"]
    return pd.DataFrame(
        {
            "n_recent_failed_payments": grouped.size().astype(float),
            "days_since_failed_payment": (as_of - grouped.max()) / pd.Timedelta(days=1),
        }
    ).rename_axis("person_id")


def next_categories(data: CRMData, as_of: pd.Timestamp, lookback_days: int) -> pd.Series:
    """Each person's most frequent category among paid orders in ``[as_of - lookback, as_of)``;
    ties go to the most recently bought category, then to the first by name."""
    orders = paid_orders(data)
    if "category" not in orders.columns:
        return pd.Series(dtype=object, name="next_category").rename_axis("person_id")
    window = orders[
        (orders["timestamp"] >= as_of - pd.Timedelta(days=lookback_days))
        & (orders["timestamp"] < as_of)
        & orders["category"].notna()
        & orders["person_id"].notna()
    ]
    window = window.assign(category=window["category"].astype(object), person_id=window["person_id"].astype(object))
    counts = window.groupby(["person_id", "category"]).agg(n=("timestamp", "size"), last=("timestamp", "max"))
    ranked = counts.reset_index().sort_values(
        ["person_id", "n", "last", "category"], ascending=[True, False, False, True]
    )
    best = ranked.drop_duplicates("person_id").set_index("person_id")["category"]
    return best.rename("next_category")


def _owners(data: CRMData, deal_ids: pd.Series) -> pd.Series:
    """Owner of each person's open deal (the one the ``open_deal_*`` features describe)."""
    deals = data.deals
    if deals is None or "owner" not in deals.columns:
        return pd.Series(None, index=deal_ids.index, dtype=object)
    owner_of = deals.drop_duplicates("deal_id").set_index("deal_id")["owner"].astype(object)
    return deal_ids.map(owner_of).astype(object)


def person_context(
    data: CRMData, features: pd.DataFrame, as_of: pd.Timestamp, config: ListSettings
) -> pd.DataFrame:
    """Per person: CRM ids, channel, segment columns, open deal and its owner (no e-mail, no phone)."""
    context = pd.DataFrame(index=features.index)
    ids = source_ids(data, as_of).reindex(features.index)
    context["lead_id"] = ids["lead_id"]
    context["customer_id"] = ids["customer_id"]
    context["channel"] = features["lead_source"].astype(object) if "lead_source" in features else None
    segments = [c for c in config.segment_columns if f"lead_{c}" in features.columns]
    for column in segments:
        context[column] = features[f"lead_{column}"].astype(object)
    # The first segment attribute a person has, so one filter works whatever the CRM calls it.
    context["segment"] = context[segments].bfill(axis=1).iloc[:, 0] if segments else None
    deal_ids = features[OPEN_DEAL_ID].astype(object)
    context["deal_id"] = deal_ids
    context["owner"] = _owners(data, deal_ids)
    return context


# ---------------------------------------------------------------- scores


def _scores(
    data: CRMData,
    features: pd.DataFrame,
    as_of: pd.Timestamp,
    champions: dict[str, Champion],
    settings: Settings,
    top_k: int,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame | None]:
    """Each champion's answers for its eligible people, indexed by person_id (time to
    close: by deal_id, one row per open deal), and the open deals' feature rows (same index)."""
    scores, deal_rows = {}, None
    basis = ValueBasis.of(features)
    for target, champion in champions.items():
        rows = target_rows(target, data, features, as_of, settings)
        if not len(rows):
            continue
        frame = score_target(target, champion, rows, as_of, settings, top_k, basis)
        if target == "time_to_close":
            deal_rows = rows.reset_index().set_index("deal_id")
            frame = frame.set_index("deal_id")
        else:
            frame = frame.set_index("person_id")
        service = champion.bundle.service_model
        if service is not None:
            # score_target keeps only the dominant risk; the service list ranks by its probability.
            frame["service_probability"] = service.predict_proba(rows.reindex(columns=champion.bundle.feature_names))
        scores[target] = frame
    return scores, deal_rows


def _stage_names(ordinals: pd.Series) -> pd.Series:
    """Stage ordinals (the ``open_deal_stage`` feature) back to the stage names a CRM shows."""
    codes = ordinals.fillna(-1).to_numpy(dtype=np.int64)
    codes[(codes < 0) | (codes >= len(DEAL_STAGES))] = -1
    names = pd.Categorical.from_codes(codes, categories=list(DEAL_STAGES))
    return pd.Series(names, index=ordinals.index).astype(object)


# ---------------------------------------------------------------- the lists


def _leads_to_call(features: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    rows = features.loc[scores.index]
    customers = features[features["n_paid_orders"] > 0]
    typical = float(customers["paid_amount_365d"].mean()) if len(customers) else 0.0
    deal = rows["open_deal_amount"]
    value = deal.where(deal > 0, typical if np.isfinite(typical) else 0.0)
    return pd.DataFrame(
        {
            "lead_age_days": rows["lead_age_days"],
            "score": scores["score"],
            "deal_value": value,
            "probability": scores["probability"],
            "expected_value": scores["probability"] * value,
        }
    )


def _deal_columns(deals: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Per open deal (index deal_id): its person, owner, stage and how long it has stood."""
    rows = deals.loc[scores.index]
    never_moved = rows["deal_days_since_stage_change"].isna()
    return pd.DataFrame(
        {
            "person_id": rows["person_id"],
            "owner": rows["deal_owner"].astype(object),
            "deal_stage": _stage_names(rows["deal_stage"]),
            # A deal with no stage event has not moved since it was created.
            "days_since_stage_change": rows["deal_days_since_stage_change"].where(~never_moved, rows["deal_age_days"]),
            "deal_amount": rows["deal_amount"].fillna(0.0),
            "median_days_to_win": scores["median_days_to_win"],
        }
    )


def _deals_closing_soon(deals: pd.DataFrame, scores: pd.DataFrame, config: ListSettings) -> pd.DataFrame:
    frame = _deal_columns(deals, scores)
    p_soon = scores[f"p_won_{config.closing_soon_days}d"]
    frame["probability"] = p_soon
    frame["expected_value"] = p_soon * frame["deal_amount"]
    return frame[p_soon >= config.closing_soon_min_probability]


def _stalled_deals(deals: pd.DataFrame, scores: pd.DataFrame, config: ListSettings) -> pd.DataFrame:
    frame = _deal_columns(deals, scores)
    frame["probability"] = scores["probability"]
    frame["expected_value"] = scores["probability"] * frame["deal_amount"]
    return frame[frame["days_since_stage_change"] > config.stalled_after_days]


def _churn_lists(
    features: pd.DataFrame, scores: pd.DataFrame, config: ListSettings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(drifting, service risk): one split of the churn-eligible customers."""
    rows = features.loc[scores.index]
    value = rows["paid_amount_365d"].fillna(0.0) * config.customer_lifetime_years
    recent_trigger = rows["days_since_last_service_issue"] <= config.service_trigger_days
    service = (scores["dominant_risk"] == "service") | recent_trigger
    base = pd.DataFrame(
        {
            "paid_amount_365d": rows["paid_amount_365d"],
            "customer_value": value,
            "days_since_last_paid_order": rows["days_since_last_paid_order"],
            "days_since_last_service_issue": rows["days_since_last_service_issue"],
            "dominant_risk": scores["dominant_risk"],
        }
    )
    drifting = base.assign(probability=scores["probability"], expected_value=scores["probability"] * value)
    p_service = scores["service_probability"] if "service_probability" in scores else scores["probability"]
    at_risk = base.assign(probability=p_service, expected_value=p_service * value)
    return drifting[~service], at_risk[service]


def _failed_payments(
    data: CRMData, features: pd.DataFrame, scores: pd.DataFrame | None, as_of: pd.Timestamp, config: ListSettings
) -> pd.DataFrame:
    failures = recent_unrecovered_failures(data, as_of, config.failed_payment_days)
    amount = features["failed_amount_unrecovered"].reindex(failures.index)
    p_back = (
        scores["probability"].reindex(failures.index)
        if scores is not None
        else pd.Series(np.nan, index=failures.index)
    )
    return failures.assign(amount_at_stake=amount, probability=p_back, expected_value=amount * p_back)


def _likely_buyers(
    data: CRMData,
    features: pd.DataFrame,
    scores: pd.DataFrame,
    as_of: pd.Timestamp,
    settings: Settings,
    config: ListSettings,
) -> pd.DataFrame:
    rows = features.loc[scores.index]
    customers = rows["is_customer"] > 0
    horizon = settings.training.horizon_days
    p_soon = 1.0 - (1.0 - scores["probability"].clip(0, 1)) ** (config.likely_buyer_days / horizon)
    typical = features["paid_amount_mean"].mean(skipna=True)
    order_value = rows["paid_amount_mean"].fillna(typical if np.isfinite(typical) else 0.0)
    frame = pd.DataFrame(
        {
            "next_category": next_categories(data, as_of, config.category_lookback_days).reindex(rows.index),
            "days_since_last_paid_order": rows["days_since_last_paid_order"],
            "typical_order": order_value,
            "probability": p_soon,
            "expected_value": p_soon * order_value,
        }
    )
    return frame[customers & (p_soon >= config.likely_buyer_min_probability)]


# ---------------------------------------------------------------- assembly


def _finish(
    body: pd.DataFrame, scores: pd.DataFrame | None, context: pd.DataFrame, filters: ListFilters
) -> pd.DataFrame:
    """Context first, list columns, judgement last; filtered, then ranked by expected value."""
    body = body.copy()
    judged = scores.reindex(body.index) if scores is not None else pd.DataFrame(index=body.index)
    body["grade"] = judged["grade"] if "grade" in judged else None
    body["reasons_text"] = judged["reasons_text"] if "reasons_text" in judged else ""
    # A deal list is one row per deal (index deal_id) with its person, owner and deal id
    # its own; every other list is one row per person.
    by_deal = "person_id" in body.columns
    persons = body.pop("person_id") if by_deal else pd.Series(body.index, index=body.index)
    ctx = context.reindex(persons.to_numpy())
    ctx.index = body.index
    if by_deal:
        ctx["deal_id"] = body.index.to_numpy(dtype=object)
        ctx["owner"] = body.pop("owner")
    ctx.insert(0, "person_id", persons.to_numpy(dtype=object))
    own = [c for c in body.columns if c not in JUDGEMENT_COLUMNS]
    extra = [c for c in ctx.columns if c not in CONTEXT_COLUMNS]
    frame = pd.concat([ctx, body], axis=1).reset_index(drop=True)
    frame = frame[[*CONTEXT_COLUMNS, *extra, *own, *JUDGEMENT_COLUMNS]]
    frame = apply_filters(frame, filters)
    # Ties (and missing values, last) in person order, so the same data gives the same list.
    frame = frame.sort_values(["expected_value", "person_id"], ascending=[False, True], na_position="last", kind="stable")
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    frame["probability"] = frame["probability"].astype(float)
    frame["expected_value"] = frame["expected_value"].astype(float)
    return tidy_figures(frame.reset_index(drop=True))


def apply_filters(frame: pd.DataFrame, filters: ListFilters) -> pd.DataFrame:
    """Rows matching every set filter whose column the frame has."""
    keep = pd.Series(True, index=frame.index)
    for column in ("channel", "segment", "grade", "owner"):
        wanted = getattr(filters, column)
        if wanted is not None and column in frame.columns:
            keep &= frame[column].astype(object).isin(wanted)
    return frame[keep]


def build_lists(
    data: CRMData,
    as_of: pd.Timestamp,
    champions: dict[str, Champion],
    settings: Settings,
    *,
    filters: ListFilters | None = None,
    top_k: int = 3,
    config: ListSettings | None = None,
) -> dict[str, pd.DataFrame]:
    """The seven action lists at ``as_of`` (see the module doc), each ranked by expected
    value, highest first, with ``rank`` 1, 2, … and the top ``top_k`` reasons."""
    as_of = pd.Timestamp(as_of)
    config = config or settings.lists
    filters = filters or ListFilters()
    features = build_features(data, as_of, settings.features)
    context = person_context(data, features, as_of, config)
    scores, deals = _scores(data, features, as_of, champions, settings, top_k)
    lead, deal, churn, purchase = (
        scores.get(t) for t in ("lead_quality", "time_to_close", "churn_by_indifference", "purchase_probability")
    )
    bodies: dict[str, tuple[pd.DataFrame | None, pd.DataFrame | None]] = {
        "leads_to_call": (_leads_to_call(features, lead) if lead is not None else None, lead),
        "deals_closing_soon": (_deals_closing_soon(deals, deal, config) if deal is not None else None, deal),
        "stalled_deals": (_stalled_deals(deals, deal, config) if deal is not None else None, deal),
        "failed_payments": (_failed_payments(data, features, purchase, as_of, config), purchase),
        "likely_buyers": (
            _likely_buyers(data, features, purchase, as_of, settings, config) if purchase is not None else None,
            purchase,
        ),
    }
    drifting, service = _churn_lists(features, churn, config) if churn is not None else (None, None)
    bodies["drifting_customers"] = (drifting, churn)
    bodies["service_risk_customers"] = (service, churn)
    lists = {}
    for name in LIST_NAMES:
        body, judged = bodies[name]
        lists[name] = _finish(body if body is not None else _EMPTY[name](), judged, context, filters)
    return lists


def _empty(*columns: str) -> Callable[[], pd.DataFrame]:
    def make() -> pd.DataFrame:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in (*columns, "probability", "expected_value")})

    return make


#: A list's own columns when its model has no champion, so the file still has its header.
_EMPTY = {
    "leads_to_call": _empty("lead_age_days", "score", "deal_value"),
    "deals_closing_soon": _empty("deal_stage", "days_since_stage_change", "deal_amount", "median_days_to_win"),
    "stalled_deals": _empty("deal_stage", "days_since_stage_change", "deal_amount", "median_days_to_win"),
    "drifting_customers": _empty(
        "paid_amount_365d", "customer_value", "days_since_last_paid_order", "days_since_last_service_issue", "dominant_risk"
    ),
    "service_risk_customers": _empty(
        "paid_amount_365d", "customer_value", "days_since_last_paid_order", "days_since_last_service_issue", "dominant_risk"
    ),
    "failed_payments": _empty("n_recent_failed_payments", "days_since_failed_payment", "amount_at_stake"),
    "likely_buyers": _empty("next_category", "days_since_last_paid_order", "typical_order"),
}


def write_lists(lists: dict[str, pd.DataFrame], folder: Path) -> list[Path]:
    """Each list as ``<name>.csv`` and all of them in one workbook (a sheet per list),
    every file written atomically. Returns the paths written, CSVs first."""
    folder = Path(folder)
    paths = [write_csv(frame, folder / f"{name}.csv") for name, frame in lists.items()]
    workbook = folder / WORKBOOK_NAME
    with atomic_path(workbook) as temp:
        with pd.ExcelWriter(temp, engine="openpyxl") as writer:
            for name, frame in lists.items():
                # Excel caps sheet names at 31 characters.
                frame.to_excel(writer, sheet_name=name[:31], index=False)
    return [*paths, workbook]
