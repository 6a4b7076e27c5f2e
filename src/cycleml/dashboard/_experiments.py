"""``/experiments``: each experiment of cycleml.yaml with its latest stored analysis: variants,
lift and confidence intervals as a chart, the sample-ratio check and the decision."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _charts, _reads

if TYPE_CHECKING:
    from ..project import Project


def context(project: Project) -> dict:
    from ..spec import spec_hash

    analyses = _reads.latest_analyses(project)
    current_hash = spec_hash(project.spec)
    experiments = []
    for name, exp in project.spec.experiments.items():
        stored = analyses.get(name)
        item = {
            "name": name,
            "primary": exp.primary_metric,
            "source": exp.source,
            "problem": exp.problem,
            "analysis": None,
        }
        if stored is not None:
            result = stored["result"]
            item["analysis"] = {
                "created_at": stored["created_at"],
                "stale": stored["spec_hash"] != current_hash,
                "decision": result.get("decision"),
                "srm": result.get("srm") or {},
                "notes": result.get("notes") or [],
                "variants": _variant_rows(result),
                "chart": _charts.lift(name, result),
            }
        experiments.append(item)
    return {"title": "Experiments", "experiments": experiments}


def _variant_rows(result: dict) -> list[dict]:
    rows = []
    for v in result.get("variants", []):
        for metric, m in (v.get("metrics") or {}).items():
            rows.append(
                {
                    "variant": v.get("variant"),
                    "control": v.get("control"),
                    "units": v.get("units"),
                    "metric": metric,
                    "value": m.get("value"),
                    "lift": m.get("relative_lift"),
                    "ci_low": m.get("relative_ci_low"),
                    "ci_high": m.get("relative_ci_high"),
                    "p_value": m.get("p_value"),
                    "significant": m.get("significant"),
                }
            )
    return rows
