"""The pydantic models that cycleml.yaml loads into (``spec_version: 1``).

Every model is frozen and forbids unknown keys. Cross-references between sections (a problem's
feature groups, a feature group's source) are checked in :mod:`cycleml.spec._checks` so that all
problems are reported at once.
"""

from __future__ import annotations

from datetime import date  # served experiments (issue 7)
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
    """Over a source: ``column`` per unit; a ratio divides the per-unit sums of ``column`` and
    ``denominator``; ``covariate`` (a pre-period column) turns on CUPED. Served (over events):
    ``event`` (an event type), ``days`` (a window from the unit's first exposure), ``value`` (a
    column summed instead of counting events) and, for a ratio, ``denominator`` (an event type);
    ``cuped: false`` leaves the metric out of the experiment's ``cuped``.
    ``higher_is_better: false`` for metrics where a rise is bad (the decision and guardrails read
    it)."""

    type: Literal["proportion", "mean", "ratio", "conversion"]
    column: str | None = None
    denominator: str | None = None
    covariate: str | None = None
    event: str | None = None
    value: str | None = None
    days: float | None = Field(default=None, gt=0)
    higher_is_better: bool = True
    cuped: bool | None = None  # served: None follows the experiment's `cuped`, false opts out

    @model_validator(mode="after")
    def _parts(self) -> ExperimentMetricSpec:
        if self.type == "ratio" and not self.denominator:
            raise ValueError("a `ratio` metric needs `denominator` (and `column`, the numerator)")
        if self.type != "ratio" and self.denominator:
            raise ValueError("`denominator` is only for `type: ratio`")
        if self.type == "ratio" and self.covariate:
            raise ValueError("`covariate` (CUPED) is for proportion and mean metrics")
        if self.type == "conversion" and (self.event is None or self.days is None):
            raise ValueError(
                "a `conversion` metric needs `event` (an event type) and `days` (the window "
                "after the first exposure), e.g. {type: conversion, event: purchase, days: 7}"
            )
        if self.type == "conversion" and self.value:
            raise ValueError("`value` is for `mean` and `ratio` metrics, not `conversion`")
        return self

    @property
    def served(self) -> bool:
        """Defined over events (``event``) rather than a source's columns."""
        return self.event is not None


class VariantSpec(_Model):
    """A served variant: its share of units and the behaviour it gets. ``model``: ``baseline``
    (no model: the original order for rank, no score for predict), ``production`` (the
    problem's production model at request time) or a model version number."""

    weight: float = Field(ge=0, le=1)
    model: Literal["baseline", "production"] | PositiveInt = "baseline"


class CupedSpec(_Model):
    """CUPED for a served experiment: each metric's own value over the ``days`` before each
    unit's first exposure is its covariate (default 14 days, GrowthBook's lookback)."""

    days: float = Field(default=14, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value):
        """``cuped: true`` means 14 days."""
        return {} if value is True else value


