"""The retrain loop: on an alert (or when forced), build a fresh dataset version, train a
challenger, compare it with the champion (the production model) on the same most recent labelled
rows, promote it when it wins by more than ``monitoring.retrain.margin``, and store the decision
with its lineage in ``retrain_decisions``.

The rows both are scored on: the test split of the new dataset version (the challenger never
trained on it), minus the rows of the champion's own training part (fit and validation of its
dataset's split), so neither model has seen them; features of the champion that the new
dataset no longer has come from the champion's dataset for the same rows. Promotion and the
decision row are one transaction; a challenger that fails to train registers nothing and leaves
the champion in production (the failure is recorded as a decision, then raised)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ..errors import CycleMLError
from ..store import utcnow
from ..store.tables import model_versions, retrain_decisions

if TYPE_CHECKING:
    from ..project import Project
    from ..registry import ModelVersion

SEVERITY_ORDER = {"critical": 0, "warning": 1}


def retrain(
    project: Project,
    problem: str,
    *,
    budget: float | None = None,
    monitor_run_id: int | None = None,
    alert_id: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Train a challenger on a fresh dataset version and promote it if it beats the champion
    by more than the margin; returns the stored decision."""
    say = progress or (lambda _m: None)
    started = time.perf_counter()
    project._problem(problem)
    champion = project.registry.get(problem)  # NotFoundError: nothing to compare against
    spec_problem = project.spec.problems[problem]
    settings = project.spec.monitoring.retrain
    from ..train import selection_key

    key, higher = selection_key(spec_problem.task, spec_problem.metric)
    decision: dict[str, Any] = {
        "problem": problem,
        "monitor_run_id": monitor_run_id,
        "alert_id": alert_id,
        "metric": key,
        "higher_is_better": higher,
        "margin": settings.margin,
        "champion": {"model": champion.name, "id": champion.id},
        "challenger": None,
        "dataset_version": None,
        "promoted": False,
    }
    say(f"training a challenger to {champion.name}")
    try:
        outcome = project.train(
            problem, budget=budget if budget is not None else settings.budget, progress=say
        )
    except Exception as exc:
        message = exc.message if isinstance(exc, CycleMLError) else f"{type(exc).__name__}: {exc}"
        decision["reason"] = f"training the challenger failed: {message}; {champion.name} stays"
        _store(project, decision, champion, None, started)
        raise
    challenger = outcome.model
    decision["challenger"] = {"model": challenger.name, "id": challenger.id}
    decision["dataset_version"] = outcome.dataset.id
    decision["dataset_reused"] = outcome.dataset.reused
    say(f"comparing {challenger.name} with {champion.name}")
    try:
        decision.update(_compare(project, problem, champion, challenger, outcome.dataset))
    except CycleMLError as exc:
        decision["reason"] = f"the comparison failed: {exc.message}; {champion.name} stays"
    if "reason" not in decision:
        decision.update(_decide(decision, champion, challenger, settings.margin))
    return _store(project, decision, champion, challenger, started)


def _compare(
    project: Project,
    problem: str,
    champion: ModelVersion,
    challenger: ModelVersion,
    dataset: Any,
) -> dict:
    """Both models' metrics on the new dataset's test rows the champion did not train on."""
    from ..features import AS_OF_COLUMN, get_dataset, load_dataset
    from ..features._labels import label_horizon_days
    from ..registry._compare import score_on
    from ..train import prepare_training_frame, ranking_key, selection_key, split_for

    spec_problem = project.spec.problems[problem]
    training = project.spec.training
    horizon = label_horizon_days(spec_problem)
    frame, _ = prepare_training_frame(load_dataset(dataset, project.artifacts), spec_problem)
    test = frame.iloc[split_for(frame, spec_problem, training, horizon).test]
    keys = [spec_problem.entity if spec_problem.entity in frame else frame.columns[0]]
    keys.append(AS_OF_COLUMN)
    basis = "the test split of the new dataset version"
    champion_bundle = project.registry.load(champion)
    missing = [c for c in champion_bundle.feature_names if c not in test.columns]
    old_dataset = get_dataset(project.store, champion.dataset_version_id)
    old = None
    if old_dataset is not None:
        old, _ = prepare_training_frame(load_dataset(old_dataset, project.artifacts), spec_problem)
        old_split = split_for(old, spec_problem, training, horizon)
        trained = old.iloc[np.concatenate([old_split.fit, old_split.valid])]
        if all(k in trained for k in keys):
            seen = pd.MultiIndex.from_frame(trained[keys])
            test = test[~pd.MultiIndex.from_frame(test[keys]).isin(seen)]
            basis += f", without the rows {champion.name} trained on"
    if missing and old is not None and all(c in old for c in [*keys, *missing]):
        # the spec dropped features the champion uses: take them from the champion's own
        # dataset version for the same rows (entity and cutoff), where it has them
        extra = old[[*keys, *missing]].drop_duplicates(keys)
        if len(extra) == len(old):
            test = test.merge(extra, on=keys, how="inner")
            basis += (
                f"; {champion.name}'s features that the new dataset lacks ("
                f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}) come from its "
                "own dataset version for the same rows"
            )
            missing = []
    cutoffs = pd.to_datetime(test[AS_OF_COLUMN]) if len(test) else None
    out: dict[str, Any] = {
        "rows": int(len(test)),
        "basis": basis,
        "cutoffs": None
        if cutoffs is None
        else {
            "from": cutoffs.min().isoformat(),
            "to": cutoffs.max().isoformat(),
            "count": int(cutoffs.nunique()),
        },
    }
    if missing:
        out["reason"] = (
            f"the new dataset version lacks {champion.name}'s features "
            f"{', '.join(missing[:10])}, so the two cannot be scored on the same rows; "
            f"{champion.name} stays"
        )
        return out
    if not len(test):
        out["reason"] = (
            f"no labelled rows that {champion.name} did not train on in the new dataset version "
            f"{dataset.id}; {champion.name} stays"
        )
        return out
    key, higher = selection_key(spec_problem.task, spec_problem.metric)
    scored = score_on(
        [(champion, champion_bundle), (challenger, project.registry.load(challenger))],
        test,
        key=key,
        higher=higher,
        k=ranking_key(spec_problem.metric)[1],
    )
    for side, entry in zip(("champion", "challenger"), scored, strict=True):
        out[f"{side}_metrics"] = entry["metrics"]
        out[f"{side}_score"] = entry["value"]
    return out


