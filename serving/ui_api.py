"""What the marketers' page reads, without HTTP: the service's GET routes only forward here.

The page (``serving/ui/``) is static; every figure it shows comes through the same API a
CRM would call. The lists and KPIs need the CRM tables, not only the feature store, so the
server loads the validated folder named by ``RADAR_DATA_DIR`` once at start (the folder
``radar validate`` writes). Without it, /lists and /kpis answer 503 and say what to set;
/score and /models keep working.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.contract import CRMData
from features.privacy import redact
from radar.config import Settings
from serving.app import ApiError
from serving.feature_store import StoreUnavailable, open_store
from serving.scoring import Champion

DATA_DIR_ENV = "RADAR_DATA_DIR"
UI_DIR = Path(__file__).resolve().parent / "ui"
#: The filters /lists accepts, in the order the page shows them.
FILTERS = ("channel", "grade", "owner", "segment")
#: Columns never sent to the page: contact details belong in the CRM, not on a shared screen.
PRIVATE_MARKERS = ("email", "phone")
#: Filtered lists kept in memory: the page asks for the same few combinations again and again.
CACHE_SIZE = 32


@dataclass
class UiViews:
    """The CRM tables the server loaded once, the day they are read at, and a small cache."""

    settings: Settings
    champions: dict[str, Champion]
    data: CRMData | None
    as_of: pd.Timestamp | None
    problem: str | None = None
    #: The search index of GET /find (``serving.find.PersonIndex``), built on the first search.
    index: Any = None
    _cache: dict[tuple, dict[str, pd.DataFrame]] = field(default_factory=dict)
    #: GET /kpis: the data and its day never change while the server runs, so neither do they.
    _kpis: dict[str, Any] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def require_data(self) -> tuple[CRMData, pd.Timestamp]:
        if self.data is None or self.as_of is None:
            raise ApiError(503, self.problem or "no CRM data loaded", field=None,
                           detail=f"start the server with {DATA_DIR_ENV}=<validated folder>")
        return self.data, self.as_of


def load_views(settings: Settings, champions: dict[str, Champion]) -> UiViews:
    """Read the validated folder of ``settings.data_dir`` (``RADAR_DATA_DIR``); a missing or
    bad folder is kept as the reason /lists and /kpis give, not raised: scoring must still start."""
    from features.errors import RadarInputError
    from features.ingest import read_validated

    if settings.data_dir is None:
        return UiViews(settings, champions, None, None, f"{DATA_DIR_ENV} is not set: lists and KPIs need the "
                                                        "validated CRM folder (`radar validate DIR`)")
    try:
        data = read_validated(settings.data_dir).data
    except RadarInputError as err:
        return UiViews(settings, champions, None, None, f"{DATA_DIR_ENV} is not a readable validated folder: {err}")
    return UiViews(settings, champions, data, views_day(settings, data))


def views_day(settings: Settings, data: CRMData) -> pd.Timestamp:
    """The latest materialised day, so a list row and its person's /score agree; without
    a feature store, the last day of the data."""
    store = open_store(settings)
    try:
        days = store.days() if store.exists() else []
    except StoreUnavailable:  # a shared store down at start: the data's own last day will do
        days = []
    finally:
        store.close()
    if days:
        return pd.Timestamp(days[-1])
    from training.datasets import data_span

    return data_span(data)[1].normalize()


# --- /lists ------------------------------------------------------------------------------------


def parse_filters(values: dict[str, str | list[str] | None]) -> dict[str, str | tuple[str, ...]]:
    """The filters that were given (empty strings mean "any"). A list (a filter repeated in the
    query, ``?grade=A&grade=B``) keeps every value: rows matching any of them."""
    out: dict[str, str | tuple[str, ...]] = {}
    for k, v in values.items():
        if k not in FILTERS or not v:
            continue
        if isinstance(v, str):
            if v.strip():
                out[k] = v.strip()
            continue
        kept = tuple(dict.fromkeys(x.strip() for x in v if x and x.strip()))
        if kept:
            out[k] = kept
    return out


def check_parameters(items: list[tuple[str, str]]) -> None:
    """Refuse a parameter of /lists given empty (``?grade=``: leave it out to mean any) and a
    ``name`` given twice (which list was meant is a guess), as the schema says."""
    given = [(k, v) for k, v in items if k in ("name", *FILTERS)]
    if sum(k == "name" for k, _ in given) > 1:
        raise ApiError(422, "name given more than once", field="name", detail="ask for one list at a time")
    empty = sorted(k for k, v in given if not v)
    if empty:
        raise ApiError(422, f"{empty[0]} is empty", field=empty[0], detail="leave a parameter out to mean any")


def lists_for(views: UiViews, filters: dict[str, str]) -> dict[str, pd.DataFrame]:
    """``build_lists`` on the loaded data, cached per filter combination."""
    from serving.lists import build_lists

    data, as_of = views.require_data()
    key = tuple(sorted(filters.items()))
    with views._lock:
        if key not in views._cache:
            if len(views._cache) >= CACHE_SIZE:
                views._cache.pop(next(iter(views._cache)))
            views._cache[key] = build_lists(data, as_of, views.champions, views.settings,
                                            filters=make_filters(filters))
        return views._cache[key]


def make_filters(filters: dict[str, str]) -> Any:
    """The filters as ``build_lists`` takes them."""
    from serving import lists

    kind = getattr(lists, "ListFilters", None)
    return kind(**filters) if kind is not None else filters


def list_answer(views: UiViews, name: str | None, filters: dict[str, str]) -> dict[str, Any]:
    """One list's rows (or, without a name, the names and sizes of all lists) as JSON."""
    tables = lists_for(views, filters)
    if not name:
        return {"as_of": _day(views.as_of), "filters": filters,
                "lists": [{"name": n, "rows": len(t)} for n, t in tables.items()]}
    if name not in tables:
        raise ApiError(404, f"unknown list {redact(name)!r}", field="name", detail="lists: " + ", ".join(tables))
    table = public_columns(tables[name])
    return {"name": name, "as_of": _day(views.as_of), "filters": filters,
            "columns": list(table.columns), "rows": records(table)}


