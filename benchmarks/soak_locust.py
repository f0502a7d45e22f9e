"""The soak's load, for Locust (run by ``benchmarks.soak``; not imported by it: Locust patches
the standard library with gevent when it loads).

Every simulated user keeps a constant rate (``constant_throughput``), so the total arrival
rate is users × RADAR_SOAK_USER_RATE whatever the latency: a bounded load, not as fast as
possible. The mix: ``POST /score`` by id (cycling over the sampled person ids), some
``POST /score_batch`` of ``BATCH`` ids and some ``GET /models``. Any answer but 200 is a
failure.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

from locust import FastHttpUser, constant_throughput, task

IDS = json.loads(Path(os.environ["RADAR_SOAK_IDS"]).read_text(encoding="utf-8"))
KEY = os.environ["RADAR_SOAK_KEY"]
USER_RATE = float(os.environ.get("RADAR_SOAK_USER_RATE", "5"))
BATCH = 10
#: One shared cycle: users ask for different people, and every id comes round in turn.
_next = itertools.count()


def _ids(n: int) -> list[str]:
    return [IDS[next(_next) % len(IDS)] for _ in range(n)]


class Client(FastHttpUser):
    wait_time = constant_throughput(USER_RATE)

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    @task(18)
    def score(self) -> None:
        self.client.post("/score", data=json.dumps({"person_id": _ids(1)[0]}), headers=self.headers,
                         name="POST /score")

    @task(1)
    def score_batch(self) -> None:
        body = {"persons": [{"person_id": i} for i in _ids(BATCH)], "top_k": 3}
        self.client.post("/score_batch", data=json.dumps(body), headers=self.headers, name="POST /score_batch")

    @task(1)
    def models(self) -> None:
        self.client.get("/models", headers=self.headers, name="GET /models")
