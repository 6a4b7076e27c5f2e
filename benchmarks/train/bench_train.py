"""Model quality: cycleml's best model vs FLAML AutoML at the same time budget vs LightGBM with
default parameters, on the same split in the same run, averaged over seeds.

Datasets: breast_cancer, wine (class 0 vs rest), wine_multiclass (the three classes), diabetes
(regression), the demo churn problem (time split) and a 200k-row make_classification set. For
every dataset and seed, cycleml's own split (the one `cycleml train` makes) decides the rows:
FLAML and LightGBM train on cycleml's fit + validation rows, cycleml trains on fit (validation
picks the model and threshold), and all three are scored on the same test rows. Metric: ROC-AUC
(binary), macro one-vs-rest ROC-AUC (multiclass), R2 (regression).

Usage: python benchmarks/train/bench_train.py [--budget 30] [--seeds 3] [--only NAME,...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn import datasets as skd  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from cycleml.features import FeatureColumn  # noqa: E402
from cycleml.spec import parse_spec  # noqa: E402
from cycleml.train import make_split, prepare_frame  # noqa: E402
from cycleml.train._kit import predict_scores  # noqa: E402
from cycleml.train._trainer import train_candidates  # noqa: E402

THREADS = 2
_METRICS = {"diabetes": "r2", "wine_multiclass": "roc_auc_ovr"}
ALGORITHMS = "[baseline, logistic, hist_gradient_boosting, lightgbm]"


def _spec(task: str, split: str, seed: int):
    label = {
        "binary": "{kind: inactivity, source: events, days: 30}",
        "multiclass": "{kind: column, source: events, column: value}",
    }.get(task, "{kind: sum_within, source: events, column: value, days: 30}")
    spec = parse_spec(
        f"""\
spec_version: 1
name: bench
sources:
  events: {{path: e.csv, entity: id, time: ts}}
problems:
  p:
    entity: id
    task: {task}
    label: {label}
    cutoffs: {{every: 7d, start: 2024-01-01}}
    metric: {{name: {"r2" if task == "regression" else "roc_auc"}}}
    features: [g]
features:
  g: {{source: events, windows: [7d], aggregate: {{count: "*"}}}}
