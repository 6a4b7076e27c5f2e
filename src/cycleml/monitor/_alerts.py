"""Alert rules (``monitoring.rules``) evaluated on a monitor result: each breach is an ``alerts``
row, a log line on ``cycleml.monitor.alerts`` and, with ``monitoring.webhook``, a JSON POST.

A rule's ``metric`` is a path into the result:

- ``drift_share``, ``drifted`` (how many features drifted), ``domain_auc``;
- ``features.<column>.<field>``, ``prediction.<field>``, ``target.<field>`` with field
  ``statistic``, ``p_value``, ``current_null_rate`` or ``out_of_range_share``;
- ``quality.count`` (findings), ``quality.errors`` (error findings), ``quality.<check>``;
- ``volume``: rows of the latest chunk (of the current data when the run is not chunked);
- ``performance.<metric>``: the realised metric of the latest chunk that has one;
  ``estimated.<metric>``: the estimated one (CBPE) of the latest chunk that has one.

Without ``window`` a rule reads the run's value. With ``window: {chunks: N, breaches: K}`` it
reads the latest N chunks when the run has per-chunk values of that metric (drift share, drifted,
feature statistics, volume, performance), else the latest N monitor runs of the problem, and
alerts when K of them breach. A metric with no value yet (no labels) raises nothing and says why
in the result's ``rules``."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..errors import RequestError, SpecError
from ..store import utcnow
from ..store.tables import alerts, monitor_runs
from . import _webhook

if TYPE_CHECKING:
    from ..project import Project

log = logging.getLogger("cycleml.monitor.alerts")

FIELDS = ("statistic", "p_value", "current_null_rate", "out_of_range_share")
QUALITY_CHECKS = ("schema", "all_null", "missing_rate", "new_categories", "out_of_range", "volume")
METRICS = (
    "drift_share",
    "drifted",
    "domain_auc",
    "volume",
    "quality.count",
    "quality.errors",
    *(f"quality.{c}" for c in QUALITY_CHECKS),
    *(f"features.<column>.{f}" for f in FIELDS),
    *(f"prediction.{f}" for f in FIELDS),
    *(f"target.{f}" for f in FIELDS),
    "performance.<metric>",
    "estimated.<metric>",
)
LEVELS = {"warning": logging.WARNING, "critical": logging.CRITICAL}


@dataclass
class Reading:
    """One value of a metric (None with ``note`` when there is none) and where it is from."""

    value: float | None
    where: str
    note: str | None = None


def parse_metric(path: str) -> tuple[str, ...]:
    """The parts of a metric path; a SpecError listing the valid paths when it is not one."""
    head, _, rest = path.partition(".")
    if head in ("drift_share", "drifted", "domain_auc", "volume") and not rest:
        return (head,)
    if head == "quality" and rest in ("count", "errors", *QUALITY_CHECKS):
        return (head, rest)
    if head in ("prediction", "target") and rest in FIELDS:
        return (head, rest)
    if head == "features":
        column, _, field = rest.rpartition(".")
        if column and field in FIELDS:
            return (head, column, field)
    if head in ("performance", "estimated") and rest and "." not in rest:
        return (head, rest)
    raise SpecError(
        f"unknown alert metric {path!r}",
        hint="monitoring.rules metrics are: " + ", ".join(METRICS),
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _performance_chunks(result: dict) -> list[dict]:
    perf = result.get("performance")
    chunks = perf.get("chunks") if isinstance(perf, dict) else None
    return [c for c in chunks or [] if isinstance(c, dict)]


def _perf_readings(result: dict, kind: str, metric: str, strict: bool) -> list[Reading]:
    """Per performance chunk, the realised (``kind="realised"``) or estimated value."""
    chunks = _performance_chunks(result)
    known = {
        k
        for c in chunks
        if isinstance(c.get(kind), dict)
        for k, v in c[kind].items()
        if _number(v) is not None
    }
    if strict and known and metric not in known:
        prefix = "performance" if kind == "realised" else "estimated"
        raise SpecError(
            f"alert metric {prefix}.{metric}: this run has no {kind} {metric!r}",
            hint=f"{kind} metrics here: " + ", ".join(f"{prefix}.{k}" for k in sorted(known)),
        )
    status = _perf_status(result, kind)
    out = []
    for c in chunks:
        value = c.get(kind)
        number = _number(value.get(metric)) if isinstance(value, dict) else None
        note = None
        if number is None:
            note = c.get(f"{kind}_note") or status or f"no {kind} {metric} in this chunk"
        where = c.get("chunk") or str(c.get("start", "?"))[:10]
        out.append(Reading(number, f"chunk {where}", note))
    return out


def _perf_status(result: dict, kind: str) -> str | None:
    """Why the run's performance has no value of ``kind``, as the performance part says."""
    perf = result.get("performance")
    if not isinstance(perf, dict):
        return None
    if perf.get("skipped"):
        return str(perf["skipped"])
    status = perf.get(f"{kind}_status")
    return None if status in (None, "estimated") else str(status)