def _decide(
    decision: dict, champion: ModelVersion, challenger: ModelVersion, margin: float
) -> dict:
    key = decision["metric"]
    old, new = decision.get("champion_score"), decision.get("challenger_score")
    if old is None or new is None or not (math.isfinite(old) and math.isfinite(new)):
        return {
            "reason": f"{key} cannot be computed on these {decision['rows']} rows (one class "
            f"only?); {champion.name} stays"
        }
    gain = new - old if decision["higher_is_better"] else old - new
    said = f"{key} {new:.4f} vs {old:.4f} on {decision['rows']} rows (gain {gain:+.4f}"
    if gain > margin + 1e-12:
        return {
            "gain": gain,
            "promoted": True,
            "reason": f"{challenger.name} beats {champion.name}: {said}, more than the margin "
            f"{margin:g}); promoted",
        }
    return {
        "gain": gain,
        "reason": f"{challenger.name} does not beat {champion.name} by more than the margin "
        f"{margin:g}: {said}); {champion.name} stays",
    }


def _store(
    project: Project,
    decision: dict,
    champion: ModelVersion,
    challenger: ModelVersion | None,
    started: float,
) -> dict:
    """Promote (when decided) and write the decision row in one transaction."""
    from ._project import _jsonable

    created = utcnow()
    decision["seconds"] = round(time.perf_counter() - started, 2)
    mv = model_versions.c
    with project.store.begin() as conn:
        if decision["promoted"] and challenger is not None:
            archived = conn.execute(
                model_versions.update()
                .where(mv.id == champion.id, mv.stage == "production")
                .values(stage="archived")
            ).rowcount
            if archived == 1:
                conn.execute(
                    model_versions.update().where(mv.id == challenger.id).values(stage="production")
                )
            else:
                decision["promoted"] = False
                decision["reason"] = (
                    f"{champion.name} left production while the challenger trained (another "
                    f"promotion?): {challenger.name} was not promoted"
                )
        decision["id"] = conn.execute(
            retrain_decisions.insert()
            .values(
                problem=decision["problem"],
                alert_id=decision["alert_id"],
                monitor_run_id=decision["monitor_run_id"],
                dataset_version_id=decision["dataset_version"],
                champion_version_id=champion.id,
                challenger_version_id=challenger.id if challenger is not None else None,
                promoted=int(decision["promoted"]),
                metric=decision["metric"],
                champion_score=_finite(decision.get("champion_score")),
                challenger_score=_finite(decision.get("challenger_score")),
                margin=decision["margin"],
                reason=decision["reason"],
                result=_jsonable(decision),
                created_at=created,
            )
            .returning(retrain_decisions.c.id)
        ).scalar_one()
    decision["created_at"] = created.isoformat()
    return decision


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def retrain_on_alert(
    project: Project,
    problem: str,
    result: dict,
    *,
    force: bool = False,
    budget: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """After a monitor run (``result``): retrain when it raised an alert (the most severe one is
    recorded as the trigger) or when ``force``; sets and returns ``result["retrain"]``."""
    raised = sorted(
        result.get("alerts") or [], key=lambda a: (SEVERITY_ORDER.get(a["severity"], 9), a["id"])
    )
    if not raised and not force:
        result["retrain"] = {
            "retrained": False,
            "reason": "the run raised no alert, so there is nothing to retrain for (--force "
            "retrains anyway)",
        }
        return result["retrain"]
    decision = retrain(
        project,
        problem,
        budget=budget,
        monitor_run_id=result.get("id"),
        alert_id=raised[0]["id"] if raised else None,
        progress=progress,
    )
    result["retrain"] = {"retrained": True, **decision}
    return result["retrain"]


def list_decisions(project: Project, problem: str | None = None, *, limit: int = 50) -> list[dict]:
    """Stored retrain decisions, newest first."""
    query = sa.select(retrain_decisions)
    if problem is not None:
        query = query.where(retrain_decisions.c.problem == problem)
    with project.store.connect() as conn:
        rows = conn.execute(query.order_by(retrain_decisions.c.id.desc()).limit(limit)).all()
    out = []
    for row in rows:
        item = dict(row._mapping)
        item["promoted"] = bool(item["promoted"])
        item["created_at"] = item["created_at"].isoformat()
        out.append(item)
    return out
