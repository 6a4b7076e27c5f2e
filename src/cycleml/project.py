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
from .batch import PredictionRun, latest_run, score_batch
from .data import SourceInfo, SourceSet, profile_source
from .errors import NotFoundError
from .experiments import analyze, sufficient_stats
from .features import (
    DatasetVersion,
    FeatureSet,
    build_dataset,
    get_dataset,
    latest_dataset,
    load_dataset,
)
from .features._labels import label_horizon_days
from .monitor import drift_table
from .registry import ModelBundle, ModelVersion, Registry
from .spec import Spec, load_spec, spec_hash
from .store import ArtifactStore, Store, utcnow
from .store.tables import experiment_analyses, monitor_runs, profiles
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
            "metrics": self.result.metrics,
            "leaderboard": [
                {
                    "algorithm": b["algorithm"],
                    "chosen": b["chosen"],
                    "valid": _headline(b["valid"]),
                    "test": _headline(b["test"]),
                }
                for b in self.result.leaderboard
            ],
            "split": self.result.split,
            "notes": self.result.notes,
            "seconds": round(self.result.seconds, 2),
            "report": str(self.report) if self.report else None,
        }


def _headline(metrics: dict) -> dict:
    keys = ("roc_auc", "pr_auc", "precision", "recall", "f1", "log_loss", "mae", "rmse", "r2")
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

    def profile(self, source: str | None = None) -> list[dict]:
        names = [source] if source else list(self.spec.sources)
        out = []
        with self.open_sources() as sources:
            for name in names:
                result = profile_source(sources, name)
                out.append(result)
        with self.store.begin() as conn:
            for result in out:
                conn.execute(
                    profiles.insert().values(
                        source=result["source"], result=result, created_at=utcnow()
                    )
                )
        return out

    # -- prepare -------------------------------------------------------------------------------

    def features(self, problem: str, sources: SourceSet | None = None) -> FeatureSet:
        """The problem's feature definition; ``.compute(entities, as_of)`` is the one function
        training, batch scoring, online serving and monitoring use. Use it in a ``with`` block
        (or call ``.close()``) to release its DuckDB connection."""
        self._problem(problem)
        return FeatureSet(self.spec, problem, sources or self.open_sources())

    def build_dataset(self, problem: str, *, force: bool = False) -> DatasetVersion:
        self._problem(problem)
        with self.open_sources() as sources:
            return build_dataset(
                FeatureSet(self.spec, problem, sources), self.store, self.artifacts, force=force
            )

    def latest_dataset(self, problem: str) -> DatasetVersion | None:
        return latest_dataset(self.store, problem)

    # -- train ---------------------------------------------------------------------------------

    def train(self, problem: str, *, progress: Progress | None = None) -> TrainOutcome:
        say = progress or (lambda _m: None)
        say("building the dataset")
        dataset = self.build_dataset(problem)
        frame = load_dataset(dataset, self.artifacts)
        from .features import FeatureColumn

        columns = [FeatureColumn(f["name"], f["group"], f["kind"]) for f in dataset.features]
        spec_problem = self.spec.problems[problem]
        result = train_candidates(
            frame,
            columns,
            spec_problem,
            self.spec.training,
            horizon_days=label_horizon_days(spec_problem),
            progress=say,
        )
        bundle = ModelBundle(
            problem=problem,
            task=result.task,
            algorithm=result.algorithm,
            pipeline=result.pipeline,
            columns=columns,
            threshold=result.threshold,
            entity=spec_problem.entity,
            metadata={"dataset_version": dataset.id, "spec_hash": spec_hash(self.spec)},
        )
        say("registering the model version")
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

    def promote(self, problem: str, version: int, stage: str = "production") -> ModelVersion:
        self._problem(problem)
        return self.registry.promote(problem, version, stage)

    def load_model(
        self, problem: str, version: int | None = None
    ) -> tuple[ModelVersion, ModelBundle]:
        mv = self.model(problem, version)
        return mv, self.registry.load(mv)

    # -- deploy --------------------------------------------------------------------------------

    def predict_batch(self, problem: str, *, as_of: datetime | None = None) -> PredictionRun:
        mv, bundle = self.load_model(problem)
        with self.open_sources() as sources:
            fs = FeatureSet(self.spec, problem, sources)
            return score_batch(fs, mv, bundle, self.store, self.artifacts, as_of=as_of or utcnow())

    def predict(
        self,
        problem: str,
        *,
        records: list[dict] | None = None,
        entities: list[str] | None = None,
        as_of: datetime | None = None,
    ) -> dict:
        """Online prediction in-process (what POST /v1/models/{problem}/predict answers)."""
        from .serve import predict_online

        self._problem(problem)
        with self.open_sources() as sources:
            fs = FeatureSet(self.spec, problem, sources)
            return predict_online(
                self.model_cache, fs, self.store, records=records, entities=entities, as_of=as_of
            )

    def app(self, *, token: str | None = None):
        """The FastAPI application serving this project. ``token`` defaults to
        ``$CYCLEML_API_TOKEN``; an empty string turns authentication off."""
        from .serve import create_app

        return create_app(self, token=token)

    # -- experiment ----------------------------------------------------------------------------

    def analyze_experiment(self, name: str) -> dict:
        if name not in self.spec.experiments:
            raise NotFoundError(
                f"unknown experiment {name!r}",
                hint=f"experiments in cycleml.yaml: {', '.join(self.spec.experiments) or '(none)'}",
            )
        exp = self.spec.experiments[name]
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

    # -- monitor -------------------------------------------------------------------------------

    def monitor(self, problem: str) -> dict:
        """Drift of the latest batch-scored inputs against the production model's training data."""
        mv, bundle = self.load_model(problem)
        run = latest_run(self.store, problem)
        if run is None:
            raise NotFoundError(
                f"problem {problem!r} has no batch predictions to monitor yet",
                hint=f"run `cycleml predict {problem} --batch` first",
            )
        dataset = get_dataset(self.store, mv.dataset_version_id)
        if dataset is None:
            raise NotFoundError(f"dataset version {mv.dataset_version_id} of {mv.name} is missing")
        import pandas as pd

        reference = load_dataset(dataset, self.artifacts)
        current = pd.read_parquet(self.artifacts.verified_path(run["features_sha256"]))
        alpha = self.spec.monitoring.alpha
        rows = drift_table(reference, current, bundle.columns, alpha=alpha)
        tested = [r for r in rows if r.get("p_value") is not None]
        drifted = [r for r in tested if r["drifted"]]
        share = len(drifted) / len(tested) if tested else 0.0
        result = {
            "problem": problem,
            "model": mv.name,
            "reference": {"dataset_version": dataset.id, "rows": len(reference)},
            "current": {
                "prediction_run": run["id"],
                "as_of": run["as_of"].isoformat(),
                "rows": len(current),
            },
            "alpha": alpha,
            "features": rows,
            "drifted": [r["feature"] for r in drifted],
            "drift_share": share,
            "dataset_drift": share >= self.spec.monitoring.drift_share,
        }
        with self.store.begin() as conn:
            result["id"] = conn.execute(
                monitor_runs.insert()
                .values(
                    problem=problem,
                    model_version_id=mv.id,
                    reference_dataset_id=dataset.id,
                    prediction_run_id=run["id"],
                    drift_share=share,
                    drifted=len(drifted),
                    result=result,
                    created_at=utcnow(),
                )
                .returning(monitor_runs.c.id)
            ).scalar_one()
        return result

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
