"""Request and response models of the scoring API, shared by the service, tests and docs.

Requests forbid unknown fields, so a misspelt field is named in the 400 answer instead of
being ignored. ``hide_input_in_errors`` keeps the offending value (possibly an e-mail or a
phone number) out of error messages and the server log; the error still names the field.
Numbers are strict (``false`` or ``"12"`` is no amount) and times are ISO 8601 text within
:data:`EARLIEST`..:data:`LATEST`, so malformed data gets a 400 rather than a guess.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictFloat, model_validator

from features.contract import DEAL_OUTCOMES, DEAL_STAGES, INTERACTION_TYPES, ORDER_STATUSES

Target = Literal["lead_quality", "purchase_probability", "time_to_close", "churn_by_indifference"]
InteractionType = Literal[INTERACTION_TYPES]  # type: ignore[valid-type]
DealStage = Literal[DEAL_STAGES]  # type: ignore[valid-type]
OrderStatus = Literal[ORDER_STATUSES]  # type: ignore[valid-type]
DealOutcome = Literal[DEAL_OUTCOMES]  # type: ignore[valid-type]
#: Largest ``top_k``: more reasons than this is a report, not an answer.
MAX_TOP_K = 20

_REQUEST = ConfigDict(extra="forbid", hide_input_in_errors=True)
#: Times a request may carry. The pipeline holds times as pandas nanoseconds (years 1677 to
#: 2262), and an event outside these years is a typo in the CRM, not history.
EARLIEST, LATEST = datetime(1900, 1, 1), datetime(2200, 1, 1)
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_text(value: Any) -> Any:
    """Times as ISO 8601 text (or datetimes, from Python), never numbers: pydantic would read
    ``1700000000`` or ``"0"`` as seconds since 1970, which no CRM means."""
    if isinstance(value, (bool, int, float)) or (isinstance(value, str) and not _ISO_DAY.match(value)):
        raise ValueError("a time must be ISO 8601 text, e.g. 2025-01-15T10:00:00Z")
    return value


def _in_range(value: datetime) -> datetime:
    # Aware datetimes compare in UTC without overflow, whatever their offset.
    low, high = (EARLIEST, LATEST) if value.tzinfo is None else (
        EARLIEST.replace(tzinfo=timezone.utc), LATEST.replace(tzinfo=timezone.utc))
    if not low <= value < high:
        raise ValueError(f"a time must lie in the years {EARLIEST.year} to {LATEST.year - 1}")
    return value


#: A time in a request (an event, or ``as_of``).
Moment = Annotated[datetime, BeforeValidator(_iso_text), AfterValidator(_in_range)]


class Lead(BaseModel):
    """One lead record of the person (their attributes and where they came from)."""

    model_config = _REQUEST
    lead_id: Optional[str] = None
    created_at: Moment
    source: Optional[str] = Field(None, description="Channel the lead came from.")
    campaign: Optional[str] = None
    status: Optional[str] = None
    converted_at: Optional[Moment] = Field(None, description="When the lead became a customer.")
    # Contact details are read for their kind only (company or webmail address, mobile or
    # landline, a name given or not: features.contact); the values never become features.
    email: Optional[str] = Field(None, max_length=320, description="The lead's e-mail (only its kind is used).")
    phone: Optional[str] = Field(
        None, max_length=50, description="The lead's phone, E.164 or national in the lead's `country` attribute."
    )
    name: Optional[str] = Field(None, max_length=300, description="The lead's name (only whether one is given).")
    attributes: dict[str, str | StrictFloat | None] = Field(
        default_factory=dict, description="Any lead attribute columns: country, industry, company_size…"
    )


class Interaction(BaseModel):
    model_config = _REQUEST
    timestamp: Moment
    type: InteractionType
    channel: Optional[str] = None
    value: Optional[float] = Field(None, strict=True, allow_inf_nan=False, description="NPS score, seconds on page…")
    deal_id: Optional[str] = None
    stage: Optional[DealStage] = None


class Order(BaseModel):
    model_config = _REQUEST
    order_id: Optional[str] = None
    timestamp: Moment
    amount: float = Field(ge=0, strict=True, allow_inf_nan=False)
    status: OrderStatus = "paid"
    product: Optional[str] = None
    category: Optional[str] = None
    channel: Optional[str] = None


class Deal(BaseModel):
    model_config = _REQUEST
    deal_id: str = Field(min_length=1)
    created_at: Moment
    stage: Optional[DealStage] = None
    closed_at: Optional[Moment] = None
    outcome: DealOutcome = "open"
    amount: Optional[float] = Field(None, ge=0, strict=True, allow_inf_nan=False)
    owner: Optional[str] = None


class PersonHistory(BaseModel):
    """A mini CRM of one person: features are computed from it by the training pipeline."""

    model_config = _REQUEST
    leads: list[Lead] = Field(default_factory=list, max_length=100)
    interactions: list[Interaction] = Field(default_factory=list, max_length=10_000)
    orders: list[Order] = Field(default_factory=list, max_length=10_000)
    deals: list[Deal] = Field(default_factory=list, max_length=1_000)

    @model_validator(mode="after")
    def _not_empty(self) -> PersonHistory:
        if not (self.leads or self.interactions or self.orders or self.deals):
            raise ValueError("give at least one lead, interaction, order or deal")
        return self


class PersonRequest(BaseModel):
    """Who to score: a ``person_id`` in the online feature store, or a ``history``.

    With a history, ``person_id`` is optional and only labels the answer.
    """

    model_config = _REQUEST
    person_id: Optional[str] = Field(None, min_length=1, max_length=200)
    lead_id: Optional[str] = Field(
        None, min_length=1, max_length=200, description="Find the person by the CRM's lead id (instead of person_id)."
    )
    customer_id: Optional[str] = Field(
        None, min_length=1, max_length=200,
        description="Find the person by the CRM's customer id (instead of person_id).",
    )
    history: Optional[PersonHistory] = None
    as_of: Optional[Moment] = Field(
        None,
        description="Score as of this moment (only events strictly before it count). By id: a "
        "materialised day (default: the latest). With a history: default now (UTC).",
    )

    @model_validator(mode="after")
    def _id_or_history(self) -> PersonRequest:
        ids = [name for name in ("person_id", "lead_id", "customer_id") if getattr(self, name) is not None]
        if not ids and self.history is None:
            raise ValueError("give person_id, lead_id or customer_id (feature store), or history (raw events)")
        if len(ids) > 1:
            raise ValueError(f"give one of person_id, lead_id and customer_id, not {' and '.join(ids)}")
        if self.history is not None and (self.lead_id or self.customer_id):
            raise ValueError("with a history, label the answer with person_id (lead_id and customer_id find a "
                             "stored person)")
        return self


class ScoreOptions(BaseModel):
    model_config = _REQUEST
    targets: Optional[list[Target]] = Field(
        None, min_length=1, description="Targets to score (default: every target that applies)."
    )
    top_k: Optional[int] = Field(None, ge=0, le=MAX_TOP_K, strict=True, description="Reasons per score (default 5).")


class ScoreRequest(PersonRequest, ScoreOptions):
    model_config = ConfigDict(
        extra="forbid",
        hide_input_in_errors=True,
        # One "example" (OpenAPI 3.0): BentoML's schema model has no "examples" field.
        json_schema_extra={
            "example": {
                "person_id": "web-form-1234",
                "as_of": "2025-01-15",
                "targets": ["lead_quality", "purchase_probability"],
                "top_k": 3,
                "history": {
                    "leads": [{"created_at": "2025-01-02T10:00:00", "source": "paid_search",
                               "attributes": {"country": "GB", "industry": "retail"}}],
                    "interactions": [{"timestamp": "2025-01-10T09:30:00", "type": "email_open"}],
                    "orders": [], "deals": [],
                },
            }
        },
    )


class BatchRequest(ScoreOptions):
    """Up to ``serving.max_batch_size`` people; the options apply to each."""

    persons: list[PersonRequest] = Field(min_length=1)
    model_config = ConfigDict(
        extra="forbid",
        hide_input_in_errors=True,
        json_schema_extra={
            "example": {"persons": [{"person_id": "P86bd111b5964f65b"}, {"person_id": "P1ea8340bcf5ddec5"}],
                        "top_k": 2}
        },
    )


class Reason(BaseModel):
    feature: str
    value: Optional[float | str] = None
    impact: float
    direction: Literal["up", "down"] | str
    text: str


class TargetScore(BaseModel):
    target: Target
    probability: float
    score: int = Field(description="0-100")
    percentile: Optional[float] = Field(None, description="Among the model's reference population.")
    grade: Literal["A", "B", "C", "D"]
    expected_value: Optional[float] = None
    p_won_30d: Optional[float] = None
    p_won_60d: Optional[float] = None
    p_won_90d: Optional[float] = None
    median_days_to_win: Optional[float] = Field(None, description="Empty when beyond the horizon.")
    deal_id: Optional[str] = None
    dominant_risk: Optional[Literal["indifference", "service"]] = None
    model_version: str
    as_of: datetime
    previous_score: Optional[int] = Field(None, description="The latest recorded score before this day (score history).")
    score_change: Optional[int] = Field(None, description="score - previous_score.")
    trend: Optional[Literal["improving", "steady", "declining", "new"]] = Field(
        None, description="improving / declining: moved by at least scoring.trend_min_change points; new: no earlier score."
    )
    reasons: list[Reason] = Field(default_factory=list)


class PersonScores(BaseModel):
    person_id: Optional[str]
    lead_id: Optional[str] = Field(None, description="The person's latest lead id in the CRM.")
    customer_id: Optional[str] = Field(None, description="The person's latest customer id in the CRM.")
    lead_ids: list[str] = Field(default_factory=list, description="Every lead id of the person, oldest first.")
    customer_ids: list[str] = Field(default_factory=list, description="Every customer id of the person, oldest first.")
    as_of: datetime
    scores: list[TargetScore]
    not_applicable: dict[str, str] = Field(
        default_factory=dict, description="Requested targets that do not apply to this person, and why."
    )
    error: Optional[str] = Field(None, description="Batch only: why this person could not be scored.")


class BatchResponse(BaseModel):
    results: list[PersonScores]


class HistoryPoint(BaseModel):
    day: date
    target: Target
    deal_id: Optional[str] = None
    model_version: str
    probability: float
    score: int


class HistoryResponse(BaseModel):
    person_id: str
    target: Optional[Target] = None
    points: list[HistoryPoint]


class ModelInfo(BaseModel):
    target: Target
    name: str
    version: str
    model_type: str
    trained_at: str
    source: Literal["mlflow", "bentoml"]
    test_metrics: dict[str, float] = Field(
        description="The served contender's test metrics (test_*) and the gate's differences from "
        "the other contenders and the former champion with their intervals (gate_<a>_minus_<b>_<metric>[_low|_high])."
    )
    features: list[str]
    served: str = Field("", description="The contender that serves: model (LightGBM) or a baseline's name.")
    gate: str = Field("", description="Why the gate made it champion.")


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    missing: list[str] = Field(default_factory=list, description="Targets without a champion.")


class ErrorBody(BaseModel):
    """Every error the API answers itself (401, 404, 413, 422, 503)."""

    error: str
    field: Optional[str] = None
    detail: Optional[str] = None
