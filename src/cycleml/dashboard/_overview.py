"""``/``: every problem's lifecycle (data, dataset, model, deployment, experiment, monitoring),
the key figure of each stage and the next suggested step."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _reads
from ._common import fmt, pct, when

if TYPE_CHECKING:
    from ..project import Project


def _stage(name: str, done: bool, figure: str, next_step: str | None = None) -> dict:
    return {"name": name, "done": done, "figure": figure, "next": next_step}


def context(project: Project) -> dict:
    spec = project.spec
    profiled = _reads.profiled_at(project)
    monitored = _reads.latest_monitor_summary(project)
    logged = _reads.log_summary(project)
    analyses = _reads.latest_analyses(project)
    models = project.registry.list()
    n_sources = len(spec.sources)
    n_profiled = sum(1 for s in spec.sources if s in profiled)
    data = _stage(
        "data",
        n_sources > 0 and n_profiled == n_sources,
        f"{n_profiled} of {n_sources} sources profiled",
        "cycleml profile" if n_profiled < n_sources else None,
    )
    problems = []
    for name, problem in spec.problems.items():
        stages = [data]
        dataset = project.latest_dataset(name)
        if dataset is None:
            stages.append(
                _stage("dataset", False, "no dataset yet", f"cycleml dataset build {name}")
            )
        else:
            balance = dataset.label_balance or {}
            figure = f"{dataset.rows:,} rows, {dataset.cutoffs} cutoffs"
            if "1" in balance and dataset.rows:
                figure += f", {balance['1'] / dataset.rows:.1%} positive"
            stages.append(_stage("dataset", True, figure))
        versions = [m for m in models if m.problem == name]
        production = next((m for m in versions if m.stage == "production"), None)
        key = problem.metric.name if problem.metric else None
        if production is None:
            stages.append(
                _stage(
                    "model",
                    False,
                    f"{len(versions)} versions, none in production" if versions else "no model yet",
                    f"cycleml train {name}",
                )
            )
        else:
            value = production.metrics.get(key) if key else None
            figure = production.name + (f": test {key} {fmt(value)}" if value is not None else "")
            stages.append(_stage("model", True, figure))
        run = _reads.latest_prediction_run(project, name)
        log = logged.get(name)
        parts = []
        if run:
            parts.append(f"batch of {run['rows']:,} as of {when(run['as_of'])}")
        if log:
            parts.append(f"{log['requests']:,} online requests")
        stages.append(
            _stage(
                "deployment",
                bool(parts),
                "; ".join(parts) or "no predictions yet",
                None if parts else f"cycleml predict {name} --batch, or cycleml serve",
            )
        )
        linked = [e for e, x in spec.experiments.items() if x.problem in (None, name)]
        done = [e for e in linked if e in analyses]
        if done:
            latest = max(done, key=lambda e: analyses[e]["created_at"])
            figure = f"{latest}: {analyses[latest]['result'].get('decision', 'analysed')}"
        elif linked:
            figure = f"{len(linked)} defined, none analysed"
        else:
            figure = "no experiment defined"
        stages.append(
            _stage(
                "experiment",
                bool(done),
                figure,
                None
                if done
                else (
                    f"cycleml experiment analyze {linked[0]}"
                    if linked
                    else "add an experiments: block to cycleml.yaml (docs/experiments.md)"
                ),
            )
        )
        mon = monitored.get(name)
        stages.append(
            _stage(
                "monitoring",
                mon is not None,
                f"drift share {pct(mon['drift_share'])} ({mon['drifted']} drifted) at "
                f"{when(mon['created_at'])}"
                if mon
                else "not monitored yet",
                None if mon else f"cycleml monitor {name}",
            )
        )
        next_step = next((s["next"] for s in stages if s["next"]), None)
        problems.append(
            {
                "name": name,
                "description": problem.description,
                "task": problem.task,
                "stages": stages,
                "next": next_step,
            }
        )
    return {"title": "Overview", "problems": problems, "data": data}
