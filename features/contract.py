"""Radar's data contract: the five tables, their columns and the values they may hold.

This module is the single source of truth for table shapes. Loading and validation build
their checks from it, the demo world writes it, and the feature pipeline reads it.

After loading, every table is a pandas DataFrame with the contract's column names,
datetimes as tz-naive ``datetime64[ns]`` (UTC), numbers as float64, text as strings, and
(for every table but ``spend``) a ``person_id`` column added by identity unification.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

import pandas as pd

ColumnKind = Literal["id", "text", "datetime", "number", "category"]

#: Columns that identify a person. A row of interactions, orders or deals needs at least one.
PERSON_KEYS: tuple[str, ...] = ("lead_id", "customer_id", "email", "phone")

#: Interaction types Radar understands. ``deal_stage`` events record a deal entering a stage
#: (``deal_id`` and ``stage`` set), which gives deal stage history point-in-time.
INTERACTION_TYPES: tuple[str, ...] = (
    "web_visit",
    "form_submit",
    "email_open",
    "email_click",
    "call",
    "meeting",
    "whatsapp_message",
    "chat_message",
    "cart_add",
    "cart_abandon",
    "campaign_touch",
    "support_ticket",
    "complaint",
    "nps",
    "deal_stage",
)

#: Interaction types that are a service problem (a trigger for service-driven churn).
SERVICE_TRIGGER_TYPES: tuple[str, ...] = ("support_ticket", "complaint")

#: Interaction types that are the person's own engagement. Campaign touches are things we
#: sent, service events are problems and deal stages are the salesperson's doing, so none
#: of those shows that a customer is still interested.
ENGAGEMENT_TYPES: tuple[str, ...] = (
    "web_visit",
    "form_submit",
    "email_open",
    "email_click",
    "call",
    "meeting",
    "whatsapp_message",
    "chat_message",
    "cart_add",
    "cart_abandon",
)

ORDER_STATUSES: tuple[str, ...] = ("paid", "failed", "refunded")
DEAL_OUTCOMES: tuple[str, ...] = ("open", "won", "lost")
#: A lead's own ``status`` words that say how it ended (map the export's words to these).
LEAD_WON_STATUSES: tuple[str, ...] = ("customer", "won")
LEAD_LOST_STATUSES: tuple[str, ...] = ("lost",)
#: Open deal stages in the order a deal moves through them.
DEAL_STAGES: tuple[str, ...] = ("qualification", "discovery", "proposal", "negotiation")
#: Lead columns Radar derives from each lead's own contact fields when the leads are loaded
#: (the kind of e-mail and phone, whether a name was given: see features.contact). An input
#: column with one of these names is not kept.
LEAD_CONTACT_COLUMNS: tuple[str, ...] = ("email_kind", "phone_kind", "has_name")
#: Customer journey stages, in order.
JOURNEY_STAGES: tuple[str, ...] = ("need", "search", "evaluation", "decision", "use")


@dataclass(frozen=True)
class Column:
    """One column of a table in the contract."""

    name: str
    kind: ColumnKind
    required: bool = False
    allowed: tuple[str, ...] | None = None
    min_value: float | None = None
    max_value: float | None = None


@dataclass(frozen=True)
class TableSpec:
    """One table of the contract."""

    name: str
    columns: tuple[Column, ...]
    #: Column whose values must be unique (one row per ...), if any.
    unique_key: str | None = None
    #: Whether each row must carry at least one of PERSON_KEYS.
    needs_person_key: bool = True
    #: Whether columns outside the contract are kept (lead attributes such as industry).
    keeps_extra_columns: bool = False

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name!r} has no column {name!r}")


def _keys(*, lead_id_required: bool = False) -> tuple[Column, ...]:
    return (
        Column("lead_id", "id", required=lead_id_required),
        Column("customer_id", "id"),
        Column("email", "text"),
        Column("phone", "text"),
    )


LEADS = TableSpec(
    name="leads",
    columns=(
        *_keys(lead_id_required=True),
        Column("created_at", "datetime", required=True),
        Column("source", "category"),
        Column("campaign", "category"),
        Column("status", "category"),
        Column("qualified_at", "datetime"),
        Column("converted_at", "datetime"),
    ),
    unique_key="lead_id",
    keeps_extra_columns=True,
)

INTERACTIONS = TableSpec(
    name="interactions",
    columns=(
        *_keys(),
        Column("timestamp", "datetime", required=True),
        Column("type", "category", required=True, allowed=INTERACTION_TYPES),
        Column("channel", "category"),
        Column("value", "number"),
        Column("deal_id", "id"),
        Column("stage", "category", allowed=DEAL_STAGES),
    ),
)

ORDERS = TableSpec(
    name="orders",
    columns=(
        *_keys(),
        Column("order_id", "id"),
        Column("timestamp", "datetime", required=True),
        Column("amount", "number", required=True, min_value=0.0),
        Column("status", "category", allowed=ORDER_STATUSES),
        Column("product", "category"),
        Column("category", "category"),
        Column("channel", "category"),
    ),
    unique_key="order_id",
)

DEALS = TableSpec(
    name="deals",
    columns=(
        *_keys(),
        Column("deal_id", "id", required=True),
        Column("created_at", "datetime", required=True),
        Column("stage", "category", allowed=DEAL_STAGES),
        Column("closed_at", "datetime"),
        Column("outcome", "category", allowed=DEAL_OUTCOMES),
        Column("amount", "number", min_value=0.0),
        Column("owner", "category"),
    ),
    unique_key="deal_id",
)

SPEND = TableSpec(
    name="spend",
    columns=(
        Column("date", "datetime", required=True),
        Column("channel", "category", required=True),
        Column("amount", "number", required=True, min_value=0.0),
        Column("campaign", "category"),
    ),
    needs_person_key=False,
)

TABLES: dict[str, TableSpec] = {t.name: t for t in (LEADS, INTERACTIONS, ORDERS, DEALS, SPEND)}


@dataclass
class CRMData:
    """The validated, unified CRM: any of the five tables, each optional.

    Every table but ``spend`` carries ``person_id`` once identities are unified.
    """

    leads: pd.DataFrame | None = None
    interactions: pd.DataFrame | None = None
    orders: pd.DataFrame | None = None
    deals: pd.DataFrame | None = None
    spend: pd.DataFrame | None = None

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables that are present, by name."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name in TABLES and getattr(self, f.name) is not None
        }
