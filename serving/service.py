"""The BentoML service: loads the champions once, then forwards every call to ``serving.app``.

Run with ``radar serve`` or ``bentoml serve serving.service:Radar`` (``--arg
model_source=bentoml`` serves the models exported with ``radar bento export``).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Callable, Literal

import bentoml
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.responses import JSONResponse
from starlette.staticfiles import StaticFiles

from radar.config import load_settings
from serving import health, ui_api
from serving.answers import refresh_answers
from serving.app import ApiError, ScoringApp, build_app, store_errors
from serving.find import MAX_QUERY, FindKind, FindResponse, find_answer
from serving.auth import ApiKeyMiddleware
from serving.monitor import publish_store_drift
from serving.media import JsonBodyMiddleware
from serving.openapi import OpenApiMiddleware
from serving.limits import LimitsMiddleware
from serving.schemas import BatchRequest, BatchResponse, HistoryResponse, ModelsResponse, PersonScores, ScoreRequest, Target

logger = logging.getLogger(__name__)


class ServeArgs(BaseModel):
    model_source: Literal["auto", "mlflow", "bentoml"] = "auto"


# Set before LightGBM is first loaded: OpenMP reads it once. The decorator's `envs` only
# reaches built bentos, not `bentoml serve` from source.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The same for numba's threads (training.treeshap): one worker per core already fills them.
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
# MLflow retries an unreachable server for minutes by default; at start-up the service would
# rather fall back to BentoML's model store quickly (model_source "auto").
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
args = bentoml.use_arguments(ServeArgs)
_serving = load_settings().serving
# BentoML APIs are POST; the read-only GET routes live on a small mounted FastAPI app.
web = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@web.exception_handler(RequestValidationError)
async def _invalid_parameters(request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 without the values sent: a query parameter may be an e-mail or a phone,
    and error bodies never repeat what was sent (only where and what is wrong)."""
    detail = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
              for e in error.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


# The marketers' page: static files only (public); its data comes from the keyed GET routes.
web.mount("/ui", StaticFiles(directory=ui_api.UI_DIR, html=True), name="ui")