def public_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The table without contact columns (e-mail, phone)."""
    keep = [c for c in table.columns if not any(m in str(c).lower() for m in PRIVATE_MARKERS)]
    return table[keep]


def records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: NaN/NaT become null, times ISO text, numpy scalars plain."""
    return [{str(k): json_value(v) for k, v in row.items()} for row in table.to_dict("records")]


def json_value(value: Any) -> Any:
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (pd.Timestamp, datetime, date)):
        return value.isoformat()
    if isinstance(value, np.generic):
        return json_value(value.item())
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return None
    return value


def _day(as_of: pd.Timestamp | None) -> str | None:
    return None if as_of is None else as_of.date().isoformat()


# --- /kpis -------------------------------------------------------------------------------------


def kpi_answer(views: UiViews) -> dict[str, Any]:
    """The KPIs as JSON tables, for the page to draw as bars."""
    from serving.kpis import compute_kpis

    data, as_of = views.require_data()
    with views._lock:
        if views._kpis is None:
            views._kpis = {"as_of": _day(as_of), "tables": kpi_tables(compute_kpis(data, views.settings, as_of=as_of))}
        return views._kpis


def kpi_tables(kpis: Any) -> list[dict[str, Any]]:
    """Every DataFrame (or mapping) the Kpis object carries, as a named JSON table."""
    fields = vars(kpis) if hasattr(kpis, "__dict__") else dict(kpis)
    tables = []
    for name, value in fields.items():
        if isinstance(value, pd.DataFrame):
            frame = public_columns(value.reset_index() if _named_index(value) else value)
            tables.append({"name": name, "columns": [str(c) for c in frame.columns], "rows": records(frame)})
        elif isinstance(value, pd.Series):
            frame = value.rename(value.name or "value").reset_index()
            tables.append({"name": name, "columns": [str(c) for c in frame.columns], "rows": records(frame)})
        elif isinstance(value, dict) and value and all(_is_number(v) for v in value.values()):
            rows = [{"name": str(k), "value": json_value(v)} for k, v in value.items()]
            tables.append({"name": name, "columns": ["name", "value"], "rows": rows})
    return tables


def _named_index(frame: pd.DataFrame) -> bool:
    return any(n is not None for n in frame.index.names)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)

