"""The CRM's own ids of each person: what every score, list and answer is keyed by.

Radar links a person's records across tables and gives them one internal ``person_id``; a
CRM knows them by its own record ids. Per person, as of a moment (records created before
it, so an id never comes from the future):

| column | holds |
|---|---|
| ``lead_id`` | the latest lead's id: the record a salesperson opens |
| ``customer_id`` | the latest customer id seen in leads, orders or deals |
| ``lead_ids``, ``customer_ids`` | every one of them, oldest first, joined by ``;`` — a merged person has several |

A CRM import matches one id per row, so the score files and lists carry the latest id in
``lead_id`` / ``customer_id``, and ``radar push --match lead_id`` sends one record per id
of ``lead_ids`` (each CRM record of a merged person gets the score).
"""

from __future__ import annotations

import pandas as pd

from features.contract import CRMData

ID_COLUMNS: tuple[str, ...] = ("lead_id", "customer_id")
LIST_COLUMNS: tuple[str, ...] = ("lead_ids", "customer_ids")
SEPARATOR = ";"
#: The id kinds a request or a push may match on, with the column of all ids of that kind.
MATCH_KINDS: dict[str, str] = {"lead_id": "lead_ids", "customer_id": "customer_ids", "deal_id": "deal_id"}


def source_ids(data: CRMData, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per person (index ``person_id``): ``lead_id``, ``customer_id``, ``lead_ids``,
    ``customer_ids`` from records created before ``as_of``; missing where there is none."""
    as_of = pd.Timestamp(as_of)
    parts = {}
    for column in ID_COLUMNS:
        known = _dated_ids(data, column, as_of)
        parts[column] = known.groupby("person_id", sort=True)["id"].last()
        parts[f"{column}s"] = _joined(known)
    frame = pd.DataFrame(parts).reindex(columns=[*ID_COLUMNS, *LIST_COLUMNS])
    return frame.astype(object).rename_axis("person_id")


def _joined(known: pd.DataFrame) -> pd.Series:
    """Each person's distinct ids in the order of ``known``, joined by the separator: one
    slice of a list per person rather than a pandas group (a day has one per person)."""
    distinct = known.drop_duplicates(["person_id", "id"]).sort_values("person_id", kind="stable")
    people = distinct["person_id"].to_numpy(dtype=object)
    ids = distinct["id"].tolist()
    starts = [0] + [i for i in range(1, len(people)) if people[i] != people[i - 1]] if len(people) else []
    ends = starts[1:] + [len(ids)]
    return pd.Series([SEPARATOR.join(ids[a:b]) for a, b in zip(starts, ends)],
                     index=pd.Index(people[starts], dtype=object, name="person_id"), dtype=object)


def _dated_ids(data: CRMData, column: str, as_of: pd.Timestamp) -> pd.DataFrame:
    """Every (person, id, time) of one id kind before ``as_of``, oldest first."""
    tables = ((data.leads, "created_at"), (data.orders, "timestamp"), (data.deals, "created_at"))
    found = []
    for table, time in tables:
        if table is None or column not in table.columns or time not in table.columns:
            continue
        rows = table[(table[time] < as_of) & table[column].notna() & table["person_id"].notna()]
        found.append(pd.DataFrame({"person_id": rows["person_id"].astype(object).to_numpy(),
                                   "id": rows[column].astype(str).to_numpy(), "t": rows[time].to_numpy()}))
    if not found:
        return pd.DataFrame({"person_id": pd.Series(dtype=object), "id": pd.Series(dtype=object),
                             "t": pd.Series(dtype="datetime64[ns]")})
    return pd.concat(found, ignore_index=True).sort_values(["t", "id"], kind="stable")


def ids_by_person(ids: pd.DataFrame) -> dict[str, dict[str, list[str]]]:
    """:func:`source_ids`' frame as plain lists: per person, per kind, every id oldest first."""
    out: dict[str, dict[str, list[str]]] = {}
    for person, row in ids.iterrows():
        out[str(person)] = {k: str(row[f"{k}s"]).split(SEPARATOR) for k in ID_COLUMNS if pd.notna(row[f"{k}s"])}
    return out


def with_source_ids(scores: pd.DataFrame, ids: pd.DataFrame) -> pd.DataFrame:
    """A score table with the person's CRM ids right after ``person_id``, and the lists of
    all their ids at the end."""
    scores = scores.drop(columns=[c for c in (*ID_COLUMNS, *LIST_COLUMNS) if c in scores.columns])
    found = ids.reindex(scores["person_id"].astype(object).to_numpy())
    at = scores.columns.get_loc("person_id") + 1
    out = scores.copy()
    for offset, column in enumerate(ID_COLUMNS):
        out.insert(at + offset, column, found[column].to_numpy())
    for column in LIST_COLUMNS:
        out[column] = found[column].to_numpy()
    return out


def one_row_per_id(scores: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Score rows keyed by one CRM id kind (``lead_id``, ``customer_id`` or ``deal_id``):
    one row per id of the person (a merged person's row repeats for each of their ids),
    rows without such an id left out. The id is in the ``kind`` column."""
    if kind not in MATCH_KINDS:
        raise ValueError(f"cannot match on {kind!r}; choose one of {', '.join(MATCH_KINDS)}")
    source = MATCH_KINDS[kind]
    if source not in scores.columns:
        raise ValueError(f"the score table has no {source!r} column to match on {kind}: score it again with "
                         "this version of `radar score`")
    ids = scores[source].astype(object).where(scores[source].notna(), None)
    exploded = scores.assign(**{kind: ids.map(lambda v: None if v is None else str(v).split(SEPARATOR))})
    exploded = exploded.explode(kind, ignore_index=True)
    return exploded[exploded[kind].notna() & (exploded[kind] != "")].reset_index(drop=True)