@bentoml.service(
    name="radar",
    # One thread per worker: LightGBM's threading costs more than it gains on single rows.
    resources={"cpu": "1"},
    envs=[{"name": "OMP_NUM_THREADS", "value": "1"}, {"name": "NUMBA_NUM_THREADS", "value": "1"}],
    workers=_serving.workers,
    traffic={"timeout": 30, "concurrency": 64},
    http={"host": _serving.host, "port": _serving.port},
    # Off: every URL excluded from BentoML's OpenTelemetry middleware (a regex matching any).
    tracing={} if _serving.trace_requests else {"excluded_urls": ["."]},
)
@bentoml.asgi_app(web, path="/")
class Radar:
    def __init__(self) -> None:
        # Loading runs beside the server, so /livez answers at once and /readyz says 503
        # until every champion is in memory.
        self.app: ScoringApp | None = None
        self.views: ui_api.UiViews | None = None
        self.health: health.Health = health.LOADING  # GET /status: ok, degraded and why
        threading.Thread(target=self._load, name="radar-load", daemon=True).start()

    def _load(self) -> None:
        try:
            settings = load_settings()
            app = build_app(settings, args.model_source)
            self.health = health.at_start(app)  # logs each problem; drops a damaged feature store
            # Before `app` is set, so /readyz waits for the CRM tables the lists read too.
            self.views = ui_api.load_views(settings, app.models.champions)
            self.app = app
            # Drift gauges for /metrics, after readiness so they never delay it; logs, never raises.
            publish_store_drift(app.store, app.models.champions, settings)
            # Answers by id for champions the stored ones were not made by: computed on a
            # miss until then; logs, never raises.
            refresh_answers(app)
        except Exception as err:  # logged: /readyz stays 503 and says nothing more to the world
            logger.exception("loading the champions failed")
            self.health = health.failed(err)

    def __is_ready__(self) -> bool:
        return self.app is not None and bool(self.app.models.champions)

    def _answer(self, call: Callable[[ScoringApp], BaseModel]) -> BaseModel | JSONResponse:
        if not self.__is_ready__():
            return JSONResponse({"error": "models are not loaded yet", "field": None, "detail": None}, 503)
        try:
            with store_errors():
                return call(self.app)  # type: ignore[arg-type]
        except ApiError as err:
            return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    @bentoml.api(route="/score")
    async def score(self, request: ScoreRequest, /) -> PersonScores:
        """Score one person, by person_id (feature store) or by history (raw events)."""
        # On the event loop, not in a thread: one person is a millisecond of CPU under the
        # GIL either way, and the thread hand-off cost as much again. Batches stay in threads.
        return self._answer(lambda app: app.score(request))  # type: ignore[return-value]

    @bentoml.api(route="/score_batch")
    def score_batch(self, request: BatchRequest, /) -> BatchResponse:
        """Score up to serving.max_batch_size people; one answer per person, in order."""
        return self._answer(lambda app: app.score_batch(request))  # type: ignore[return-value]

    @web.get("/models", response_model=ModelsResponse)
    def models(self) -> ModelsResponse:
        """Each target's champion: name, version, training date, test metrics, features."""
        return self._answer(lambda app: app.model_list())  # type: ignore[return-value]

    @web.get("/history", response_model=HistoryResponse)
    def history(self, person_id: str | None = Query(None, min_length=1, max_length=200),
                target: Target | None = None,
                lead_id: str | None = Query(None, min_length=1, max_length=200),
                customer_id: str | None = Query(None, min_length=1, max_length=200)) -> HistoryResponse:
        """One person's recorded scores, oldest first (every `radar score` records them): by
        person_id, or by the CRM's lead_id or customer_id (give one)."""
        return self._answer(lambda app: app.score_history(person_id, target, lead_id, customer_id))  # type: ignore

    @web.get("/find", response_model=FindResponse)
    def find(self, q: str = Query(..., min_length=1, max_length=MAX_QUERY), kind: FindKind | None = None) -> FindResponse:
        """Who a lead id, customer id, person id, e-mail or phone belongs to: their person_id
        and CRM ids, and which kind of key matched (never the e-mail or phone itself)."""
        return self._answer(lambda app: find_answer(self.views, app.store, q, kind, app.settings))  # type: ignore

    @web.get("/lists")
    def lists(self, request: Request, name: str | None = None, channel: list[str] | None = Query(None),
              grade: list[str] | None = Query(None), owner: list[str] | None = Query(None),
              segment: list[str] | None = Query(None)) -> dict:
        """One action list's rows (no name: every list's size), filtered like `radar lists`;
        a filter may repeat (rows matching any of its values)."""
        filters = ui_api.parse_filters({"channel": channel, "grade": grade, "owner": owner, "segment": segment})

        def answer(app: ScoringApp) -> dict:
            ui_api.check_parameters(request.query_params.multi_items())
            return ui_api.list_answer(self.views, name, filters)

        return self._answer(answer)  # type: ignore

    @web.get("/kpis")
    def kpis(self) -> dict:
        """The KPI tables the report charts, as JSON."""
        return self._answer(lambda app: ui_api.kpi_answer(self.views))  # type: ignore

    @web.get("/status")
    def status(self) -> dict:
        """ok, degraded (models from BentoML's store, damaged feature store) or unavailable,
        with the model source and the reasons; answers while /readyz still says 503."""
        return self.health.body()


Radar.add_asgi_middleware(ApiKeyMiddleware)
Radar.add_asgi_middleware(LimitsMiddleware)  # inside the key check: buckets only for accepted keys
Radar.add_asgi_middleware(JsonBodyMiddleware)  # a form-encoded body gets 415, not BentoML's form parser
Radar.add_asgi_middleware(OpenApiMiddleware)  # Radar's own answers in GET /docs.json