def _feature_row(result: dict, column: str, strict: bool) -> dict | None:
    for row in result.get("features") or []:
        if row.get("feature") == column:
            return row
    if strict:
        names = [str(r.get("feature")) for r in result.get("features") or []]
        raise SpecError(
            f"alert metric features.{column}.*: there is no feature {column!r} in this run",
            hint="features here: " + (", ".join(names[:40]) or "(none)"),
        )
    return None


def run_reading(result: dict, parts: tuple[str, ...], *, strict: bool = True) -> Reading:
    """The run's value of a metric (the latest chunk's for volume and performance)."""
    head = parts[0]
    where = "run"
    if head in ("drift_share", "drifted"):
        value = result.get("drift_share") if head == "drift_share" else len(result["drifted"])
        return Reading(_number(value), where)
    if head == "domain_auc":
        domain = result.get("domain_classifier")
        if not domain:
            return Reading(None, where, "the domain classifier did not run")
        if "roc_auc" not in domain:
            why = domain.get("skipped", "no ROC-AUC")
            return Reading(None, where, f"the domain classifier was skipped: {why}")
        return Reading(_number(domain["roc_auc"]), where)
    if head == "quality":
        findings = result.get("quality") or []
        if parts[1] == "errors":
            findings = [f for f in findings if f.get("severity") == "error"]
        elif parts[1] != "count":
            findings = [f for f in findings if f.get("check") == parts[1]]
        return Reading(float(len(findings)), where)
    if head in ("features", "prediction", "target"):
        row = _feature_row(result, parts[1], strict) if head == "features" else result.get(head)
        field = parts[-1]
        if not row:
            return Reading(None, where, f"no {head} row in this run")
        value = _number(row.get(field))
        note = None if value is not None else (row.get("skipped") or f"no {field} in this run")
        return Reading(value, where, note)
    readings = chunk_readings(result, parts, strict=strict)
    if readings is None:  # volume of a run that is not chunked
        return Reading(_number(result["current"]["rows"]), where)
    valued = [r for r in readings if r.value is not None]
    if valued:
        return valued[-1]
    if head == "volume":
        return Reading(None, where, "no chunk in this run")
    kind = "realised" if head == "performance" else "estimated"
    if readings:
        return Reading(None, where, readings[-1].note)
    generic = "labels not known yet" if head == "performance" else "nothing estimated"
    note = _perf_status(result, kind) or generic
    return Reading(None, where, f"no {kind} performance in this run ({note})")


def chunk_readings(
    result: dict, parts: tuple[str, ...], *, strict: bool = True
) -> list[Reading] | None:
    """The metric per chunk, oldest first; None when this run has no per-chunk values of it."""
    head = parts[0]
    if head in ("performance", "estimated"):
        kind = "realised" if head == "performance" else "estimated"
        return _perf_readings(result, kind, parts[1], strict) if "performance" in result else []
    chunks = result.get("chunks")
    if not chunks:
        return None
    if head == "volume":
        return [Reading(_number(c.get("rows")), f"chunk {c['chunk']}") for c in chunks]
    out = []
    for c in chunks:
        where = f"chunk {c['chunk']}"
        if "skipped" in c:
            out.append(Reading(None, where, c["skipped"]))
        elif head == "drift_share":
            out.append(Reading(_number(c.get("drift_share")), where))
        elif head == "drifted":
            out.append(Reading(float(len(c.get("drifted") or [])), where))
        elif head == "features":
            if strict:
                _feature_row(result, parts[1], strict)
            cell = (c.get("features") or {}).get(parts[1]) or {}
            value = _number(cell.get(parts[2]))
            out.append(Reading(value, where, None if value is not None else cell.get("skipped")))
        else:
            return None  # no per-chunk value: the window reads monitor runs
    return out


