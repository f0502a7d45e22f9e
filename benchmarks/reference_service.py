"""A minimal BentoML service to measure Radar's HTTP figures against.

One LightGBM booster (the purchase champion's, saved as a text model by
``benchmarks.http_bench``), one route: the request carries the row the booster reads, the
answer is its probability and the five largest TreeSHAP contributions. No feature store,
no authentication, no calibration or grading: what is left is BentoML's own cost plus
LightGBM's, the floor any model server on this machine pays.

    RADAR_REFERENCE_MODEL=model.txt bentoml serve benchmarks.reference_service:Reference
"""

from __future__ import annotations

import os

# Set before LightGBM loads, as serving/service.py does: OpenMP reads it once, and one
# thread is what Radar serves with, so both servers pay the same for a single row.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import bentoml  # noqa: E402
import lightgbm as lgb  # noqa: E402
import numpy as np  # noqa: E402

from radar.config import load_settings  # noqa: E402

MODEL_ENV = "RADAR_REFERENCE_MODEL"
TOP_K = 5


@bentoml.service(
    name="radar-reference",
    # The same resources, workers and traffic settings as Radar's service, so only the work
    # differs.
    resources={"cpu": "1"},
    workers=load_settings().serving.workers,
    traffic={"timeout": 30, "concurrency": 64},
)
class Reference:
    def __init__(self) -> None:
        self.booster = lgb.Booster(model_file=os.environ[MODEL_ENV])
        self.names: list[str] = self.booster.feature_name()

    # async, as Radar's /score is: both answer on the event loop, so only the work differs.
    @bentoml.api(route="/predict")
    async def predict(self, features: list[float | None]) -> dict:
        """Probability and top-5 contributions of one row (null = missing)."""
        row = np.array([[np.nan if v is None else v for v in features]], dtype=np.float64)
        probability = float(self.booster.predict(row, num_threads=1)[0])
        contributions = self.booster.predict(row, pred_contrib=True, num_threads=1)[0, :-1]
        top = np.argsort(-np.abs(contributions))[:TOP_K]
        return {
            "probability": probability,
            "reasons": [{"feature": self.names[j], "impact": float(contributions[j])} for j in top],
        }