training: {{split: {split}, seed: {seed}, threads: {THREADS}, algorithms: {ALGORITHMS}}}
"""
    )
    return spec.problems["p"], spec.training


def _sk_frame(x: np.ndarray, y: np.ndarray) -> tuple[pd.DataFrame, list[FeatureColumn]]:
    names = [f"f{i}" for i in range(x.shape[1])]
    frame = pd.DataFrame(x, columns=names)
    frame.insert(0, "as_of", datetime(2024, 1, 1))
    frame.insert(0, "id", [f"r{i}" for i in range(len(frame))])
    frame["label"] = y
    return frame, [FeatureColumn(n, "g", "number") for n in names]


def load(name: str):
    """(frame, columns, task, split method, label-horizon days)"""
    if name == "breast_cancer":
        d = skd.load_breast_cancer()
        return (*_sk_frame(d.data, d.target), "binary", "stratified", 0)
    if name == "wine":
        d = skd.load_wine()
        return (*_sk_frame(d.data, (d.target == 0).astype(int)), "binary", "stratified", 0)
    if name == "wine_multiclass":
        d = skd.load_wine()
        return (*_sk_frame(d.data, d.target), "multiclass", "stratified", 0)
    if name == "diabetes":
        d = skd.load_diabetes()
        return (*_sk_frame(d.data, d.target), "regression", "random", 0)
    if name == "synthetic_200k":
        x, y = skd.make_classification(
            n_samples=200_000, n_features=20, n_informative=8, flip_y=0.05, random_state=0
        )
        return (*_sk_frame(x, y), "binary", "stratified", 0)
    if name == "demo_churn":
        from cycleml import Project
        from cycleml._init import init_project
        from cycleml.features import load_dataset

        root = tempfile.mkdtemp(prefix="bench-train-")
        init_project(root, demo=True, n_users=2000, seed=7)
        project = Project(root)
        dataset = project.build_dataset("churn")
        frame = load_dataset(dataset, project.artifacts)
        columns = [FeatureColumn(f["name"], f["group"], f["kind"]) for f in dataset.features]
        project.close()
        return frame, columns, "binary", "time", 30
    raise SystemExit(f"unknown dataset {name}")


def _metric(task, y, pred) -> float:
    if task == "multiclass":
        return float(skm.roc_auc_score(y, pred, multi_class="ovr"))
    return float(skm.roc_auc_score(y, pred) if task == "binary" else skm.r2_score(y, pred))


def _proba(model, x, task):
    return model.predict_proba(x) if task == "multiclass" else model.predict_proba(x)[:, 1]


def _anchor_x(frame: pd.DataFrame, columns: list[FeatureColumn]) -> pd.DataFrame:
    x = prepare_frame(frame, columns)
    for c in columns:
        if c.kind == "category":
            x[c.name] = x[c.name].astype("category")
    return x


def run_one(name, frame, columns, task, method, horizon, seed, budget) -> dict:
    problem, training = _spec(task, method, seed)
    split = make_split(
        frame,
        method=method,
        test_size=training.test_size,
        horizon_days=horizon,
        seed=seed,
        classify=task != "regression",
    )
    train_rows = np.sort(np.concatenate([split.fit, split.valid]))
    y = frame["label"].to_numpy().astype(float if task == "regression" else int)
    y_test = y[split.test]
    out = {"dataset": name, "seed": seed, "rows": len(frame), "test_rows": len(split.test)}

    t0 = time.perf_counter()
    result = train_candidates(
        frame, columns, problem, training, horizon_days=horizon, budget=budget
    )
    out["cycleml_s"] = time.perf_counter() - t0
    test = prepare_frame(frame.iloc[split.test], columns)
    pred = (
        predict_scores(result.pipeline, test, task, len(result.classes or []))
        if task != "regression"
        else result.pipeline.predict(test)
    )
    out["cycleml"] = _metric(task, y_test, pred)
    out["cycleml_model"] = result.algorithm + (
        " (tuned)" if any(t["kept"] for t in result.tuning) else ""
    )

    x = _anchor_x(frame, columns)
    from flaml import AutoML

    automl = AutoML()
    t0 = time.perf_counter()
    automl.fit(
        x.iloc[train_rows],
        y[train_rows],
        task="regression" if task == "regression" else "classification",
        metric={"binary": "roc_auc", "multiclass": "roc_auc_ovr"}.get(task, "r2"),
        time_budget=budget,
        seed=seed,
        n_jobs=THREADS,
        verbose=0,
    )
    out["flaml_s"] = time.perf_counter() - t0
    pred = (
        _proba(automl, x.iloc[split.test], task)
        if task != "regression"
        else automl.predict(x.iloc[split.test])
    )
    out["flaml"] = _metric(task, y_test, pred)
    out["flaml_model"] = automl.best_estimator

    from lightgbm import LGBMClassifier, LGBMRegressor

    cls = LGBMRegressor if task == "regression" else LGBMClassifier
    model = cls(random_state=seed, n_jobs=THREADS, verbose=-1)
    t0 = time.perf_counter()
    model.fit(x.iloc[train_rows], y[train_rows])
    out["lgbm_s"] = time.perf_counter() - t0
    pred = (
        _proba(model, x.iloc[split.test], task)
        if task != "regression"
        else model.predict(x.iloc[split.test])
    )
    out["lgbm"] = _metric(task, y_test, pred)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=float, default=30)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--only", default="breast_cancer,wine,wine_multiclass,diabetes,demo_churn,synthetic_200k"
    )
    args = parser.parse_args()
    print(
        f"threads per learner: {THREADS}; nproc {os.cpu_count()}; budget {args.budget:g} s; "
        f"seeds {args.seeds}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
    )
    rows = []
    for name in args.only.split(","):
        frame, columns, task, method, horizon = load(name)
        for seed in range(args.seeds):
            r = run_one(name, frame, columns, task, method, horizon, seed, args.budget)
            rows.append(r)
            print(
                f"  {name} seed {seed}: cycleml {r['cycleml']:.4f} ({r['cycleml_model']}, "
                f"{r['cycleml_s']:.0f} s)  flaml {r['flaml']:.4f} ({r['flaml_model']}, "
                f"{r['flaml_s']:.0f} s)  lgbm {r['lgbm']:.4f} ({r['lgbm_s']:.1f} s)",
                flush=True,
            )
    table = pd.DataFrame(rows)
    summary = table.groupby("dataset", sort=False).agg(
        metric=("dataset", lambda s: _METRICS.get(s.iloc[0], "roc_auc")),
        rows=("rows", "first"),
        cycleml=("cycleml", "mean"),
        flaml=("flaml", "mean"),
        lgbm_defaults=("lgbm", "mean"),
        cycleml_sd=("cycleml", "std"),
        flaml_sd=("flaml", "std"),
        cycleml_s=("cycleml_s", "mean"),
        flaml_s=("flaml_s", "mean"),
    )
    summary["cycleml-flaml"] = summary["cycleml"] - summary["flaml"]
    summary["cycleml-lgbm"] = summary["cycleml"] - summary["lgbm_defaults"]
    print()
    print(summary.round(4).to_markdown() if _has_tabulate() else summary.round(4).to_string())
    sys.stdout.flush()


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
