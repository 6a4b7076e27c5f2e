"""Model quality: cycleml's best model vs FLAML AutoML at the same time budget vs LightGBM with
default parameters, on the same split in the same run, over seeds.

Grid (issue 5): datasets breast_cancer, wine (three classes), diabetes (regression), the demo
churn problem (time split) and a 200k-row make_classification set; budgets 30 s and 120 s;
seeds 0-2. For every cell (dataset, budget, seed), cycleml's own split (the one `cycleml train`
makes, seeded) decides the rows: FLAML and LightGBM train on cycleml's fit + validation rows,
cycleml gets the same rows (fit + validation, as it splits them), and all three are scored on
the same test rows. Metric: ROC-AUC (binary), macro one-vs-rest ROC-AUC (wine), R2 (diabetes).
Every learner runs on one thread (cycleml ``training.threads``, FLAML and LightGBM ``n_jobs``,
``OMP_NUM_THREADS=1``).

Resumable: each finished cell is appended to ``benchmarks/train/results/train.jsonl``
(gitignored) with the hash of ``src/cycleml/train``; cells already there for the same code are
skipped (``--fresh`` runs them again). The summary reads the whole file.

"Matches within noise": per seed, d = cycleml - anchor on the same split; the mean of d over
the seeds is compared with 2 standard errors of d (sd(d) / sqrt(seeds), with a floor of 0.002
so identical scores are not split hairs): ahead if mean(d) > band, behind if mean(d) < -band,
else within noise. The target (issue 5) is "not behind FLAML" and "not behind LightGBM
defaults" on every dataset and budget.

Usage: nice -n 19 python benchmarks/train/bench_train.py [--budgets 30,120] [--seeds 3]
       [--only NAME,...] [--summary] [--fresh]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn import datasets as skd  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from cycleml.features import FeatureColumn  # noqa: E402
from cycleml.spec import parse_spec  # noqa: E402
from cycleml.train import prepare_frame, split_for  # noqa: E402
from cycleml.train._kit import predict_scores  # noqa: E402
from cycleml.train._trainer import train_candidates  # noqa: E402

THREADS = 1
DATASETS = ("breast_cancer", "wine", "diabetes", "demo_churn", "synthetic_200k")
METRICS = {"diabetes": "r2", "wine": "roc_auc_ovr"}
ALGORITHMS = "[baseline, logistic, hist_gradient_boosting, lightgbm]"
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "train.jsonl"
NOISE_FLOOR = 0.002


def code_hash() -> str:
    """sha256 (16 hex) of cycleml's training code: results are kept per code version."""
    root = HERE.parents[1] / "src" / "cycleml" / "train"
    digest = hashlib.sha256()
    for path in sorted(root.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _spec(task: str, split: str, seed: int):
    label = {
        "binary": "{kind: inactivity, source: events, days: 30}",
        "multiclass": "{kind: column, source: events, column: value}",
    }.get(task, "{kind: sum_within, source: events, column: value, days: 30}")
    metric = "r2" if task == "regression" else "roc_auc"  # multiclass: macro OvR AUC
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
    metric: {{name: {metric}}}
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
    raise SystemExit(f"unknown dataset {name}; datasets: {', '.join(DATASETS)}")


def _metric(task: str, y: np.ndarray, pred: np.ndarray) -> float:
    if task == "multiclass":
        return float(skm.roc_auc_score(y, pred, multi_class="ovr"))
    return float(skm.roc_auc_score(y, pred) if task == "binary" else skm.r2_score(y, pred))


def _anchor_predict(model, x: pd.DataFrame, task: str) -> np.ndarray:
    if task == "regression":
        return model.predict(x)
    proba = model.predict_proba(x)
    return proba if task == "multiclass" else proba[:, 1]


def _anchor_x(frame: pd.DataFrame, columns: list[FeatureColumn]) -> pd.DataFrame:
    x = prepare_frame(frame, columns)
    for c in columns:
        if c.kind == "category":
            x[c.name] = x[c.name].astype("category")
    return x


def run_cell(name: str, data, seed: int, budget: float) -> dict:
    frame, columns, task, method, horizon = data
    problem, training = _spec(task, method, seed)
    split = split_for(frame, problem, training, horizon)
    train_rows = np.sort(np.concatenate([split.fit, split.valid]))
    y = frame["label"].to_numpy().astype(float if task == "regression" else int)
    y_test = y[split.test]
    out = {
        "dataset": name,
        "budget": budget,
        "seed": seed,
        "metric": METRICS.get(name, "roc_auc"),
        "rows": len(frame),
        "train_rows": len(train_rows),
        "test_rows": len(split.test),
        "threads": THREADS,
        "load_before": round(os.getloadavg()[0], 2),
    }

    t0 = time.perf_counter()
    result = train_candidates(
        frame, columns, problem, training, horizon_days=horizon, budget=budget
    )
    out["cycleml_s"] = round(time.perf_counter() - t0, 2)
    test = prepare_frame(frame.iloc[split.test], columns)
    pred = predict_scores(result.pipeline, test, task, len(result.classes or []))
    out["cycleml"] = _metric(task, y_test, pred)
    out["cycleml_model"] = result.algorithm + (
        " (tuned)"
        if any(t["kept"] and t["algorithm"] == result.algorithm for t in result.tuning)
        else ""
    )
    out["cycleml_selected_by"] = result.split.get("selected_by")

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
    out["flaml_s"] = round(time.perf_counter() - t0, 2)
    out["flaml"] = _metric(task, y_test, _anchor_predict(automl, x.iloc[split.test], task))
    out["flaml_model"] = automl.best_estimator

    from lightgbm import LGBMClassifier, LGBMRegressor

    cls = LGBMRegressor if task == "regression" else LGBMClassifier
    model = cls(random_state=seed, n_jobs=THREADS, verbose=-1)
    t0 = time.perf_counter()
    model.fit(x.iloc[train_rows], y[train_rows])
    out["lgbm_s"] = round(time.perf_counter() - t0, 2)
    out["lgbm"] = _metric(task, y_test, _anchor_predict(model, x.iloc[split.test], task))
    out["load_after"] = round(os.getloadavg()[0], 2)
    return out


def read_results(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def verdict(d: np.ndarray) -> tuple[float, float, str]:
    """(mean difference, noise band, "ahead" | "within noise" | "behind")."""
    mean = float(np.mean(d))
    if len(d) < 2:
        return mean, float("nan"), "one seed: no verdict"
    band = max(2 * float(np.std(d, ddof=1) / np.sqrt(len(d))), NOISE_FLOOR)
    return mean, band, "ahead" if mean > band else "behind" if mean < -band else "within noise"


def summary(rows: list[dict]) -> str:
    """A Markdown table: per dataset and budget, mean +- sd over seeds and the verdicts."""
    table = pd.DataFrame(rows)
    lines = [
        "| dataset | metric | budget s | seeds | cycleml | FLAML | LightGBM defaults | "
        "cycleml - FLAML (band) | vs FLAML | cycleml - LGBM (band) | vs LGBM | cycleml s | "
        "FLAML s | load | cycleml models |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|---:|---:|---|---|",
    ]
    order = {name: i for i, name in enumerate(DATASETS)}
    groups = sorted(
        table.groupby(["dataset", "budget"]), key=lambda g: (g[0][1], order.get(g[0][0], 99))
    )
    for (name, budget), g in groups:
        g = g.sort_values("seed")

        def ms(col: str, g=g) -> str:
            sd = g[col].std(ddof=1) if len(g) > 1 else float("nan")
            return f"{g[col].mean():.4f} ± {sd:.4f}"

        f_mean, f_band, f_word = verdict((g["cycleml"] - g["flaml"]).to_numpy())
        l_mean, l_band, l_word = verdict((g["cycleml"] - g["lgbm"]).to_numpy())
        models = ", ".join(f"{m}" for m in g["cycleml_model"])
        lines.append(
            f"| {name} | {g['metric'].iloc[0]} | {budget:g} | {len(g)} | {ms('cycleml')} | "
            f"{ms('flaml')} | {ms('lgbm')} | {f_mean:+.4f} (±{f_band:.4f}) | {f_word} | "
            f"{l_mean:+.4f} (±{l_band:.4f}) | {l_word} | {g['cycleml_s'].mean():.0f} | "
            f"{g['flaml_s'].mean():.0f} | {g['load_before'].min():.0f}-"
            f"{g['load_before'].max():.0f} | {models} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budgets", default="30,120")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", default=",".join(DATASETS))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--summary", action="store_true", help="print the table and stop")
    parser.add_argument("--fresh", action="store_true", help="run cells already in the file")
    parser.add_argument(
        "--codes",
        default="",
        help="comma-separated code hashes whose rows also count (skip and summary), for code "
        "changes that leave a dataset's path unchanged; rows of the current code win",
    )
    args = parser.parse_args()
    code = code_hash()
    budgets = [float(b) for b in args.budgets.split(",")]
    names = args.only.split(",")
    print(
        f"code {code}; threads per learner {THREADS}; nproc {os.cpu_count()}; "
        f"{platform.python_version()}; budgets {args.budgets} s; seeds {args.seeds}; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; niceness {os.nice(0)}",
        flush=True,
    )
    codes = [code] + [c for c in args.codes.split(",") if c and c != code]
    done = {
        (r["dataset"], r["budget"], r["seed"])
        for r in read_results(args.results)
        if r.get("code") in codes
    }
    if not args.summary:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        cache: dict = {}
        for budget in budgets:
            for seed in range(args.seeds):
                for name in names:
                    if (name, budget, seed) in done and not args.fresh:
                        continue
                    if name not in cache:
                        cache[name] = load(name)
                    row = run_cell(name, cache[name], seed, budget)
                    row["code"] = code
                    row["finished"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
                    with args.results.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
                    print(
                        f"  {name} {budget:g}s seed {seed}: cycleml {row['cycleml']:.4f} "
                        f"({row['cycleml_model']}, {row['cycleml_s']:.0f} s)  flaml "
                        f"{row['flaml']:.4f} ({row['flaml_model']}, {row['flaml_s']:.0f} s)  "
                        f"lgbm {row['lgbm']:.4f}  load {row['load_before']}",
                        flush=True,
                    )
    rows = [
        r
        for r in read_results(args.results)
        if r.get("code") in codes
        and r["dataset"] in names
        and r["budget"] in budgets
        and r["seed"] < args.seeds
    ]
    # one row per cell: the latest of the first code version listed (the current one first)
    rows.sort(key=lambda r: -codes.index(r["code"]))
    latest = {(r["dataset"], r["budget"], r["seed"]): r for r in rows}
    print()
    print(summary(list(latest.values())) if latest else "no results yet")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
