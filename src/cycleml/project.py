"""``cycleml.Project``: the Python API every face (CLI, REST, dashboard) is a thin layer over."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ._validate import ValidationReport, validate_project
from .batch import PredictionRun, score_batch
from .data import SourceInfo, SourceSet, profile_source
from .errors import NotFoundError
from .experiments import analyze, sufficient_stats
from .experiments import plan as plan_experiment
from .features import (
    DatasetVersion,
    FeatureSet,
    build_dataset,
    get_dataset,
    latest_dataset,
    load_dataset,
)
from .features._labels import label_horizon_days
from .registry import ModelBundle, ModelVersion, Registry
from .spec import Spec, load_spec, spec_hash
from .store import ArtifactStore, Store, utcnow
from .store.tables import experiment_analyses, profiles
from .suggest import AppliedSuggestion, SuggestionReport
from .train import TrainResult, train_candidates

Progress = Callable[[str], None]

STATE_DIR = ".cycleml"


@dataclass
class TrainOutcome:
    """A trained and registered model version, with what training found."""

    model: ModelVersion
    dataset: DatasetVersion
    result: TrainResult
    report: Path | None = None

    def to_dict(self) -> dict:
        return {
            "model": self.model.name,
            "model_id": self.model.id,
            "stage": self.model.stage,
            "algorithm": self.model.algorithm,
            "dataset_version": self.dataset.id,
            "threshold": self.result.threshold,
            "threshold_note": self.result.threshold_note,
            "classes": self.result.classes,  # multiclass: the class values
            "metrics": self.result.metrics,
            "leaderboard": [
                {
                    "algorithm": b["algorithm"],
                    "chosen": b["chosen"],
                    "tuned": b.get("tuned", False),
                    "valid": _headline(b["valid"]),
                    "test": _headline(b["test"]),
                }
                for b in self.result.leaderboard
            ],
            "split": self.result.split,
            "tuning": self.result.tuning,
            "budget": self.result.budget,
            "dropped_features": self.result.dropped,
            "segments": self.result.segments,
            "suggestions": self.result.suggestions,
            "charts": self.result.charts,
            "notes": self.result.notes,
            "seconds": round(self.result.seconds, 2),
            "report": str(self.report) if self.report else None,
        }


def _short(value) -> str:
    return "—" if value is None else f"{value:.4f}"


def _headline(metrics: dict) -> dict:
    keys = ("roc_auc", "pr_auc", "precision", "recall", "f1", "log_loss", "brier")
    keys += ("mae", "rmse", "r2", "mape")
    # multiclass and ranking (train task)
    keys += ("accuracy", "f1_macro", "f1_weighted", "roc_auc_ovr")
    keys += tuple(k for k in metrics if k.startswith(("ndcg@", "map@")))
    return {k: metrics[k] for k in keys if k in metrics}


class Project:
    """A cycleml project: a folder with ``cycleml.yaml`` and the state kept in ``.cycleml/``.

    The spec is read and validated when the project is opened; nothing is written to the store
    until a command needs it."""

    def __init__(self, path: str | Path = ".") -> None:
        self.path = Path(path).resolve()
        self.spec: Spec = load_spec(self.path)

    # -- state ---------------------------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        return self.path / STATE_DIR

    @cached_property
    def store(self) -> Store:
        return Store(self.spec.store, self.path)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        return ArtifactStore(self.state_dir / "artifacts", self.store)

    @cached_property
    def registry(self) -> Registry:
        return Registry(self.store, self.artifacts)

    @cached_property
    def model_cache(self):
        from .serve import ModelCache

        return ModelCache(self.registry)

    @property
    def reports_dir(self) -> Path:
        return self.state_dir / "reports"

    def open_sources(self) -> SourceSet:
        return SourceSet(self.spec, self.path, threads=self.spec.training.threads)

    def close(self) -> None:
        if "_predict_sources" in self.__dict__:  # the sources predict() kept open
            self.__dict__.pop("_predict_sources").close()
        if "store" in self.__dict__:
            self.store.dispose()

    # -- define and collect ------------------------------------------------------------------

    def validate(self) -> ValidationReport:
        """Check the spec against the data and the store: every source readable, every
        declared column present, every feature group's columns found, the store reachable.
        Raises SpecError listing all problems; writes nothing."""
        return validate_project(self.spec, self.path, self.store)

    def sources(self) -> list[SourceInfo]:
        with self.open_sources() as sources:
            return [sources.describe(name) for name in self.spec.sources]

    def profile(self, source: str | None = None, html: Path | None = None) -> list[dict]:
        """Profile sources (all by default; see :mod:`cycleml.data._profile`) with their cleaning
        suggestions; write each report to ``.cycleml/reports/profile-<source>.html`` (and all of
        them on one page at ``html``), then store the profiles in one transaction."""
        from .data._profile import profile_with_suggestions
        from .reports import profile_report

        names = [source] if source else list(self.spec.sources)
        with self.open_sources() as sources:
            out = [profile_with_suggestions(sources, name) for name in names]
        for result in out:
            profile_report(self.reports_dir / f"profile-{result['source']}.html", [result])
        if html is not None:
            profile_report(html, out)
        with self.store.begin() as conn:
            for result in out:
                conn.execute(
                    profiles.insert().values(
                        source=result["source"], result=result, created_at=utcnow()
                    )
                )
        return out

    def suggest(self) -> SuggestionReport:
        """The problems the sources can support (a :class:`cycleml.suggest.SuggestionReport`):
        ranked and numbered from 1, each with evidence, readiness, what is missing and its spec
        block. Reads only."""
        from .suggest import suggest_problems

        return suggest_problems(self.spec, self.path, threads=self.spec.training.threads)

    def apply_suggestion(self, n: int | str) -> AppliedSuggestion:
        """Add suggestion ``n`` (its number, or its name) and any new feature groups to
        cycleml.yaml; refuses a name or label already there. Returns what was written."""
        from .suggest import apply_suggestion, pick

        applied = apply_suggestion(self.path, pick(self.suggest(), n))
        self.spec = load_spec(self.path)
        return applied

    def clean_suggestions(self, source: str | None = None) -> list[dict]:
        """Cleaning suggestions for one source (default: all), each with an id, title,
        evidence, the step `apply_cleaning` would record, and a preview. Reads only."""
        from .data import suggest_cleaning

        names = [source] if source else list(self.spec.sources)
        out: list[dict] = []
        with self.open_sources() as sources:
            for name in names:
                # (an unknown source raises SourceError with the known ones)
                result = profile_source(sources, name)
                if result.get("truncated") and not source:
                    continue  # too wide for suggestions: `clean suggest NAME` says why
                out.extend(s.to_dict() for s in suggest_cleaning(result, sources))
        return out

    def apply_cleaning(self, step_id: str, fingerprint: str | None = None) -> dict:
        """Record suggestion ``step_id``'s step under ``cleaning:`` in cycleml.yaml (the source
        data is never modified). The suggestion is checked against the current data first; the
        same id twice is a no-op. Refused when the source's data differ from those it was
        suggested for: ``fingerprint`` (a suggestion's), else the latest stored profile's."""
        from .data._cleaning_apply import find_suggestion, record_step, stored_fingerprint
        from .errors import RequestError

        if any(step.id == step_id for step in self.spec.cleaning):
            return {"id": step_id, "applied": False, "message": f"{step_id} is already recorded"}
        profiled_at = None
        if fingerprint is None and step_id.partition(".")[0] in self.spec.sources:
            fingerprint, profiled_at = stored_fingerprint(self.store, step_id.partition(".")[0])
        suggestion = find_suggestion(
            self.spec, self.path, step_id, expected=fingerprint, profiled_at=profiled_at
        )
        if suggestion.action is None:
            raise RequestError(
                f"{step_id} is informational: there is no step to record",
                hint=suggestion.note or "act on it by editing cycleml.yaml",
            )
        self.spec = record_step(self.path, suggestion.action)
        return {
            "id": step_id,
            "applied": True,
            "step": suggestion.action,
            "applies_in": suggestion.where,
            "message": f"recorded {step_id} under `cleaning:` in cycleml.yaml",
        }

    # -- prepare -------------------------------------------------------------------------------

    def features(self, problem: str, sources: SourceSet | None = None) -> FeatureSet:
        """The problem's feature definition; ``.compute(entities, as_of)`` is the one function
        training, batch scoring, online serving and monitoring use. Use it in a ``with`` block
        (or call ``.close()``) to release its DuckDB connection."""
        self._problem(problem)
        return FeatureSet(self.spec, problem, sources or self.open_sources())

    def build_dataset(
        self, problem: str, *, force: bool = False, engine: str | None = None
    ) -> DatasetVersion:
        """Build (or reuse) the training set. ``engine`` ("duckdb" or "dask") overrides the
        spec's ``engine`` for this build; the result is the same either way."""
        from .features._engine import check_engine

        self._problem(problem)
        engine = check_engine(engine) or self.spec.engine
        with self.open_sources() as sources:
            return build_dataset(
                FeatureSet(self.spec, problem, sources, engine=engine),
                self.store,
                self.artifacts,
                force=force,
            )

    def latest_dataset(self, problem: str) -> DatasetVersion | None:
        return latest_dataset(self.store, problem)

    # -- train ---------------------------------------------------------------------------------

    def train(
        self,
        problem: str,
        budget: float | None = None,
        *,
        progress: Progress | None = None,
        on_trial: Callable[[dict], None] | None = None,
    ) -> TrainOutcome:
        """Train, tune within ``budget`` seconds (default: ``training.tune.timeout``, else
        picked from the data size), evaluate, and register the best model as a version."""
        say = progress or (lambda _m: None)
        say("building the dataset")
        dataset = self.build_dataset(problem)
        frame = load_dataset(dataset, self.artifacts)
        from .features import FeatureColumn

        columns = [FeatureColumn(f["name"], f["group"], f["kind"]) for f in dataset.features]
        spec_problem = self.spec.problems[problem]
        from .data._learned import resolve_learned

        # recorded learned cleaning steps (impute/encode/log) go into the pipeline (issue 3)
        result = train_candidates(
            frame,
            columns,
            spec_problem,
            self.spec.training,
            horizon_days=label_horizon_days(spec_problem),
            progress=say,
            budget=budget,
            on_trial=on_trial,
            cleaning=resolve_learned(self.spec, columns),
        )
        bundle = ModelBundle(
            problem=problem,
            task=result.task,
            algorithm=result.algorithm,
            pipeline=result.pipeline,
            # ranking adds the item column, forecast the entity column (train_candidates)
            columns=result.columns or columns,
            threshold=result.threshold,
            entity=spec_problem.entity,
            metadata={"dataset_version": dataset.id, "spec_hash": spec_hash(self.spec)},
            classes=result.classes,
        )
        say("registering the model version")
        # -- dashboard: the chosen candidate's row keeps its evaluation charts (ROC/PR curves,
        # residuals, importance, learning curve), so /models and /problems read them stored --
        import json

        keep = ("curves", "residuals", "importance", "learning_curve")
        evidence = {k: v for k, v in result.charts.items() if k in keep and v}
        plain = lambda v: v.tolist() if hasattr(v, "tolist") else str(v)  # noqa: E731
        evidence = json.loads(json.dumps(evidence, default=plain))
        for entry in result.leaderboard:
            if entry.get("chosen"):
                entry["charts"] = evidence
        # -- end of the dashboard block --
        model = self.registry.register(problem, dataset.id, result, bundle)
        outcome = TrainOutcome(model, dataset, result)
        from .reports._stages import train_report

        outcome.report = train_report(self.reports_dir / f"{model.name}.html", outcome)
        return outcome

    def models(self, problem: str | None = None) -> list[ModelVersion]:
        if problem:
            self._problem(problem)
        return self.registry.list(problem)

    def model(self, problem: str, version: int | None = None) -> ModelVersion:
        self._problem(problem)
        return self.registry.get(problem, version)

    def promote(
        self, problem: str, version: int, stage: str = "production", *, force: bool = False
    ) -> ModelVersion:
        """Move a version to ``stage``. To production only if it is at least as good as the
        current champion on the same test rows (see :meth:`compare`), unless ``force``."""
        self._problem(problem)
        if stage == "production" and not force:
            self.registry.get(problem, version)  # NotFoundError first
            try:
                champion = self.registry.get(problem)
            except NotFoundError:
                champion = None
            if champion is not None and champion.version != version:
                result = self.compare(problem, version, champion.version)
                challenger, current = result["versions"]
                if challenger["value"] is None or (
                    current["value"] is not None
                    and (
                        challenger["value"] < current["value"]
                        if result["higher_is_better"]
                        else challenger["value"] > current["value"]
                    )
                ):
                    from .errors import ModelError

                    raise ModelError(
                        f"{challenger['model']} does not beat the production model "
                        f"{current['model']}: {result['metric']} {_short(challenger['value'])} vs "
                        f"{_short(current['value'])} on {result['rows']} test rows of dataset "
                        f"{result['dataset_version']}",
                        hint=f"keep {current['model']} in production, or promote anyway with "
                        "--force (Python: force=True)",
                    )
        return self.registry.promote(problem, version, stage)

    def compare(self, problem: str, v1: int, v2: int) -> dict:
        """Both versions' metrics on the same test rows: the test split of the newer of their
        two datasets (the same split training made), so neither model has seen those rows
        unless the older model's dataset reaches past the newer one's test start."""
        from .registry._compare import score_on
        from .train import prepare_training_frame, ranking_key, selection_key, split_for

        self._problem(problem)
        pair = [self.registry.get(problem, v) for v in (v1, v2)]
        datasets = [get_dataset(self.store, mv.dataset_version_id) for mv in pair]
        if any(d is None for d in datasets):
            raise NotFoundError(
                "a dataset version of these models is missing from the store",
                hint="compare versions whose datasets are still recorded",
            )
        newest = max(datasets, key=lambda d: d.created_at)
        frame = load_dataset(newest, self.artifacts)
        spec_problem = self.spec.problems[problem]
        # the test rows training made (ranking: whole groups by time; see train.split_for)
        frame, _ = prepare_training_frame(frame, spec_problem)
        split = split_for(frame, spec_problem, self.spec.training, label_horizon_days(spec_problem))
        test = frame.iloc[split.test]
        key, higher = selection_key(spec_problem.task, spec_problem.metric)
        versions = score_on(
            [(mv, self.registry.load(mv)) for mv in pair],
            test,
            key=key,
            higher=higher,
            k=ranking_key(spec_problem.metric)[1],
        )
        same = datasets[0].id == datasets[1].id
        return {
            "problem": problem,
            "dataset_version": newest.id,
            "rows": int(len(test)),
            "split": split.method,
            "basis": (
                "the test split of the dataset both versions were trained on"
                if same
                else "the test split of the newer dataset version "
                f"({newest.id}); the versions were trained on different datasets"
            ),
            "metric": key,
            "higher_is_better": higher,
            "versions": versions,
        }

    def export(self, problem: str, version: int, to: str | Path, *, format: str = "mlflow") -> Path:
        """Write a model version in another ecosystem's format (``mlflow``: a pyfunc model
        directory, written without needing MLflow installed)."""
        from .errors import RequestError
        from .registry._mlflow import export_mlflow

        if format != "mlflow":
            raise RequestError(f"unknown export format {format!r}", hint="formats: mlflow")
        mv = self.model(problem, version)
        path = self.artifacts.verified_path(mv.artifact_sha256)
        bundle = self.registry.load(mv)
        meta = {
            "model": mv.name,
            "dataset_version": mv.dataset_version_id,
            "artifact_sha256": mv.artifact_sha256,
            "code_version": mv.code_version,
            "metrics": {k: v for k, v in mv.metrics.items() if isinstance(v, int | float)},
        }
        return export_mlflow(path, bundle, mv.name, Path(to), metadata=meta)

    def load_model(
        self, problem: str, version: int | None = None
    ) -> tuple[ModelVersion, ModelBundle]:
        mv = self.model(problem, version)
        return mv, self.registry.load(mv)

    # -- deploy --------------------------------------------------------------------------------

    # -- batch predictions (the "batch" engineer's block) --
    def predict_batch(
        self,
        problem: str,
        *,
        as_of: datetime | None = None,
        engine: str | None = None,
        to: str | None = None,
        chunk_rows: int | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> PredictionRun:
        """Score every eligible entity as of ``as_of`` with the production model and write the
        rows to ``to`` (``sqlite:///p.db#table``, ``postgresql://...#table``,
        ``duckdb:///p.db#table`` or a ``.parquet`` folder; default: the store's predictions
        table). ``engine="dask"`` computes features and scores on the Dask cluster (overriding
        the spec's ``engine``). ``progress(phase, done, total)`` hears about long runs."""
        from .batch import DEFAULT_CHUNK_ROWS, parse_target
        from .features._engine import check_engine

        engine = check_engine(engine) or self.spec.engine
        self._problem(problem)
        target = parse_target(to, self.path) if to else None
        mv, bundle = self.load_model(problem)
        with self.open_sources() as sources:
            fs = FeatureSet(self.spec, problem, sources, engine=engine)
            return score_batch(
                fs,
                mv,
                bundle,
                self.store,
                self.artifacts,
                as_of=as_of or utcnow(),
                target=target,
                chunk_rows=chunk_rows or DEFAULT_CHUNK_ROWS,
                progress=progress,
            )

    # -- end of the batch block --

    def predict(
        self,
        problem: str,
        *,
        records: list[dict] | None = None,
        entities: list[str] | None = None,
        as_of: datetime | None = None,
    ) -> dict:
        """Online prediction in-process: the answer POST /v1/models/{problem}/predict gives
        (entities without ``as_of`` read the online store when the problem is materialized).
        The prediction-log rows are written before it returns. The sources stay open between
        calls (thread-safe; reopened every 30 s) until :meth:`close`."""
        from .serve import predict_online

        self._problem(problem)
        shared = self._predict_sources
        return predict_online(
            self.model_cache,
            shared.featureset(problem),
            self.store,
            records=records,
            entities=entities,
            as_of=as_of,
            lock=shared.lock,
        )

    @cached_property
    def _predict_sources(self):
        """The sources :meth:`predict` keeps open (closed by :meth:`close`)."""
        from .serve._online import SharedSources

        return SharedSources(self.spec, self.path)

    def app(self, *, token: str | None = None, limits=None):
        """The FastAPI application serving this project. ``token`` defaults to
        ``$CYCLEML_API_TOKEN`` (an empty string: none; ``$CYCLEML_API_TOKENS`` adds scoped
        tokens); ``limits`` (:class:`cycleml.serve.Limits`) defaults to the environment's."""
        from .serve import create_app

        return create_app(self, token=token, limits=limits)

    # -- collect: events, feedback, the online store (issue 6) ---------------------------------

    def materialize(
        self,
        problem: str,
        as_of: datetime | None = None,
        *,
        chunk_rows: int | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> dict:
        """Write the latest feature vector of every eligible entity (as of ``as_of``, default
        now) into the store's online store, replacing the problem's rows in one transaction;
        entity predictions then read them with one indexed lookup."""
        from .serve._online_store import DEFAULT_CHUNK_ROWS, materialize

        return materialize(
            self, problem, as_of, chunk_rows=chunk_rows or DEFAULT_CHUNK_ROWS, progress=progress
        )

    def track(self, source: str, events: list[dict] | dict) -> dict:
        """Store product events in a ``collect: true`` source (what POST /v1/events does):
        checked against its columns, idempotent by ``event_id``, in one transaction."""
        return self._collector.track_events(source, events)

    def feedback(self, problem: str, items: list[dict] | dict) -> dict:
        """Store ground-truth labels for logged predictions (what POST /v1/feedback does): each
        item names ``request_id`` (and ``id``) or ``entity``, with ``label``."""
        return self._collector.record_feedback(
            problem, [items] if isinstance(items, dict) else items
        )

    @cached_property
    def _collector(self):
        from .serve._collect import Collector

        return Collector(self)  # caches each source's columns

    # -- end of the collect block --

    # -- experiment ----------------------------------------------------------------------------

    def analyze_experiment(self, name: str, *, cache: bool = True) -> dict:
        """Analyse experiment ``name`` (see docs/experiments.md) and store the result.
        ``cache=False`` reads a served experiment's exposures from the store, not through the
        exposures cache in ``.cycleml/cache/exposures/`` (the results are the same)."""
        if name not in self.spec.experiments:
            raise NotFoundError(
                f"unknown experiment {name!r}",
                hint=f"experiments in cycleml.yaml: {', '.join(self.spec.experiments) or '(none)'}",
            )
        exp = self.spec.experiments[name]
        if exp.served:  # exposures (store) joined with the events source
            from .experiments._exposure_cache import exposures_for_analysis
            from .experiments._served import check_models, served_stats

            check_models(self.registry, exp, name, production=False)
            with (
                exposures_for_analysis(self.store, name, self.state_dir, cache=cache) as exposed,
                self.open_sources() as sources,
            ):
                groups = served_stats(sources, exp, name, exposed)
        else:
            with self.open_sources() as sources:
                groups = sufficient_stats(sources, exp)
        result = analyze(exp, name, groups)
        with self.store.begin() as conn:
            conn.execute(
                experiment_analyses.insert().values(
                    experiment=name,
                    spec_hash=spec_hash(self.spec),
                    result=result,
                    created_at=utcnow(),
                )
            )
        return result

    def plan_experiment(
        self,
        *,
        baseline: float,
        mde: float | None = None,
        units: int | None = None,
        relative: bool = False,
        alpha: float | None = None,
        power: float = 0.8,
        weights: dict[str, float] | list[float] | None = None,
        std: float | None = None,
        experiment: str | None = None,
    ) -> dict:
        """Units needed for ``mde``, or the MDE of ``units``; alpha and weights default to
        ``experiment``'s in cycleml.yaml when it is named (see docs/experiments.md)."""
        if experiment is not None:
            if experiment not in self.spec.experiments:
                raise NotFoundError(
                    f"unknown experiment {experiment!r}",
                    hint="experiments in cycleml.yaml: "
                    f"{', '.join(self.spec.experiments) or '(none)'}",
                )
            exp = self.spec.experiments[experiment]
            alpha = exp.alpha if alpha is None else alpha
            shares = exp.shares
            if weights is None and shares:
                weights = {exp.control: shares[exp.control]} | {
                    k: w for k, w in shares.items() if k != exp.control
                }
        return plan_experiment(
            baseline=baseline,
            mde=mde,
            units=units,
            relative=relative,
            alpha=0.05 if alpha is None else alpha,
            power=power,
            weights=weights,
            std=std,
        )

    def assign_experiment(self, name: str, unit: str, *, log: bool = True) -> dict:
        """The variant of ``unit`` in served experiment ``name``:
        ``{experiment, unit, variant, model_version, active}``. While the experiment runs
        (start..end, UTC dates) the first exposure is stored when ``log``; outside it the unit
        gets the control and nothing is stored (see docs/experiments.md)."""
        from .experiments._exposures import record_exposures
        from .experiments._served import check_models, is_active, served_experiment, variant_of

        exp = served_experiment(self.spec, name)
        unit = str(unit)
        now = utcnow()
        active = is_active(exp, now.date())
        variant = variant_of(exp, name, unit) if active else exp.control
        version = check_models(self.registry, exp, name)[variant]
        if active and log:
            row = {
                "experiment": name,
                "unit": unit,
                "variant": variant,
                "model_version_id": version.id if version else None,
                "request_id": None,
                "first_exposed_at": now,
            }
            record_exposures(self.store, [row])
        return {
            "experiment": name,
            "unit": unit,
            "variant": variant,
            "model_version": version.name if version else None,
            "active": active,
        }

    # -- end of the experiment block --

    # -- monitor (issue 8, drift) ----------------------------------------------------------------

    def monitor(
        self,
        problem: str,
        *,
        current: str = "auto",
        since: datetime | None = None,
        chunk: str | int | None = None,
        html: str | Path | None = None,
    ) -> dict:
        """Drift and data quality of what the production model scored (the latest batch run's
        features, or the prediction log's inputs) against its training data, and its
        performance (realised from labels, estimated before them), per ``chunk`` (day, week or
        N rows) of the log too; stored in ``monitor_runs``. See
        ``cycleml.monitor.monitor_problem``."""
        from .monitor import monitor_problem

        return monitor_problem(
            self,
            problem,
            current=current,  # type: ignore[arg-type]
            since=since,
            chunk=chunk,
            html=html,
        )

    def drift(self, reference: Any, current: Any, **kwargs: Any) -> dict:
        """Drift of ``current`` against ``reference``: spec source names, Parquet/CSV paths or
        data frames, with the spec's ``monitoring:`` settings. See ``cycleml.monitor.drift``."""
        from .monitor import project_drift

        return project_drift(self, reference, current, **kwargs)

    # -- end monitor -----------------------------------------------------------------------------

    # -- alerts and the retrain loop (issue 8, "alerts") -----------------------------------------

    def alerts(self, problem: str | None = None, *, limit: int = 100) -> list[dict]:
        """Stored alerts (``monitoring.rules`` breaches), newest first; all problems unless
        ``problem``."""
        from .monitor import list_alerts

        if problem is not None:
            self._problem(problem)
        return list_alerts(self, problem, limit=limit)

    def retry_alerts(self, problem: str | None = None) -> dict:
        """Send pending and failed alerts to ``monitoring.webhook`` again; delivered ones are
        never sent twice. Returns the alert ids by outcome."""
        from .monitor import retry_alerts

        if problem is not None:
            self._problem(problem)
        return retry_alerts(self, problem)

    def retrain(
        self,
        problem: str,
        *,
        budget: float | None = None,
        monitor_run_id: int | None = None,
        alert_id: int | None = None,
        progress: Progress | None = None,
    ) -> dict:
        """Train a challenger on a fresh dataset version, compare it with the production model
        on the same most recent labelled rows, promote it if it wins by more than
        ``monitoring.retrain.margin``; the decision is stored (``retrain_decisions``)."""
        from .monitor import retrain

        return retrain(
            self,
            problem,
            budget=budget,
            monitor_run_id=monitor_run_id,
            alert_id=alert_id,
            progress=progress,
        )

    def monitor_and_retrain(
        self,
        problem: str,
        *,
        force: bool = False,
        budget: float | None = None,
        progress: Progress | None = None,
        **monitor: Any,
    ) -> dict:
        """:meth:`monitor`, then :meth:`retrain` when the run raised an alert (or ``force``);
        the decision is the result's ``retrain``."""
        from .monitor import retrain_on_alert

        result = self.monitor(problem, **monitor)
        retrain_on_alert(self, problem, result, force=force, budget=budget, progress=progress)
        return result

    def retrain_decisions(self, problem: str | None = None, *, limit: int = 50) -> list[dict]:
        """Stored retrain decisions, newest first."""
        from .monitor import list_decisions

        if problem is not None:
            self._problem(problem)
        return list_decisions(self, problem, limit=limit)

    # -- end of alerts and the retrain loop ------------------------------------------------------

    # -- schedules (issue 6) -------------------------------------------------------------------

    def schedules(self, now: datetime | None = None) -> list[dict]:
        """Each job of ``schedules:`` with its next run and its latest run's status."""
        from .schedule import Scheduler

        return Scheduler(self).status(now)

    def run_schedules(
        self,
        *,
        once: bool = True,
        now: datetime | None = None,
        stop: Any = None,
        catch_up: bool = False,
        report: Callable[[Any], None] | None = None,
    ) -> list:
        """Run ``schedules:``. ``once``: every job whose most recent fire time (at or before
        ``now``) has not run yet, then return the :class:`cycleml.schedule.JobRun` list.
        Otherwise run each job when its cron fires until ``stop`` (a ``threading.Event``) is
        set or SIGINT/SIGTERM arrives. A job runs once per due time across all schedulers
        sharing the store; a failing job is recorded ``failed`` and the others go on."""
        from .schedule import Scheduler

        runs: list = []

        def collect(run) -> None:
            if run.status != "running" and run not in runs:
                runs.append(run)
            if report is not None:
                report(run)

        scheduler = Scheduler(self, report=collect)
        if once:
            scheduler.run_due(now)
        else:
            scheduler.run_forever(stop, catch_up=catch_up)
        return runs

    # -- helpers -------------------------------------------------------------------------------

    def _problem(self, problem: str) -> None:
        if problem not in self.spec.problems:
            import difflib

            close = difflib.get_close_matches(problem, list(self.spec.problems), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise NotFoundError(
                f"unknown problem {problem!r}",
                hint=hint
                + f"problems in cycleml.yaml: {', '.join(self.spec.problems) or '(none)'}",
            )

    def counts(self) -> dict[str, Any]:
        """Row counts of the store's main tables (for status pages and tests)."""
        from .store import tables

        out = {}
        with self.store.connect() as conn:
            for table in (
                tables.dataset_versions,
                tables.model_versions,
                tables.predictions,
                tables.prediction_log,
                tables.monitor_runs,
                tables.experiment_analyses,
            ):
                out[table.name] = conn.execute(
                    sa.select(sa.func.count()).select_from(table)
                ).scalar()
        return out


__all__ = ["Project", "TrainOutcome", "ValidationReport"]
