"""Radar's configuration: one typed object with defaults.

Values come, in rising priority, from the defaults below, a YAML file (``radar.yaml`` in the
working directory, or the path in ``RADAR_CONFIG``) and environment variables prefixed
``RADAR_`` with ``__`` between levels, e.g. ``RADAR_TRAINING__HORIZON_DAYS=60``.
Nothing is read at import time: call :func:`load_settings`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic import model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

CONFIG_ENV_VAR = "RADAR_CONFIG"
DEFAULT_CONFIG_FILE = Path("radar.yaml")


class IdentityConfig(BaseModel):
    """How records from disconnected sources are linked into one person."""

    # An e-mail or phone seen with more distinct lead/customer ids than this is a shared
    # key (a switchboard, info@...): linking through it would merge strangers.
    max_ids_per_key: int = Field(5, ge=1)
    default_phone_region: str = "GB"
    # Processes that parse phone numbers when a load has many (phonenumbers is pure Python,
    # ~30 µs per distinct number: a million at 1 M people); 0 = one per core, 1 = none.
    phone_workers: int = Field(0, ge=0)
    # Key for the mapping's ``hash_columns`` (HMAC-SHA256 of the normalised value). Set it
    # from the environment (RADAR_IDENTITY__HASH_SECRET), never in a file; it is not printed.
    hash_secret: SecretStr | None = None


class DatabaseConfig(BaseModel):
    """Reading the CRM tables from a database (a SQLAlchemy URL where a folder is accepted)."""

    # Rows fetched per round trip through a server-side cursor: large enough that the
    # round trips cost little next to the rows, small enough that only one batch is held
    # as Python objects at a time (50 000 rows of a dozen columns is a few tens of MB).
    chunk_rows: int = Field(50_000, ge=1)


class FeatureConfig(BaseModel):
    """Point-in-time feature windows."""

    windows_days: tuple[int, ...] = (7, 30, 90, 365)
    # Trend compares the last `trend_recent_days` with the `trend_base_days` before them.
    trend_recent_days: int = 30
    trend_base_days: int = 60
    # NPS at or below this is a detractor answer (and a service trigger for churn).
    nps_detractor_max: float = 6.0


class ModelConfig(BaseModel):
    """LightGBM settings. Explanation cost grows with trees x leaves x depth^2, so size is
    capped on purpose: shallow trees keep pred_contrib under a millisecond per row."""

    num_leaves: int = Field(15, ge=2)
    max_depth: int = Field(5, ge=1)
    # 0.1 rather than 0.05: early stopping then keeps about half the trees for the same test
    # AUC (20 k demo, all four targets within ±0.001), and every explanation (TreeSHAP grows
    # with the trees) and every training run costs half as much (docs/benchmarks.md, Levers).
    learning_rate: float = Field(0.1, gt=0)
    max_trees: int = Field(400, ge=1)
    early_stopping_rounds: int = Field(40, ge=1)
    min_child_samples: int = Field(50, ge=1)
    feature_fraction: float = Field(0.8, gt=0, le=1)
    bagging_fraction: float = Field(0.8, gt=0, le=1)
    # Threads for training (0 = LightGBM's default, all cores). Serving predicts with one
    # thread per worker: on single rows, LightGBM's threading costs more than it gains.
    num_threads: int = 0
    # Discrete-time hazard for time_to_close: width of one period in days.
    hazard_period_days: int = Field(10, ge=1)


class TrainingConfig(BaseModel):
    """Labels, snapshots and the promotion gate."""

    horizon_days: int = Field(90, ge=1)
    # A customer is "active" (eligible for churn) with a paid order within this many days.
    active_customer_days: int = Field(365, ge=1)
    snapshot_frequency: str = "MS"
    n_snapshots: int = Field(12, ge=3)
    min_positives: int = Field(100, ge=1)
    random_seed: int = 42
    # Training snapshots need this much history before them (features need a past).
    min_history_days: int = Field(30, ge=0)
    # Promotion gate (training/gate.py): paired bootstrap intervals at this confidence, no
    # fixed margins: a challenger must beat the champion beyond the test rows' own noise.
    gate_confidence: float = Field(0.95, gt=0.5, lt=1)
    gate_bootstrap_rounds: int = Field(500, ge=50)
    model: ModelConfig = ModelConfig()


class ExplainConfig(BaseModel):
    """How the contributions behind reasons (TreeSHAP) are computed (``training.treeshap``)."""

    # "tables": Radar's own exact TreeSHAP (per-leaf tables, several times faster than
    # LightGBM's pred_contrib on batches), used for a model only once it has been checked
    # equal to pred_contrib; "pred_contrib": always LightGBM's own.
    method: Literal["tables", "pred_contrib"] = "tables"
    # Largest difference from pred_contrib allowed, relative to the largest contribution.
    tolerance: float = Field(1e-6, gt=0, lt=1e-2)
    # Rows compared with pred_contrib: made-up rows on every split's edges when a model is
    # first explained, and this many of the first rows explained (as given, and again with
    # values removed).
    check_rows: int = Field(256, ge=16)


class ScoringConfig(BaseModel):
    """How a probability becomes what a salesperson reads."""

    # Grades by percentile among the model's reference population (its test snapshot), not
    # by fixed probabilities: for a 5 % base rate a fixed "A at 75 %" would grade everyone D.
    grade_a_min_percentile: float = Field(90.0, ge=0, le=100)
    grade_b_min_percentile: float = Field(70.0, ge=0, le=100)
    grade_c_min_percentile: float = Field(40.0, ge=0, le=100)
    # A score that moved by at least this many points (0-100) since the previous recorded
    # score is "improving" or "declining"; less is "steady", so that the small wobble of a
    # monthly feature update does not read as a trend.
    trend_min_change: float = Field(5.0, ge=0)


class ListSettings(BaseModel):
    """Thresholds and windows of the marketers' action lists."""

    closing_soon_days: Literal[30, 60, 90] = 30
    closing_soon_min_probability: float = Field(0.2, ge=0, le=1)
    stalled_after_days: int = Field(30, ge=1)
    customer_lifetime_years: float = Field(2.0, gt=0)
    service_trigger_days: int = Field(30, ge=1)
    failed_payment_days: int = Field(30, ge=1)
    likely_buyer_days: int = Field(30, ge=1)
    likely_buyer_min_probability: float = Field(0.2, ge=0, le=1)
    category_lookback_days: int = Field(365, ge=1)
    # Lead attributes shown as segment columns; ``segment`` is the first one a person has.
    segment_columns: tuple[str, ...] = ("segment", "industry", "company_size")


