"""Failures caused for real: an unreachable MLflow server, training killed with SIGKILL, a
damaged online feature store, a writer killed mid-file. What each does is in
docs/reliability.md ("Failures").
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from radar.config import Settings
from serving.feature_store import FeatureStore, default_store_path
from serving.health import store_problem
from serving.scoring import load_champions, score_people
from servers import free_port, running_server

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
KEY = "failure-test-key"
REBUILD = "radar features DIR --as-of DAY --materialize"
COMPARED = ("probability", "score", "percentile", "grade", "expected_value", "model_version")


def _env(**extra: str) -> dict[str, str]:
    # PYTHONPATH: the subprocess imports this checkout's packages, whatever is installed.
    return os.environ | {"PYTHONPATH": str(ROOT), "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", **extra}


def _settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    return _env(RADAR_WORK_DIR=str(settings.work_dir), RADAR_MLFLOW_TRACKING_URI=settings.tracking_uri,
                MLFLOW_TRACKING_URI=settings.tracking_uri, **extra)


# --- the online feature store ------------------------------------------------------------


def _garble(path: Path) -> None:
    """Random bytes over the whole file, size kept."""
    path.write_bytes(np.random.default_rng(5).bytes(path.stat().st_size))


def _truncate(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)


def _scribble(path: Path) -> None:
    """Junk over pages in the middle; the header (and so the file's claimed size) intact."""
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.seek(size // 3)
        handle.write(np.random.default_rng(6).bytes(size // 3))


@pytest.mark.parametrize("damage, words", [(_garble, "is damaged or not a Radar feature store"),
                                           (_truncate, "is cut short"), (_scribble, "is damaged")])
def test_a_damaged_feature_store_is_named_with_the_fix(trained: tuple, tmp_path: Path, damage, words: str) -> None:
    settings = trained[0]
    store = tmp_path / "feature_store.sqlite"
    shutil.copy(default_store_path(settings), store)
    assert store_problem(store) is None
    assert store_problem(tmp_path / "absent.sqlite") is None  # not built yet: by id says so already
    damage(store)
    problem = store_problem(store)
    assert problem is not None and problem.startswith(f"feature store {store} ") and words in problem
    assert REBUILD in problem


def test_a_person_missing_from_the_store_is_reported_missing(trained: tuple) -> None:
    """Covered over HTTP by test_service_http.test_unknown_person_and_day_are_404; here the
    store itself: a missing person is reported as missing, not as an error."""
    settings = trained[0]
    rows = FeatureStore(default_store_path(settings)).read(["nobody-at-all"])
    assert rows.missing == ["nobody-at-all"] and rows.features.empty


# --- real servers ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(trained: tuple, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BentoML home holding the champions, copied there by `radar bento export`."""
    home = tmp_path_factory.mktemp("bentoml-home")
    done = subprocess.run([str(BIN / "radar"), "bento", "export"], cwd=ROOT, capture_output=True, text=True,
                          env=_settings_env(trained[0], BENTOML_HOME=str(home)), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("exported") >= len(load_champions(trained[0]))
    return home


@pytest.fixture(scope="module")
def batch(trained: tuple) -> pd.DataFrame:
    settings, data, as_of = trained
    return score_people(data, as_of, load_champions(settings), settings)


def _work_copy(settings: Settings, folder: Path, tracking_uri: str) -> Settings:
    """A work dir of our own holding a copy of the feature store, pointing at ``tracking_uri``."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(default_store_path(settings), folder / "feature_store.sqlite")
    return Settings(work_dir=folder, mlflow_tracking_uri=tracking_uri)


def _closed_port_uri() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


def _status(url: str) -> dict:
    response = httpx.get(f"{url}/status", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def _people(batch: pd.DataFrame, target: str) -> list[str]:
    return list(batch.loc[batch["target"] == target, "person_id"].head(2))


def _assert_same(answer: dict, batch: pd.DataFrame, person: str, target: str, columns: tuple[str, ...]) -> None:
    mine = [s for s in answer["scores"] if s["target"] == target]
    assert len(mine) == 1, answer
    expected = batch[(batch["person_id"] == person) & (batch["target"] == target)].iloc[0]
    for column in columns:
        want, got = expected[column], mine[0][column]
        if isinstance(got, float):
            assert got == pytest.approx(float(want), rel=1e-9, abs=1e-9), (person, target, column)
        elif got is None:
            assert pd.isna(want), (person, target, column)
        else:
            assert str(got) == str(want), (person, target, column)


def _log(settings: Settings, name: str) -> str:
    return (Path(settings.work_dir) / name).read_text(errors="replace")


@contextmanager
def _served_without_mlflow(settings: Settings, exported: Path, tmp_path: Path,
                           damage_store: bool = False) -> Iterator[tuple[Settings, dict, httpx.Client]]:
    """A real server whose tracking URI is a closed port and whose champions come from
    `radar bento export` (its feature store garbled with ``damage_store``). Checks that it is
    ready, degraded and serving exactly the exported champions, then yields its settings,
    /status and a client; once done, that its log names the failure without a traceback."""
    dead = _work_copy(settings, tmp_path / "work", _closed_port_uri())
    if damage_store:
        _garble(Path(dead.work_dir) / "feature_store.sqlite")
    with running_server(dead, KEY, "server.log", BENTOML_HOME=str(exported),
                        MLFLOW_TRACKING_URI=dead.tracking_uri) as (url, statuses):
        assert statuses[-1] == 200
        status = _status(url)
        champions = load_champions(settings)
        assert status["status"] == "degraded" and status["model_source"] == "bentoml"
        assert status["models"] == {t: c.version for t, c in champions.items()}
        assert status["problems"][0] == (f"MLflow registry {dead.tracking_uri} unreachable (MlflowException): "
                                         "serving the champions exported to BentoML's model store")
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as client:
            models = client.get("/models").json()["models"]
            assert {m["target"]: (m["version"], m["source"]) for m in models} == {
                t: (c.version, "bentoml") for t, c in champions.items()}
            yield dead, status, client
    log = _log(dead, "server.log")
    assert "Radar DEGRADED: MLflow registry" in log and "Traceback" not in log, log[-4000:]


def test_mlflow_down_and_a_damaged_store_degrade_the_server_but_it_serves(trained: tuple, exported: Path,
                                                                          batch: pd.DataFrame, tmp_path: Path,
                                                                          crm_history) -> None:
    """Both failures at once, in one real server (the default run's version of the two slow
    tests below): the tracking URI is a closed port, the champions come from `radar bento
    export`, the feature store is garbage. It is ready, says degraded and why, scores by
    history like `radar score`, and by id answers 404 with the command that rebuilds the store."""
    settings, _, as_of = trained
    with _served_without_mlflow(settings, exported, tmp_path, damage_store=True) as (dead, status, client):
        store = Path(dead.work_dir) / "feature_store.sqlite"
        damaged = status["problems"][1]
        assert len(status["problems"]) == 2
        assert damaged.startswith(f"feature store {store} is damaged") and REBUILD in damaged
        for target in batch["target"].unique():
            person = _people(batch, target)[0]
            by_id = client.post("/score", json={"person_id": person, "targets": [target]})
            assert by_id.status_code == 404 and REBUILD in by_id.json()["error"], by_id.text
            request = {"person_id": person, "as_of": as_of.isoformat(), "history": crm_history(person),
                       "targets": [target]}
            response = client.post("/score", json=request)
            assert response.status_code == 200, response.text
            # The population figures behind expected values live in the store: not compared.
            _assert_same(response.json(), batch, person, target, tuple(c for c in COMPARED if c != "expected_value"))
    assert f"Radar DEGRADED: feature store {store}" in _log(dead, "server.log")


@pytest.mark.slow
def test_mlflow_unreachable_serves_the_exported_champions_degraded(trained: tuple, exported: Path, batch: pd.DataFrame,
                                                                    tmp_path: Path) -> None:
    with _served_without_mlflow(trained[0], exported, tmp_path) as (_, status, client):
        assert len(status["problems"]) == 1
        for target in batch["target"].unique():
            for person in _people(batch, target):
                response = client.post("/score", json={"person_id": person, "targets": [target]})
                assert response.status_code == 200, response.text
                _assert_same(response.json(), batch, person, target, COMPARED)


def test_no_mlflow_and_no_exported_models_is_never_ready(trained: tuple, tmp_path: Path) -> None:
    settings = trained[0]
    dead = _work_copy(settings, tmp_path / "work", _closed_port_uri())
    with _server_not_waited(dead, "server.log", BENTOML_HOME=str(tmp_path / "empty-bentoml-home")) as url:
        status = _poll_status(url, lambda s: s["status"] != "loading")
        assert status["status"] == "unavailable" and status["models"] == {}
        problem = " ".join(status["problems"])
        assert f"MLflow registry {dead.tracking_uri} unreachable" in problem
        assert "holds no radar-* models" in problem and "radar bento export" in problem
        for _ in range(5):  # it stays that way: never ready with nothing to serve
            assert httpx.get(f"{url}/readyz", timeout=5).status_code == 503
            time.sleep(0.2)
        answer = httpx.post(f"{url}/score", json={"person_id": "x"}, headers={"Authorization": f"Bearer {KEY}"})
        assert answer.status_code == 503
    log = _log(dead, "server.log")
    assert "Radar UNAVAILABLE: MLflow registry" in log and "holds no radar-* models" in log
    assert "Traceback" not in log, log[-4000:]


@pytest.mark.slow
def test_a_damaged_feature_store_degrades_the_server_with_the_fix(trained: tuple, batch: pd.DataFrame,
                                                                  tmp_path: Path, crm_history) -> None:
    settings, _, as_of = trained
    work = _work_copy(settings, tmp_path / "work", settings.tracking_uri)
    store = Path(work.work_dir) / "feature_store.sqlite"
    _garble(store)
    with running_server(work, KEY, "server.log") as (url, statuses):
        assert statuses[-1] == 200  # ready: scoring by history needs no store
        status = _status(url)
        assert status["status"] == "degraded" and status["model_source"] == "mlflow"
        assert len(status["problems"]) == 1 and status["problems"][0].startswith(f"feature store {store} ")
        assert REBUILD in status["problems"][0]
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as client:
            for _ in range(3):  # every call by id: the same clear 404, never a 500
                response = client.post("/score", json={"person_id": _people(batch, "purchase_probability")[0]})
                assert response.status_code == 404 and REBUILD in response.json()["error"], response.text
                person = _people(batch, "purchase_probability")[0]
            request = {"person_id": person, "as_of": as_of.isoformat(), "history": crm_history(person),
                       "targets": ["purchase_probability"]}
            response = client.post("/score", json=request)
            assert response.status_code == 200, response.text
            # The population figures behind expected values live in the store: not compared.
            _assert_same(response.json(), batch, person, "purchase_probability",
                         tuple(c for c in COMPARED if c != "expected_value"))
    log = _log(work, "server.log")
    assert f"Radar DEGRADED: feature store {store}" in log and REBUILD in log
    assert "Traceback" not in log and "file is not a database" in log, log[-4000:]


@pytest.mark.slow
def test_a_stopped_mlflow_server_is_the_same_as_none(trained: tuple, exported: Path, tmp_path: Path) -> None:
    """A real `mlflow server` that was running and was killed, rather than a closed port."""
    settings = trained[0]
    port = free_port()
    backend = f"sqlite:///{tmp_path / 'tracking.db'}"
    mlflow_server = subprocess.Popen([str(BIN / "mlflow"), "server", "--backend-store-uri", backend, "--host",
                                      "127.0.0.1", "--port", str(port), "--workers", "1"], cwd=tmp_path,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_http(f"http://127.0.0.1:{port}/health", timeout=120)
    finally:
        os.killpg(mlflow_server.pid, signal.SIGKILL)
        mlflow_server.wait(timeout=30)
    dead = _work_copy(settings, tmp_path / "work", f"http://127.0.0.1:{port}")
    with running_server(dead, KEY, "server.log", BENTOML_HOME=str(exported),
                        MLFLOW_TRACKING_URI=dead.tracking_uri) as (url, _):
        status = _status(url)
        assert status["status"] == "degraded" and status["model_source"] == "bentoml"
        assert "unreachable" in status["problems"][0]


@contextmanager
def _server_not_waited(settings: Settings, log_name: str, **extra_env: str) -> Iterator[str]:
    """`bentoml serve` like servers.running_server, without waiting for /readyz (which
    this server must never pass)."""
    port = free_port()
    env = _settings_env(settings, RADAR_API_KEYS=KEY, **extra_env)
    command = [str(BIN / "bentoml"), "serve", "serving.service:Radar", "--host", "127.0.0.1", "--port", str(port)]
    with open(Path(settings.work_dir) / log_name, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=30)


def _poll_status(url: str, done, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = _status(url)
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        if done(status):
            return status
        time.sleep(0.2)
    raise AssertionError(f"no final status after {timeout} s")


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer in {timeout} s")


# --- training killed -------------------------------------------------------------------------


def _copy_registry(settings: Settings, folder: Path) -> Settings:
    """The trained MLflow store (database and artifacts) copied, paths rewritten to the copy."""
    source = Path(settings.work_dir)
    folder.mkdir(parents=True)
    shutil.copy(source / "mlflow.db", folder / "mlflow.db")
    shutil.copytree(source / "mlartifacts", folder / "mlartifacts")
    old, new = str(source.resolve()), str(folder.resolve())
    with sqlite3.connect(folder / "mlflow.db") as conn:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            for column in [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")') if "CHAR" in r[2].upper() or "TEXT" in r[2].upper()]:
                conn.execute(f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) WHERE instr("{column}", ?) > 0',
                             (old, new, old))
    copy = Settings(work_dir=folder, mlflow_tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    assert {t: c.version for t, c in load_champions(copy).items()} == {t: c.version for t, c in load_champions(settings).items()}
    return copy


def _file_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _run_count(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT count(*) FROM runs").fetchone()[0]


def _kill_once_a_run_exists(command: list[str], env: dict[str, str], db: Path, cwd: Path, timeout: float) -> int:
    """Start ``command``; SIGKILL it as soon as its MLflow run is in ``db``; its exit code."""
    before = _run_count(db)
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while _run_count(db) == before:
            assert process.poll() is None, process.stderr.read().decode(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "no MLflow run appeared"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        return process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _assert_champions_unchanged(original: Settings, copy: Settings, hashes: dict[str, str], features: pd.DataFrame) -> None:
    after = _file_hashes(Path(copy.work_dir) / "mlartifacts")
    assert {k: after.get(k) for k in hashes} == hashes  # every file there before is untouched
    before, now = load_champions(original), load_champions(copy)
    assert {t: c.version for t, c in now.items()} == {t: c.version for t, c in before.items()}
    for target, champion in now.items():
        rows = features.reindex(columns=champion.bundle.feature_names)
        pd.testing.assert_frame_equal(champion.bundle.predict(rows), before[target].bundle.predict(rows))


@pytest.fixture(scope="module")
def some_features(trained: tuple) -> pd.DataFrame:
    settings, data, _ = trained
    store = FeatureStore(default_store_path(settings))
    return store.read(data.orders["person_id"].drop_duplicates().head(50).tolist()).features


def test_registration_killed_mid_run_keeps_the_champion(trained: tuple, some_features: pd.DataFrame, tmp_path: Path) -> None:
    """A new version being logged (what the end of `radar train` does) killed with SIGKILL once
    its MLflow run exists, on its way to being promoted: the champion stays as it was."""
    settings = trained[0]
    copy = _copy_registry(settings, tmp_path / "work")
    hashes = _file_hashes(Path(copy.work_dir) / "mlartifacts")
    script = textwrap.dedent(f"""
        import pandas as pd
        from serving.feature_store import FeatureStore
        from training.gate import GateDecision
        from training.registry import load_bundle, log_target
        uri = {copy.tracking_uri!r}
        bundle = load_bundle("purchase_probability", tracking_uri=uri)
        example = FeatureStore({str(default_store_path(settings))!r}).read({list(some_features.index[:5])!r}).features
        example = example.reindex(columns=bundle.feature_names)
        log_target(bundle, params={{"why": "killed"}}, plots=None, input_example=example, tracking_uri=uri,
                   decision=GateDecision(True, ["promote whatever comes"]))
    """)
    code = _kill_once_a_run_exists([sys.executable, "-c", script], _env(), Path(copy.work_dir) / "mlflow.db",
                                   tmp_path, timeout=300)
    assert code == -signal.SIGKILL
    _assert_champions_unchanged(settings, copy, hashes, some_features)


@pytest.mark.slow
def test_radar_train_killed_mid_run_keeps_the_champion(trained: tuple, some_features: pd.DataFrame, tmp_path: Path) -> None:
    """The whole `radar train` on the shared world (same seed), SIGKILLed once its MLflow run exists."""
    from radar.demo import generate_world

    settings = trained[0]
    copy = _copy_registry(settings, tmp_path / "work")
    hashes = _file_hashes(Path(copy.work_dir) / "mlartifacts")
    world = tmp_path / "crm"
    generate_world(n_customers=3000, seed=11, out_dir=world)
    code = _kill_once_a_run_exists([str(BIN / "radar"), "train", str(world)], _settings_env(copy),
                                   Path(copy.work_dir) / "mlflow.db", tmp_path, timeout=1200)
    assert code == -signal.SIGKILL
    _assert_champions_unchanged(settings, copy, hashes, some_features)


# --- writers killed mid-file -----------------------------------------------------------------


WRITER = """
import sys
import numpy as np
import pandas as pd
from features.atomic import write_csv
destination = sys.argv[1]
i = 0
while True:
    n = 150_000 if i % 2 else 100_000
    write_csv(pd.DataFrame({"row": np.arange(n), "check": np.arange(n) * 7 % 13}), destination)
    i += 1
"""


def test_a_writer_killed_mid_file_leaves_a_whole_file(tmp_path: Path) -> None:
    """Readers see a whole old or whole new file while a writer rewrites it, and after
    SIGKILL in the middle of a write (never a torn one)."""
    destination = tmp_path / "scores.csv"
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(destination)], env=_env(), cwd=tmp_path)
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while len(seen) < 2 or time.monotonic() < deadline - 55:
            assert time.monotonic() < deadline and process.poll() is None
            if destination.exists():
                seen.add(_whole(destination))
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
    assert seen == {100_000, 150_000}
    assert _whole(destination) in seen
    # What a kill can leave is the writer's hidden temporary file, never the destination torn.
    leftovers = [p.name for p in tmp_path.iterdir() if p != destination]
    assert all(name.startswith(".scores.csv.") and name.endswith(".tmp") for name in leftovers), leftovers


def _whole(path: Path) -> int:
    frame = pd.read_csv(path)
    n = len(frame)
    assert n in (100_000, 150_000), n
    assert frame["row"].tolist() == list(range(n)) and (frame["check"] == frame["row"] * 7 % 13).all()
    return n


def test_writers_of_outputs_go_through_a_temporary_file() -> None:
    """An audit kept honest: every writer in Radar's code writes to the temporary path of
    features.atomic.atomic_path (named ``temp``) or to memory, never to its destination."""
    calls = ("to_csv(", "to_parquet(", "to_excel(", ".write_text(", ".write_bytes(", "joblib.dump(", "savefig(",
             "pq.write_table(", "pacsv.write_csv(", ".to_sql(")
    # open( and path.open(, but not subprocess.Popen(.
    opens = re.compile(r"(?<!\w)open\(")
    allowed = {
        "features/atomic.py",  # the writers themselves
        "serving/feature_store.py",  # SQLite: a staging table renamed in one transaction
    }
    offenders = []
    for folder in ("features", "training", "serving", "radar"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = str(path.relative_to(ROOT))
            if relative in allowed:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                code = line.split("#")[0]
                if (any(call in code for call in calls) or opens.search(code)) and not _safe_write(code):
                    offenders.append(f"{relative}:{number}: {line.strip()}")
    assert offenders == []


def _safe_write(code: str) -> bool:
    """Not a rewrite of a destination: the atomic temp path, memory, a read, a definition, or
    one line appended with O_APPEND (API key hashes: a line is added whole or not at all)."""
    reads = ('"r"', "'r'", '"rb"', "'rb'", '"rt"', "'rt'", "read_", "def ", "import ")
    return ("temp" in code or "buffer" in code or "ExcelWriter" in code or "writer," in code
            or "O_APPEND" in code or "fdopen(fd, \"a\"" in code or any(r in code for r in reads))
