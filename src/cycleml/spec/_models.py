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

    @model_validator(mode="after")
    def _one_location(self) -> SourceSpec:
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
        """``file``, ``sqlite`` or ``postgres``."""
        if self.path is not None:
            return "file"
        return "postgres" if self.url and self.url.startswith("postgres") else "sqlite"


MetricName = Literal[
    "recall", "precision", "f1", "roc_auc", "pr_auc", "accuracy", "mae", "rmse", "r2"
]


class MetricSpec(_Model):
    """The success metric; for classification ``goal`` sets the decision threshold."""

    name: MetricName = "roc_auc"
    goal: float | None = Field(default=None, ge=0)


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


class ExperimentMetricSpec(_Model):
    type: Literal["proportion", "mean"]
    column: str


class ExperimentSpec(_Model):
    """An experiment whose units, variants and outcomes are rows of a source."""

    source: Name
    unit: str
    variant: str
    control: str
    metrics: dict[Name, ExperimentMetricSpec] = Field(min_length=1)
    primary: Name | None = None
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    weights: dict[str, float] | None = None

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
        return self

    @property
    def primary_metric(self) -> str:
        return self.primary or next(iter(self.metrics))


class MonitoringSpec(_Model):
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    drift_share: float = Field(default=0.5, gt=0, le=1)


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

    @field_validator(
        "sources",
        "problems",
        "features",
        "training",
        "experiments",
        "cleaning",
        "monitoring",
        mode="before",
    )
    @classmethod
    def _empty_section(cls, value, info):
        """A section written with nothing under it (``sources:``) is YAML null: read it as empty."""
        if value is None:
            return [] if info.field_name == "cleaning" else {}
        return value