class ServingConfig(BaseModel):
    """The scoring HTTP server."""

    host: str = "127.0.0.1"
    port: int = 3000
    max_batch_size: int = 1000
    api_keys_file: Path = Path(".radar/api_keys.txt")
    default_top_k: int = 5
    # Token bucket per API key (keyed by the key's hash), per worker process: a CRM sync or
    # a page never comes near 50 calls a second, a runaway loop does. 0 turns it off.
    rate_limit_per_second: float = Field(50.0, ge=0)
    rate_limit_burst: int = Field(100, ge=1)
    # Largest request body: 8 MiB holds a full batch by id many times over and a batch of
    # histories of ordinary size; a bigger body is refused with 413 before it is read. 0: off.
    max_request_bytes: int = Field(8 * 1024 * 1024, ge=0)
    # Worker processes of the scoring server, each with its own copy of the models. Scoring
    # is Python-bound under the GIL, so one worker uses one core; one per core is the
    # measured best on the benchmark machine (docs/benchmarks.md).
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    # SQLAlchemy URL of the shared store: the online feature store (materialised days,
    # precomputed answers) and the score history, in one PostgreSQL database that several
    # scoring servers behind a load balancer share. None: SQLite files in the work dir.
    store_url: str | None = None
    # How long a server waits to connect to the shared store before answering 503: an
    # unreachable host would otherwise hold a request for minutes (the system's TCP timeout).
    store_connect_timeout_seconds: int = Field(5, ge=1)
    # Answers precomputed for everyone when a day is materialised or a champion changes,
    # with this many reasons each: a request by id asking for no more is read, not computed
    # (more: computed). The default answer's reasons; every reason stored costs ~150 bytes.
    precomputed_top_k: int = Field(5, ge=0, le=20)
    precompute_answers: bool = True
    # Persons scored per pass when precomputing: each pass costs a fixed few milliseconds
    # per target and shown column (sentences, lookups) whatever its size, and holds its
    # rows, matrices and reasons in memory (about 2 kB a person more, measured at 100 k:
    # one pass of 100 k peaked 0.1 GB above two of 50 k, and was no faster).
    precompute_chunk_rows: int = Field(50_000, ge=1)
    # People listed by one GET /find: a shared address (info@...) can belong to many, and a
    # marketer looking for one person reads a screenful, not hundreds.
    find_limit: int = Field(20, ge=1)
    # BentoML's OpenTelemetry span per request. Radar configures no trace exporter, so the
    # spans go nowhere, and making them was a quarter of a request's CPU by id
    # (docs/benchmarks.md, "Server layers"). Turn on with a tracing exporter in BentoML's
    # configuration (BENTOML_CONFIG).
    trace_requests: bool = False


