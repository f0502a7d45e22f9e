"""The column-mapping file: how a user's exports map onto the data contract, without code.

A mapping is YAML (see ``data/mapping.example.yaml``). Without one, files named
``<table>.csv`` / ``<table>.parquet`` (or database tables named ``<table>``) whose columns
already carry contract names just work.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.contract import TABLES
from features.errors import RadarInputError

DEFAULT_MISSING_MARKERS: tuple[str, ...] = ("", "NA", "N/A", "null", "None", "Select", "-")

TableName = Literal["leads", "interactions", "orders", "deals", "spend"]


def normalise_label(value: str) -> str:
    """``" Lead ID "`` → ``"lead_id"``: the form used to match headers and category words."""
    return re.sub(r"[\s\-/.]+", "_", str(value).strip().casefold()).strip("_")


class TableMapping(BaseModel):
    """How one table is found and read."""

    model_config = ConfigDict(extra="forbid")

    #: File name or glob relative to the data folder; several matches are concatenated.
    #: Default: ``<table>.csv``, ``<table>.parquet`` (and .tsv, .txt, .pq, .xlsx, .csv.gz).
    file: str | None = None
    #: Database sources: the table or view to read, ``name`` or ``schema.name``. Default:
    #: the table named like Radar's (``leads``, ``interactions``...).
    table: str | None = None
    #: Database sources: a SELECT whose rows are this table's rows (a join, a filter, a
    #: view of your own), sent to the database as written.
    query: str | None = None
    #: Their column name → contract column name. Headers are matched exactly first, then
    #: case- and space-insensitively.
    columns: dict[str, str] = Field(default_factory=dict)
    #: Contract column → {their value → contract value}; matched case-insensitively.
    values: dict[str, dict[str, str]] = Field(default_factory=dict)
    #: strptime formats tried in order for this table's date columns, before ISO 8601 and
    #: free-form inference. Several formats may be mixed within one column.
    date_formats: list[str] = Field(default_factory=list)
    #: For free-form dates such as 03/04/2024: read the day first (Europe) or not (US).
    dayfirst: bool | None = None
    #: Decimal mark of numbers written as text: "." (1,234.50) or "," (1.234,50).
    decimal: Literal[".", ","] = "."
    encoding: str | None = None
    delimiter: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "TableMapping":
        given = [k for k in ("file", "table", "query") if getattr(self, k)]
        if len(given) > 1:
            raise ValueError(f"give one of file, table or query, not {' and '.join(given)}")
        return self

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str | None) -> str | None:
        if value is None:
            return value
        value = {"\\t": "\t", "tab": "\t"}.get(value, value)
        if len(value) != 1:
            raise ValueError("delimiter must be one character (use \\t for tab)")
        return value

    def normalised_values(self) -> dict[str, dict[str, str]]:
        """Value maps with their keys in matching form (case- and space-insensitive)."""
        return {
            column: {str(k).strip().casefold(): str(v) for k, v in mapping.items()}
            for column, mapping in self.values.items()
        }


class Mapping(BaseModel):
    """A whole mapping file."""

    model_config = ConfigDict(extra="forbid")

    #: Cell values that mean "no value" (compared after trimming, case-insensitively).
    missing_markers: list[str] = Field(default_factory=lambda: list(DEFAULT_MISSING_MARKERS))
    #: Region for phone numbers written without a country code. None: the settings'
    #: ``identity.default_phone_region``.
    default_phone_region: str | None = None
    #: Formats tried for every table's dates (after the table's own).
    date_formats: list[str] = Field(default_factory=list)
    dayfirst: bool = False
    #: Personal columns (contract or attribute names) replaced by a keyed hash at ingest,
    #: after identities are linked, so nothing readable leaves the loader. The key comes from
    #: the environment (``RADAR_IDENTITY__HASH_SECRET``), never from this file.
    hash_columns: list[str] = Field(default_factory=list)
    #: No longer read: a secret in a mapping file ends up in version control and backups.
    hash_salt: str | None = None
    tables: dict[TableName, TableMapping] = Field(default_factory=dict)

    @field_validator("default_phone_region")
    @classmethod
    def _region_code(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not re.fullmatch(r"[A-Za-z]{2}", value.strip()):
            raise ValueError("default_phone_region must be a two-letter region code such as GB")
        return value.strip().upper()

    @field_validator("hash_salt")
    @classmethod
    def _no_secret_here(cls, value: str | None) -> None:
        if value is not None:
            raise ValueError("the hashing key no longer goes in the mapping file: "
                             "set it in the environment variable RADAR_IDENTITY__HASH_SECRET instead")
        return None

    @field_validator("tables")
    @classmethod
    def _contract_columns(cls, tables: dict[str, TableMapping]) -> dict[str, TableMapping]:
        for name, table in tables.items():
            known = set(TABLES[name].names)
            for target in list(table.columns.values()) + list(table.values):
                if target not in known and not TABLES[name].keeps_extra_columns:
                    raise ValueError(
                        f"{name}: {target!r} is not a column of the contract "
                        f"(known: {', '.join(sorted(known))})"
                    )
        return tables

    def table(self, name: str) -> TableMapping:
        """The mapping for one table (defaults when the file does not mention it)."""
        return self.tables.get(name, TableMapping())  # type: ignore[call-overload]

    def missing_set(self) -> frozenset[str]:
        return frozenset(m.strip().casefold() for m in self.missing_markers)


def load_mapping(path: Path | None) -> Mapping:
    """Read and check a mapping file; no path gives the defaults."""
    if path is None:
        return Mapping()
    path = Path(path)
    if not path.is_file():
        raise RadarInputError("mapping file not found", path)
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise RadarInputError(f"not valid YAML ({err.__class__.__name__})", path) from err
    if content is None:
        return Mapping()
    if not isinstance(content, dict):
        raise RadarInputError("a mapping file must be a YAML mapping (key: value)", path)
    try:
        return Mapping.model_validate(content)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise RadarInputError(f"invalid mapping: {problems}", path) from err
