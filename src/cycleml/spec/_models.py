"""The pydantic models that cycleml.yaml loads into (``spec_version: 1``).

Every model is frozen and forbids unknown keys. Cross-references between sections (a problem's
feature groups, a feature group's source) are checked in :mod:`cycleml.spec._checks` so that all
problems are reported at once.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

from ._base import Name, _Model
from ._cleaning import CleaningStep
from ._features import FeatureGroupSpec
from ._labels import Cutoffs, Label
from ._schedules import ScheduleSpec  # schedules (issue 6)

# -- collected events (issue 6) -------------------------------------------------------------------
# The column types a collect-only source may declare, and the DuckDB type each one means.
COLUMN_TYPES = {
    "string": "VARCHAR",
    "varchar": "VARCHAR",
    "text": "VARCHAR",
    "integer": "BIGINT",
    "int": "BIGINT",
    "bigint": "BIGINT",
    "number": "DOUBLE",
    "float": "DOUBLE",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
}


def _check_collect(source: SourceSpec) -> None:
    """`collect: true` needs entity and time; `columns:` only on a collect-only source."""
    if source.collect and (not source.entity or not source.time):
        raise ValueError("a `collect: true` source needs `entity` and `time` columns")
    if source.columns is None:
        if source.path is None and source.url is None:
            raise ValueError(
                "a `collect: true` source without `path` or `url` needs `columns:` "
                "(name: type) to say what its events hold"
            )
        return
    if not source.collect or source.path is not None or source.url is not None:
        raise ValueError("`columns:` is only for a `collect: true` source without `path`/`url`")
    bad = [f"{k}: {v}" for k, v in source.columns.items() if v.lower() not in COLUMN_TYPES]
    if bad:
        raise ValueError(
            f"unknown column type(s) {', '.join(bad)}; use one of {', '.join(COLUMN_TYPES)}"
        )
    missing = [c for c in (source.entity, source.time) if c not in source.columns]
    if missing:
        raise ValueError(f"`columns:` must list the entity and time columns ({', '.join(missing)})")


# -- end of the collected events block --


class SourceSpec(_Model):
    """A table cycleml reads through DuckDB: a file (glob allowed) or a table in a SQL database."""

    path: str | None = None
    url: str | None = None
    table: str | None = None
    format: Literal["csv", "parquet", "json"] | None = None
    entity: str | None = None
    time: str | None = None
    # CSV text encoding (DuckDB's CSV reader decodes these itself); default UTF-8.
    encoding: Literal["utf-8", "utf-16", "latin-1"] | None = None
    valid_from: str | None = None  # with valid_to: rows valid in [valid_from, valid_to)
    valid_to: str | None = None
    description: str | None = None
    # -- collected events (issue 6): POST /v1/events adds rows to this source's view --
    collect: bool = False
    columns: dict[str, str] | None = None  # a collect-only source's column types

    @model_validator(mode="after")
    def _one_location(self) -> SourceSpec:
        if self.collect or self.columns is not None:  # collected events (issue 6)
            _check_collect(self)
            if self.path is None and self.url is None:
                return self
        if (self.path is None) == (self.url is None):
            raise ValueError(
                "give exactly one of `path` (a file or glob) or `url` + `table` (a database table)"
            )
        if self.url is not None and not self.table:
            raise ValueError("a database source needs `table` next to `url`")
        if self.path is not None and self.table is not None:
            raise ValueError("`table` only goes with `url`; a file source has just `path`")
        return self

    @property
    def kind(self) -> str:
        """``file``, ``sqlite``, ``postgres`` or ``collected`` (collect-only, no file or table)."""
        if self.path is not None:
            return "file"
        if self.url is None:
            return "collected"
        return "postgres" if self.url and self.url.startswith("postgres") else "sqlite"


MetricName = Literal[
    "recall",
    "precision",
    "f1",
    "roc_auc",
    "pr_auc",
    "accuracy",
    "mae",
    "rmse",
    "r2",
    "ndcg",
    "map",
]


class MetricSpec(_Model):
    """The success metric; for classification ``goal`` sets the decision threshold."""

    name: MetricName = "roc_auc"
    goal: float | None = Field(default=None, ge=0)
    # Ranking: the cut-off of NDCG@k / MAP@k (default 10).
    k: PositiveInt | None = None


class ProblemSpec(_Model):
    entity: str
    task: Literal["binary", "multiclass", "regression", "ranking", "forecast"]
    label: Label
    cutoffs: Cutoffs | None = None
    metric: MetricSpec = MetricSpec()
    features: list[Name] = Field(min_length=1)
    description: str | None = None


Algorithm = Literal["baseline", "logistic", "random_forest", "hist_gradient_boosting", "lightgbm"]


class TuneSpec(_Model):
    """Optuna tuning of the best candidates. ``timeout`` (seconds) bounds the whole training run;
    None picks one from the data size (at most 60 s). Tuning stops early after ``patience``
    trials without improvement, or after ``trials`` trials."""

    timeout: float | None = Field(default=None, gt=0)
    trials: PositiveInt | None = None
    patience: PositiveInt | None = 30
    top: int = Field(default=1, ge=0, le=3)


class TrainingSpec(_Model):
    split: Literal["time", "random", "stratified", "group"] = "time"
    test_size: float = Field(default=0.2, gt=0, lt=0.9)
    algorithms: list[Algorithm] = ["baseline", "logistic", "lightgbm"]
    seed: int = 0
    threads: PositiveInt = 2
    tune: TuneSpec = TuneSpec()
    cv_folds: int = Field(default=3, ge=2, le=10)
    segment: str | None = None


# -- experiments (issue 7) ------------------------------------------------------------------------
class ExperimentMetricSpec(_Model):
    """``column`` per unit; a ratio divides the per-unit sums of ``column`` and ``denominator``;
    ``covariate`` (a pre-period column) turns on CUPED."""

    type: Literal["proportion", "mean", "ratio"]
    column: str
    denominator: str | None = None
    covariate: str | None = None

    @model_validator(mode="after")
    def _parts(self) -> ExperimentMetricSpec:
        if self.type == "ratio" and not self.denominator:
            raise ValueError("a `ratio` metric needs `denominator` (and `column`, the numerator)")
        if self.type != "ratio" and self.denominator:
            raise ValueError("`denominator` is only for `type: ratio`")
        if self.type == "ratio" and self.covariate:
            raise ValueError("`covariate` (CUPED) is for proportion and mean metrics")
        return self


class ExperimentSpec(_Model):
    """An experiment whose units, variants and outcomes are rows of a source (``rows: unit``,
    one row per unit) or events summed per unit (``rows: event``)."""

    source: Name
    unit: str
    variant: str
    control: str
    metrics: dict[Name, ExperimentMetricSpec] = Field(min_length=1)
    primary: Name | None = None
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    weights: dict[str, float] | None = None
    rows: Literal["unit", "event"] = "unit"
    sequential: bool = True
    sequential_tuning: float = Field(default=5000, gt=0)

    @field_validator("weights")
    @classmethod
    def _weights(cls, weights: dict[str, float] | None) -> dict[str, float] | None:
        if weights is not None:
            if any(w < 0 for w in weights.values()):
                raise ValueError("`weights` cannot be negative")
            total = sum(weights.values())
            if abs(total - 1) > 1e-6:
                raise ValueError(f"`weights` must sum to 1 (they sum to {total:g})")
        return weights

    @model_validator(mode="after")
    def _primary(self) -> ExperimentSpec:
        if self.primary is not None and self.primary not in self.metrics:
            raise ValueError(f"`primary` {self.primary!r} is not one of `metrics`")
        if self.weights is not None and self.control not in self.weights:
            raise ValueError(f"`weights` has no weight for the control {self.control!r}")
        return self

    @property
    def primary_metric(self) -> str:
        return self.primary or next(iter(self.metrics))


# -- end of experiments (issue 7) ---------------------------------------------------------------


# -- monitoring (issue 8, drift): methods are those of cycleml.monitor's registry ----------------
DriftMethodName = Literal["ks", "chi2", "z", "psi", "jensenshannon", "wasserstein", "kl"]


class MonitoringSpec(_Model):
    """Drift checks (see docs/monitoring.md): thresholds, per-column methods, quality limits."""

    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    drift_share: float = Field(default=0.5, gt=0, le=1)
    methods: dict[str, DriftMethodName] = {}  # column -> method (default: automatic choice)
    thresholds: dict[str, float] = {}  # column or method name -> threshold
    small_sample: PositiveInt = 1000  # at most this many rows: tests; above: distances
    domain_classifier: bool = True
    domain_sample: PositiveInt = 4000  # rows per side the domain classifier trains on
    domain_auc: float = Field(default=0.55, gt=0.5, lt=1)
    missing_rate_jump: float = Field(default=0.05, gt=0, le=1)
    out_of_range_share: float = Field(default=0.01, gt=0, le=1)
    min_chunk_rows: PositiveInt = 30
    chunk: Literal["day", "week"] | None = None  # chunk the current data by its time


# -- end monitoring ------------------------------------------------------------------------------


class DaskSpec(_Model):
    """The Dask cluster of ``engine: dask``: ``address`` of a running scheduler, or a LocalCluster
    on 127.0.0.1 with ``n_workers`` x ``threads_per_worker`` started for the job. ``partitions``
    (default: one per worker thread) is how many entity shards the spine is cut into."""

    address: str | None = None
    n_workers: PositiveInt = 2
    threads_per_worker: PositiveInt = 1
    partitions: PositiveInt | None = None


class Spec(_Model):
    spec_version: Literal[1]
    name: Name
    store: str = "sqlite:///.cycleml/store.db"
    sources: dict[Name, SourceSpec] = {}
    problems: dict[Name, ProblemSpec] = {}
    features: dict[Name, FeatureGroupSpec] = {}
    training: TrainingSpec = TrainingSpec()
    experiments: dict[Name, ExperimentSpec] = {}
    cleaning: list[CleaningStep] = []
    monitoring: MonitoringSpec = MonitoringSpec()
    engine: Literal["duckdb", "dask"] = "duckdb"
    dask: DaskSpec = DaskSpec()
    # -- schedules (issue 6): jobs `cycleml schedule run` runs on cron --
    schedules: dict[Name, ScheduleSpec] = {}

    @field_validator(
        "sources",
        "problems",
        "features",
        "training",
        "experiments",
        "cleaning",
        "monitoring",
        "schedules",
        mode="before",
    )
    @classmethod
    def _empty_section(cls, value, info):
        """A section written with nothing under it (``sources:``) is YAML null: read it as empty."""
        if value is None:
            return [] if info.field_name == "cleaning" else {}
        return value