class MonitoringConfig(BaseModel):
    """Drift monitoring (``radar monitor``, the server's ``/metrics``): today's features and
    scores against the profile kept with each champion (see ``training.drift``)."""

    # PSI bands as credit scoring has long read them: under 0.1 the population is stable,
    # 0.1-0.25 it has moved enough to look at, over 0.25 it has changed enough that the
    # model's ranking and percentiles may no longer hold.
    psi_warn: float = Field(0.1, gt=0)
    psi_alert: float = Field(0.25, gt=0)
    # Change in a feature's share of missing values (now minus at training, 0-1). A 5-point
    # move is worth a look; 10 points is more than a population drifts in a quarter and
    # usually means a broken export, mapping or join.
    missing_share_warn: float = Field(0.05, gt=0, le=1)
    missing_share_alert: float = Field(0.10, gt=0, le=1)
    # PSI over few rows is mostly sampling noise (about (bins - 1) / rows per side): a
    # target with fewer rows than this, now or at training, is reported but not judged.
    min_rows: int = Field(200, ge=1)
    # The level that makes `radar monitor` exit non-zero (exit code 3).
    fail_on: Literal["warn", "alert"] = "alert"
    # Shape of the profile, fixed when a model is trained: quantile bins per numeric
    # feature and categories kept per text feature (the rest share an "other" bucket).
    bins: int = Field(10, ge=2, le=100)
    max_categories: int = Field(20, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> "MonitoringConfig":
        if self.psi_warn > self.psi_alert or self.missing_share_warn > self.missing_share_alert:
            raise ValueError("monitoring: a warn threshold must not exceed its alert threshold")
        return self


class SparkConfig(BaseModel):
    """The Spark engine of ``radar features|score --engine spark`` (see docs/spark.md).

    ``master`` is any Spark master URL: ``local[N]``, ``spark://host:7077``, ``yarn``,
    ``k8s://...``. Persons are hashed into ``buckets`` groups and the feature pipeline runs
    once per group, so a bucket should hold thousands of persons, not a handful. ``conf``
    is passed to the session as is, e.g. ``{"spark.executor.memory": "4g"}``.
    """

    master: str = "local[2]"
    app_name: str = "radar"
    buckets: int = Field(16, ge=1)
    conf: dict[str, str] = Field(default_factory=dict)


class Settings(BaseSettings):
    """Everything configurable in Radar."""

    model_config = SettingsConfigDict(
        env_prefix="RADAR_", env_nested_delimiter="__", extra="ignore"
    )

    work_dir: Path = Path(".radar")
    # The validated CRM folder the scoring server reads for the web page's lists and KPIs.
    data_dir: Path | None = None
    mlflow_tracking_uri: str | None = None
    identity: IdentityConfig = IdentityConfig()
    database: DatabaseConfig = DatabaseConfig()
    features: FeatureConfig = FeatureConfig()
    training: TrainingConfig = TrainingConfig()
    scoring: ScoringConfig = ScoringConfig()
    explain: ExplainConfig = ExplainConfig()
    lists: ListSettings = ListSettings()
    serving: ServingConfig = ServingConfig()
    spark: SparkConfig = SparkConfig()
    monitoring: MonitoringConfig = MonitoringConfig()

    @property
    def tracking_uri(self) -> str:
        """The MLflow store: ``MLFLOW_TRACKING_URI`` wins, else SQLite under the work dir."""
        explicit = os.environ.get("MLFLOW_TRACKING_URI") or self.mlflow_tracking_uri
        if explicit:
            return explicit
        return f"sqlite:///{(self.work_dir / 'mlflow.db').resolve()}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = Path(os.environ.get(CONFIG_ENV_VAR, DEFAULT_CONFIG_FILE))
        return (
            init_settings,
            env_settings,
            YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file),
        )


def load_settings(**overrides: object) -> Settings:
    """Read settings from defaults, the YAML file and the environment."""
    return Settings(**overrides)
