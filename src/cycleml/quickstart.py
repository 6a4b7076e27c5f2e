"""`cycleml quickstart`: the whole lifecycle on the demo product, one stage after another."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from ._init import init_project
from .experiments import assign
from .project import Project
from .reports._stages import summary_report

Stage = Callable[[str, dict], None]

EXPERIMENT_BLOCK = """
  retention_test: {path: data/retention_test.parquet, entity: user_id}
"""

EXPERIMENT_SPEC = """
experiments:
  retention_offer:
    # Simulated by `cycleml quickstart`: users the churn model flags get a retention offer in
    # the treatment variant; the outcome is whether they were still active 30 days later.
    source: retention_test
    unit: user_id
    variant: variant
    control: control
    weights: {control: 0.5, treatment: 0.5}
    metrics:
      retained: {type: proportion, column: retained}
      revenue: {type: mean, column: revenue}
    primary: retained
"""


def run_quickstart(
    directory: str | Path,
    *,
    n_users: int = 2000,
    seed: int = 0,
    end: date | None = None,
    on_stage: Stage | None = None,
) -> dict:
    """Generate the demo product in ``directory`` and run every stage on it; returns one dict
    per stage (profile, dataset, train, predict, serve, experiment, monitor)."""
    emit = on_stage or (lambda _name, _figures: None)
    started = time.perf_counter()
    root = Path(directory)
    init = init_project(root, demo=True, n_users=n_users, seed=seed, end=end, overwrite=True)
    _reset_state(root)
    project = Project(root)
    out: dict = {"project": str(root.resolve())}
    try:
        profiles = project.profile()
        out["profile"] = {
            "sources": len(profiles),
            "rows": {p["source"]: p["rows"] for p in profiles},
            "columns": sum(len(p["columns"]) for p in profiles),
            "empty_columns": sum(len(p["empty_columns"]) for p in profiles),
            "data_start": init["start"],
            "data_end": init["end"],
        }
        emit("profile", out["profile"])

        dataset = project.build_dataset("churn")
        positives = dataset.label_balance.get("1", 0)
        out["dataset"] = {
            "version": dataset.id,
            "rows": dataset.rows,
            "cutoffs": dataset.cutoffs,
            "features": len(dataset.features),
            "positive_rate": round(positives / dataset.rows, 4) if dataset.rows else None,
            "notes": dataset.notes,
        }
        emit("dataset", out["dataset"])

        outcome = project.train("churn")
        m = outcome.result.metrics
        out["train"] = {
            "model": outcome.model.name,
            "stage": outcome.model.stage,
            "algorithm": outcome.model.algorithm,
            "candidates": [b["algorithm"] for b in outcome.result.leaderboard],
            "roc_auc": _r(m.get("roc_auc")),
            "pr_auc": _r(m.get("pr_auc")),
            "recall": _r(m.get("recall")),
            "precision": _r(m.get("precision")),
            "threshold": _r(outcome.result.threshold),
            "baseline_roc_auc": _r(
                next(
                    (
                        b["test"]["roc_auc"]
                        for b in outcome.result.leaderboard
                        if b["algorithm"] == "baseline"
                    ),
                    None,
                )
            ),
            "report": str(outcome.report),
        }
        emit("train", out["train"])

        as_of = pd.Timestamp(init["end"]).to_pydatetime()
        run = project.predict_batch("churn", as_of=as_of)
        out["predict"] = {
            "rows": run.rows,
            "as_of": run.as_of.isoformat(),
            "model": run.model_name,
            "flagged_rate": _r(run.positive_rate),
            "mean_score": _r(run.mean_score),
            "table": f"predictions in {project.store.display_url}",
        }
        emit("predict", out["predict"])

        out["serve"] = _serve_once(project, run.id)
        emit("serve", out["serve"])

        _simulate_experiment(project, root, seed=seed)
        project = Project(root)  # the spec now holds the experiment
        result = project.analyze_experiment("retention_offer")
        treat = next(v for v in result["variants"] if not v["control"])
        ctrl = next(v for v in result["variants"] if v["control"])
        primary = treat["metrics"]["retained"]
        out["experiment"] = {
            "name": "retention_offer",
            "units": {ctrl["variant"]: ctrl["units"], treat["variant"]: treat["units"]},
            "control_retained": _r(ctrl["metrics"]["retained"]["value"]),
            "treatment_retained": _r(primary["value"]),
            "relative_lift": _r(primary["relative_lift"]),
            "p_value": _r(primary["p_value"], 6),
            "srm_p_value": _r(result["srm"]["p_value"]),
            "decision": result["decision"],
        }
        emit("experiment", out["experiment"])

        drift = project.monitor("churn")
        out["monitor"] = {
            "features": len(drift["features"]),
            "drifted": drift["drifted"],
            "drift_share": _r(drift["drift_share"]),
            "dataset_drift": drift["dataset_drift"],
            "reference_rows": drift["reference"]["rows"],
            "current_rows": drift["current"]["rows"],
        }
        emit("monitor", out["monitor"])
        out["seconds"] = round(time.perf_counter() - started, 1)
        out["report"] = str(
            summary_report(
                project.reports_dir / "quickstart.html",
                "cycleml quickstart: the demo product's lifecycle",
                {
                    k: out[k]
                    for k in (
                        "profile",
                        "dataset",
                        "train",
                        "predict",
                        "serve",
                        "experiment",
                        "monitor",
                    )
                },
            )
        )
    finally:
        project.close()
    return out


def _r(value, digits: int = 4):
    return None if value is None else round(float(value), digits)


def _reset_state(root: Path) -> None:
    """Quickstart starts from a clean state each time (the demo data is regenerated too)."""
    import shutil

    state = root / ".cycleml"
    if state.exists():
        shutil.rmtree(state)
    (root / "data" / "retention_test.parquet").unlink(missing_ok=True)


def _serve_once(project: Project, run_id: int) -> dict:
    """One online prediction through the real app in-process, by record and by entity."""
    import sqlalchemy as sa

    from .store.tables import prediction_runs

    with project.store.connect() as conn:
        sha = conn.execute(
            sa.select(prediction_runs.c.features_sha256).where(prediction_runs.c.id == run_id)
        ).scalar_one()
    batch = pd.read_parquet(project.artifacts.verified_path(sha))
    row = batch.sort_values("__score", ascending=False).iloc[0]
    _, bundle = project.load_model("churn")
    record = {name: _json_value(row[name]) for name in bundle.feature_names}
    by_record, by_entity = asyncio.run(
        _post_twice(
            project.app(token=""),  # in-process: no network, so no token
            "/v1/models/churn/predict",
            {"records": [record]},
            {"entities": [str(row["user_id"])]},
        )
    )
    by_record.raise_for_status()
    by_entity.raise_for_status()
    online = by_record.json()["predictions"][0]["score"]
    return {
        "status": by_record.status_code,
        "model_version": by_record.json()["model_version"],
        "entity": str(row["user_id"]),
        "online_score": _r(online, 6),
        "batch_score": _r(row["__score"], 6),
        "same_as_batch": bool(abs(online - float(row["__score"])) < 1e-9),
        "entity_score_now": _r(by_entity.json()["predictions"][0]["score"], 6),
    }


async def _post_twice(app, url: str, first: dict, second: dict):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cycleml.local") as client:
        return await client.post(url, json=first), await client.post(url, json=second)


def _json_value(value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def _simulate_experiment(project: Project, root: Path, *, seed: int) -> None:
    """A 50/50 test of a retention offer for users the model flags, with simulated outcomes:
    an offer cuts a flagged user's chance of churning by a quarter."""
    import sqlalchemy as sa

    from .store.tables import predictions

    with project.store.connect() as conn:
        rows = conn.execute(
            sa.select(predictions.c.entity, predictions.c.score, predictions.c.label).where(
                predictions.c.problem == "churn"
            )
        ).all()
    frame = pd.DataFrame(rows, columns=["user_id", "score", "label"])
    rng = np.random.default_rng(seed + 1)
    weights = {"control": 0.5, "treatment": 0.5}
    frame["variant"] = [assign("retention_offer", u, weights) for u in frame["user_id"]]
    churn_p = frame["score"].to_numpy().copy()
    offered = (frame["variant"] == "treatment").to_numpy() & (frame["label"] == 1).to_numpy()
    churn_p[offered] *= 0.75
    retained = (rng.random(len(frame)) >= churn_p).astype(int)
    revenue = retained * rng.gamma(2.0, 20.0, len(frame)) - offered * 5.0
    pd.DataFrame(
        {
            "user_id": frame["user_id"],
            "variant": frame["variant"],
            "retained": retained,
            "revenue": revenue.round(2),
        }
    ).to_parquet(root / "data" / "retention_test.parquet", index=False)
    spec_path = root / "cycleml.yaml"
    text = spec_path.read_text(encoding="utf-8")
    if "retention_test:" not in text:
        text = text.replace(
            "  impressions: {path: data/impressions.parquet, entity: user_id, time: ts}\n",
            "  impressions: {path: data/impressions.parquet, entity: user_id, time: ts}"
            + EXPERIMENT_BLOCK,
        )
        text += EXPERIMENT_SPEC
        spec_path.write_text(text, encoding="utf-8")