def breached(rule: Any, value: float | None) -> tuple[float, str] | None:
    """The threshold ``value`` crosses and how (strictly ``above`` it or ``below`` it)."""
    if value is None:
        return None
    if rule.above is not None and value > rule.above:
        return rule.above, "above"
    if rule.below is not None and value < rule.below:
        return rule.below, "below"
    return None


def _history(
    project: Project, problem: str, run_id: int | None, count: int
) -> list[tuple[int, dict]]:
    """(id, stored result) of the problem's latest ``count`` monitor runs before ``run_id``,
    oldest first."""
    if count <= 0:
        return []
    runs = monitor_runs.c
    query = sa.select(runs.id, runs.result).where(runs.problem == problem)
    if run_id is not None:
        query = query.where(runs.id < run_id)
    with project.store.connect() as conn:
        rows = conn.execute(query.order_by(runs.id.desc()).limit(count)).all()
    return [(r.id, r.result) for r in rows][::-1]


def readings_of(
    project: Project, problem: str, result: dict, rule: Any, run_id: int | None
) -> list[Reading]:
    """The values a rule looks at, oldest first."""
    parts = parse_metric(rule.metric)
    current = run_reading(result, parts)  # strict: an unknown column is a spec error
    if rule.window is None:
        return [current]
    per_chunk = chunk_readings(result, parts)
    if per_chunk:
        return per_chunk[-rule.window.chunks :]
    if per_chunk is not None:  # performance, but none in this run yet
        return [current]
    out = []
    for stored_id, stored in _history(project, problem, run_id, rule.window.chunks - 1):
        reading = run_reading(stored, parts, strict=False)
        reading.where = f"monitor run {stored_id}"
        out.append(reading)
    current.where = "this run"
    return [*out, current]


def check_rule(
    project: Project, problem: str, result: dict, name: str, rule: Any, run_id: int | None
) -> dict:
    """One rule's outcome: the values it read, how many breached, whether it alerts, and a
    note when it could not tell."""
    readings = readings_of(project, problem, result, rule, run_id)
    window = rule.window.chunks if rule.window else 1
    needed = rule.window.needed if rule.window else 1
    valued = [r for r in readings if r.value is not None]
    hits = [(r, b) for r in valued if (b := breached(rule, r.value)) is not None]
    check: dict[str, Any] = {
        "rule": name,
        "metric": rule.metric,
        "above": rule.above,
        "below": rule.below,
        "severity": rule.severity,
        "window": {"chunks": window, "breaches": needed},
        "values": [{"where": r.where, "value": r.value, **({"note": r.note} if r.note else {})}
                   for r in readings],
        "breaches": len(hits),
        "alert": len(hits) >= needed,
        "note": None,
    }  # fmt: skip
    if not valued:
        reasons = sorted({r.note for r in readings if r.note}) or ["no value"]
        check["note"] = f"not available: {'; '.join(reasons)}"
    elif len(valued) < needed:
        check["note"] = f"{len(valued)} value(s) so far; the window needs {needed} breaches"
    if check["alert"]:
        latest, (threshold, side) = hits[-1]
        text = f"{name}: {rule.metric} {latest.value:.4g} is {side} {threshold:g}"
        if rule.window:
            text += f" in {len(hits)} of the latest {len(readings)} ({latest.where})"
        check["value"], check["threshold"] = latest.value, threshold
        check["message"] = f"{text} [{problem}, {result.get('model', '?')}]"
    return check