class ExperimentSpec(_Model):
    """An experiment analysed over a source (``source:``: units, variants and outcomes are rows,
    one per unit with ``rows: unit`` or events summed per unit with ``rows: event``), or served
    (``problem:``: cycleml assigns units to ``variants``, answers predict/rank requests with the
    variant's behaviour, logs exposures, and counts outcomes in the ``events`` source)."""

    source: Name | None = None
    problem: Name | None = None
    unit: str | None = None
    variant: str | None = None
    control: str
    metrics: dict[Name, ExperimentMetricSpec] = Field(min_length=1)
    primary: Name | None = None
    guardrails: list[Name] = []
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    weights: dict[str, float] | None = None
    rows: Literal["unit", "event"] = "unit"
    sequential: bool = True
    sequential_tuning: float = Field(default=5000, gt=0)
    # served experiments
    variants: dict[str, VariantSpec] | None = None
    start: date | None = None
    end: date | None = None
    salt: str | None = None
    surface: str | None = None
    events: Name | None = None
    event_column: str = "event_type"
    cuped: CupedSpec | None = None  # served: a pre-period covariate per metric (default off)

    @field_validator("cuped", mode="before")
    @classmethod
    def _cuped_off(cls, value):
        return None if value is False else value

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
        if (self.source is None) == (self.problem is None):
            raise ValueError(
                "give exactly one of `source:` (an experiment analysed over a source's rows) or "
                "`problem:` (a served experiment splitting that problem's predict/rank requests)"
                + ("; this one has both" if self.source is not None else "")
            )
        if self.primary is not None and self.primary not in self.metrics:
            raise ValueError(f"`primary` {self.primary!r} is not one of `metrics`")
        unknown = [g for g in self.guardrails if g not in self.metrics]
        if unknown:
            raise ValueError(f"`guardrails` {', '.join(unknown)} not among `metrics`")
        if self.primary_metric in self.guardrails:
            raise ValueError(f"the primary metric {self.primary_metric!r} cannot be a guardrail")
        if self.problem is not None:
            _check_served(self)
            return self
        if self.unit is None or self.variant is None:
            raise ValueError("an experiment over a source needs `unit:` and `variant:` columns")
        extra = [
            key
            for key in ("variants", "start", "end", "salt", "surface", "events", "cuped")
            if getattr(self, key) is not None
        ]
        if extra:
            raise ValueError(
                f"{', '.join(f'`{k}`' for k in extra)} belong to served experiments "
                "(`problem:`), not to one over a `source:`"
            )
        for name, metric in self.metrics.items():
            if metric.cuped is not None:
                raise ValueError(
                    f"metric {name!r}: `cuped:` is for served experiments; over a source, name "
                    "the pre-period column in `covariate:`"
                )
            if metric.column is None or metric.served or metric.type == "conversion":
                raise ValueError(
                    f"metric {name!r}: an experiment over a source takes `column:` metrics of "
                    "type proportion, mean or ratio (`event`, `value`, `days` and `conversion` "
                    "are for served experiments)"
                )
        if self.weights is not None and self.control not in self.weights:
            raise ValueError(f"`weights` has no weight for the control {self.control!r}")
        return self

    @property
    def primary_metric(self) -> str:
        return self.primary or next(iter(self.metrics))

    @property
    def served(self) -> bool:
        return self.problem is not None

    @property
    def shares(self) -> dict[str, float] | None:
        """The expected share of units per variant (``weights``, or the served variants')."""
        if self.variants is not None:
            return {name: v.weight for name, v in self.variants.items()}
        return self.weights


def _check_served(exp: ExperimentSpec) -> None:
    """The keys a served experiment (``problem:``) needs and refuses."""
    if exp.variant is not None or exp.weights is not None:
        raise ValueError(
            "a served experiment sets each variant's share in `variants: {name: {weight, "
            "model}}`; `variant:` and `weights:` are for experiments over a source"
        )
    if exp.rows != "unit":
        raise ValueError("`rows:` is for experiments over a source")
    if not exp.variants or len(exp.variants) < 2:
        raise ValueError("a served experiment needs `variants:` (the control and a treatment)")
    if exp.control not in exp.variants:
        raise ValueError(
            f"`control` {exp.control!r} is not one of `variants` ({', '.join(exp.variants)})"
        )
    total = sum(v.weight for v in exp.variants.values())
    if abs(total - 1) > 1e-6:
        raise ValueError(f"the `variants` weights must sum to 1 (they sum to {total:g})")
    if exp.events is None:
        raise ValueError("a served experiment needs `events:`, the source its outcomes come from")
    if exp.start is not None and exp.end is not None and exp.end < exp.start:
        raise ValueError(f"`end` ({exp.end}) is before `start` ({exp.start})")
    for name, metric in exp.metrics.items():
        if not metric.served or metric.column is not None or metric.covariate is not None:
            raise ValueError(
                f"metric {name!r}: a served experiment's metrics are over events: `event:` (an "
                "event type), optional `value:` and `days:`; `column:` and `covariate:` are for "
                "experiments over a source"
            )
        if metric.type == "proportion":
            raise ValueError(
                f"metric {name!r}: use `type: conversion` (an event within `days` of the first "
                "exposure) in a served experiment"
            )