def evaluate_rules(project: Project, problem: str, result: dict, run_id: int | None) -> list[dict]:
    """Check every rule of ``monitoring.rules`` that applies to ``problem`` on ``result`` (the
    monitor run ``run_id``), store an alert per breach (and the checks in the stored run) in one
    transaction, log each, then send pending alerts to the webhook. Sets ``result["rules"]`` and
    ``result["alerts"]`` and returns the alerts."""
    from ._project import _jsonable

    monitoring = project.spec.monitoring
    rules = {
        n: r for n, r in monitoring.rules.items() if r.problems is None or problem in r.problems
    }
    for rule in rules.values():
        parse_metric(rule.metric)  # every path checked before anything is written
    checks = [check_rule(project, problem, result, n, r, run_id) for n, r in rules.items()]
    result["rules"], result["alerts"] = checks, []
    if not checks:  # nothing to store; pending alerts still go out
        if monitoring.webhook is not None:
            _webhook.deliver(project.store, monitoring.webhook, project.spec.name)
        return []
    created = utcnow()
    status = _webhook.PENDING if monitoring.webhook is not None else None
    raised: list[dict] = []
    with project.store.begin() as conn:
        for check in checks:
            if not check["alert"]:
                continue
            details = {k: check[k] for k in ("above", "below", "window", "values", "breaches")} | {
                "model": result.get("model")
            }
            values = {
                "problem": problem,
                "rule": check["rule"],
                "metric": check["metric"],
                "value": check["value"],
                "threshold": check["threshold"],
                "severity": check["severity"],
                "message": check["message"],
                "monitor_run_id": run_id,
                "created_at": created,
                "webhook_status": status,
                "webhook_attempts": 0,
                "details": _jsonable(details),
            }
            alert_id = conn.execute(
                alerts.insert().values(**values).returning(alerts.c.id)
            ).scalar_one()
            raised.append({"id": alert_id, **values, "created_at": created.isoformat()})
        if run_id is not None:
            stored = conn.execute(
                sa.select(monitor_runs.c.result).where(monitor_runs.c.id == run_id)
            ).scalar_one_or_none()
            if stored is not None:
                stored = dict(stored) | {"rules": checks, "alerts": [a["id"] for a in raised]}
                conn.execute(
                    monitor_runs.update()
                    .where(monitor_runs.c.id == run_id)
                    .values(result=_jsonable(stored))
                )
    for alert in raised:
        log.log(LEVELS[alert["severity"]], "alert %s: %s", alert["id"], alert["message"])
    if monitoring.webhook is not None:
        _webhook.deliver(project.store, monitoring.webhook, project.spec.name)
        if raised:
            fresh = {a["id"]: a for a in list_alerts(project, ids=[a["id"] for a in raised])}
            for alert in raised:
                row = fresh.get(alert["id"], {})
                for key in ("webhook_status", "webhook_attempts", "webhook_error", "delivered_at"):
                    alert[key] = row.get(key)
    result["alerts"] = raised
    return raised


def list_alerts(
    project: Project,
    problem: str | None = None,
    *,
    limit: int = 100,
    ids: list[int] | None = None,
) -> list[dict]:
    """Stored alerts, newest first (all problems unless ``problem``)."""
    query = sa.select(alerts)
    if problem is not None:
        query = query.where(alerts.c.problem == problem)
    if ids is not None:
        query = query.where(alerts.c.id.in_(ids))
    with project.store.connect() as conn:
        rows = conn.execute(query.order_by(alerts.c.id.desc()).limit(limit)).all()
    out = []
    for row in rows:
        item = dict(row._mapping)
        for key in ("created_at", "delivered_at"):
            if item[key] is not None:
                item[key] = item[key].isoformat()
        out.append(item)
    return out


def retry_alerts(project: Project, problem: str | None = None) -> dict:
    """Send the pending and failed alerts to ``monitoring.webhook`` again (delivered ones are
    never sent twice); returns the alert ids by outcome."""
    webhook = project.spec.monitoring.webhook
    if webhook is None:
        raise RequestError(
            "there is no webhook to deliver alerts to",
            hint="set monitoring.webhook: {url: https://...} in cycleml.yaml",
        )
    return _webhook.deliver(
        project.store, webhook, project.spec.name, problem=problem, include_failed=True
    )