# -- end of experiments (issue 7) ---------------------------------------------------------------


# -- monitoring (issue 8, drift): methods are those of cycleml.monitor's registry ----------------
DriftMethodName = Literal["ks", "chi2", "z", "psi", "jensenshannon", "wasserstein", "kl"]


# -- alerts, webhook, retrain (issue 8, "alerts"): read by cycleml.monitor._alerts/_retrain --
class AlertWindow(_Model):
    """Alert when at least ``breaches`` of the latest ``chunks`` values breach (default: all)."""

    chunks: PositiveInt
    breaches: PositiveInt | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value):
        """``window: 3`` (3 of 3) or ``window: "2 of 3"``."""
        if isinstance(value, int) and not isinstance(value, bool):
            return {"chunks": value}
        if isinstance(value, str):
            breaches, sep, chunks = value.partition(" of ")
            try:
                return {"breaches": int(breaches), "chunks": int(chunks)} if sep else value
            except ValueError:
                raise ValueError(
                    f"window {value!r} is not 'N of M' (for example '2 of 3')"
                ) from None
        return value

    @model_validator(mode="after")
    def _fits(self) -> AlertWindow:
        if self.breaches is not None and self.breaches > self.chunks:
            raise ValueError(f"window: {self.breaches} breaches cannot be more than {self.chunks}")
        return self

    @property
    def needed(self) -> int:
        return self.breaches or self.chunks


class AlertRule(_Model):
    """Alert when ``metric`` (a path into the monitor result) is above ``above`` or below
    ``below``; ``problems`` limits the rule to those problems (default: all)."""

    metric: str = Field(min_length=1)
    above: float | None = None
    below: float | None = None
    window: AlertWindow | None = None
    severity: Literal["warning", "critical"] = "warning"
    problems: list[Name] | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _bound(self) -> AlertRule:
        if self.above is None and self.below is None:
            raise ValueError("an alert rule needs `above:` or `below:` (or both) as its threshold")
        if self.above is not None and self.below is not None and self.below > self.above:
            raise ValueError(
                f"`below: {self.below}` is above `above: {self.above}`: every value would alert"
            )
        return self


class WebhookSpec(_Model):
    """Each alert is POSTed as JSON to ``url``; ``secret_env`` names an environment variable
    whose value signs the body (HMAC-SHA256 in ``X-CycleML-Signature``)."""

    url: str = Field(pattern=r"^https?://[^\s/]+")
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    secret_env: str | None = None
    max_attempts: PositiveInt = 10


class RetrainSpec(_Model):
    """``--retrain``: the challenger is promoted when it beats the champion on the problem's
    metric by more than ``margin``; ``budget`` (seconds) bounds its training."""

    margin: float = Field(default=0.0, ge=0)
    budget: float | None = Field(default=None, gt=0)


# -- end of alerts, webhook, retrain --


# -- performance over time (issue 8, monperf) --
class PerformanceSpec(_Model):
    """``monitoring.performance``: realised and estimated (CBPE) performance per chunk."""

    tolerance: float = Field(default=0.05, ge=0)  # a drop beyond this from training is flagged
    min_labels: PositiveInt = 30  # fewer labelled rows in a chunk: its realised part is skipped
    max_ece: float = Field(default=0.05, gt=0, lt=1)  # CBPE only when test ECE is at most this
    estimate: bool = True  # CBPE for calibrated binary classifiers
    interval: float = Field(default=0.95, gt=0, lt=1)  # the estimate's interval level


# -- end of performance over time --


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
    # chunk the current data by its time, or (prediction log) every N rows
    chunk: Literal["day", "week"] | PositiveInt | None = None
    # -- alerts (issue 8): rules by name, the webhook, the retrain loop --
    rules: dict[Name, AlertRule] = {}
    webhook: WebhookSpec | None = None
    retrain: RetrainSpec = RetrainSpec()
    # -- performance over time (monperf) --
    performance: PerformanceSpec = PerformanceSpec()


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
