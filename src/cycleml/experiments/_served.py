"""Served experiments: the variant of a unit, the model a variant serves, and the per-variant
sufficient statistics of outcomes counted from each unit's first exposure to the end of the
``end`` date (and, with ``cuped:``, of each metric over the pre-period before the exposure).

The analysis joins the exposures (from the store) with the events source in DuckDB: one row per
exposed unit (a unit without events counts zero, never dropped), then per variant counts, sums,
variances and covariances. Only those leave DuckDB; ``_analysis.analyze`` does the rest."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date, timedelta

import duckdb
import pyarrow as pa

from ..data import SourceSet, quote, sql_literal
from ..errors import DataError, NotFoundError, RequestError
from ..spec import ExperimentSpec, Spec
from ._assign import assign
from ._exposure_cache import ExposureFiles, exposure_relation


def variant_of(exp: ExperimentSpec, name: str, unit: str) -> str:
    """The variant of ``unit`` in served experiment ``name`` (sticky: a hash of name, salt and
    unit; variants take consecutive slices of [0, 1) by weight)."""
    return assign(name, unit, exp.shares or {}, exp.salt if exp.salt is not None else name)


def is_active(exp: ExperimentSpec, today: date) -> bool:
    """Whether ``today`` (UTC) lies within ``start``..``end`` (both inclusive, each optional)."""
    return (exp.start is None or exp.start <= today) and (exp.end is None or today <= exp.end)


def served_experiment(spec: Spec, name: str) -> ExperimentSpec:
    """Experiment ``name``, which must be a served one (NotFoundError / DataError otherwise)."""
    exp = spec.experiments.get(name)
    if exp is None:
        served = [n for n, e in spec.experiments.items() if e.served]
        raise NotFoundError(
            f"unknown experiment {name!r}",
            hint=f"served experiments in cycleml.yaml: {', '.join(served) or '(none)'}",
        )
    if not exp.served:
        raise RequestError(
            f"experiment {name!r} is analysed over source {exp.source!r}; it is not served",
            hint="a served experiment names `problem:` and `variants:` (see docs/experiments.md)",
        )
    return exp


def missing_version(name: str, exp: ExperimentSpec, variant: str, version: int, existing):
    """The NotFoundError for a variant naming a model version the registry does not have."""
    have = ", ".join(str(v.version) for v in existing) or "none yet"
    return NotFoundError(
        f"experiment {name!r}: variant {variant!r} names model version {version} of problem "
        f"{exp.problem!r}, which does not exist",
        hint=f"existing versions of {exp.problem!r}: {have}; fix `variants.{variant}.model` "
        "(a version number, `production` or `baseline`)",
    )


def check_models(registry, exp: ExperimentSpec, name: str, *, production: bool = True) -> dict:
    """Each variant's model version (None for ``baseline``, and for ``production`` when
    ``production`` is false: the analysis needs no model); NotFoundError naming a version that
    does not exist and listing the existing ones."""
    out = {}
    existing = None
    for variant, v in (exp.variants or {}).items():
        if v.model == "baseline":
            out[variant] = None
        elif v.model == "production":
            out[variant] = registry.get(exp.problem) if production else None
        else:
            existing = existing if existing is not None else registry.list(exp.problem)
            found = [m for m in existing if m.version == v.model]
            if not found:
                raise missing_version(name, exp, variant, v.model, existing)
            out[variant] = found[0]
    return out


# -- analysis ------------------------------------------------------------------------------------


def _interval(days: float) -> str:
    """``days`` as a DuckDB interval (whole microseconds, so fractions of a day work)."""
    return f"to_microseconds(CAST({days * 86_400e6:.0f} AS BIGINT))"


def cuped_metrics(exp: ExperimentSpec) -> list[str]:
    """The metrics CUPED adjusts in a served experiment: with ``cuped:`` set, every metric not
    marked ``cuped: false``."""
    if not exp.served or exp.cuped is None:
        return []
    return [n for n, m in exp.metrics.items() if m.cuped is not False]


def outcome_join(exp: ExperimentSpec) -> str:
    """The condition joining a unit's exposure row ``x`` (``x.t0``: its first exposure) with its
    event rows ``ev``: events from the first exposure on (from ``cuped.days`` before it when CUPED
    is on: the pre-period), and before the day after ``end`` (``end`` is inclusive, as for
    assignment: an event at or after midnight UTC after ``end`` does not count)."""
    start = "x.t0"
    if exp.cuped is not None and cuped_metrics(exp):
        start = f"x.t0 - {_interval(exp.cuped.days)}"
    cond = f"ev.unit = x.unit AND ev.t >= {start}"
    if exp.end is not None:
        cond += f" AND ev.t < TIMESTAMP '{exp.end + timedelta(days=1):%Y-%m-%d} 00:00:00'"
    return cond


def _metric_sql(exp: ExperimentSpec) -> tuple[list[str], list[str]]:
    """Per-unit select items (over the joined exposure/event rows of ``outcome_join``) and
    per-variant aggregates. With CUPED, each adjusted metric's value over the pre-period (events
    before the first exposure) is its covariate ``c``, aggregated in the same pass."""
    inner, outer = [], []
    adjusted = cuped_metrics(exp)
    post = " AND ev.t >= x.t0" if adjusted else ""  # the join reaches into the pre-period
    for i, (name, m) in enumerate(exp.metrics.items()):

        def k(suffix: str, name: str = name) -> str:
            return quote(f"{name}__{suffix}")

        window = post
        if m.days is not None:
            window += f" AND ev.t < x.t0 + {_interval(m.days)}"
        hit = f"ev.et = {sql_literal(m.event or '')}{window}"
        pre = f"ev.et = {sql_literal(m.event or '')} AND ev.t < x.t0"
        amount = f"ev.v{i}" if m.value else "1.0"
        if m.type == "conversion":
            inner.append(f"coalesce(max(CASE WHEN {hit} THEN 1.0 ELSE 0.0 END), 0.0) AS x{i}")
            covariate = f"coalesce(max(CASE WHEN {pre} THEN 1.0 ELSE 0.0 END), 0.0) AS c{i}"
        else:
            inner.append(f"coalesce(sum(CASE WHEN {hit} THEN {amount} END), 0.0) AS x{i}")
            covariate = f"coalesce(sum(CASE WHEN {pre} THEN {amount} END), 0.0) AS c{i}"
        if name in adjusted:
            inner.append(covariate)
            outer += [
                f"sum(c{i}) AS {k('c_sum')}",
                f"var_samp(c{i}) AS {k('c_var')}",
                f"covar_samp(x{i}, c{i}) AS {k('xc_cov')}",
            ]
        if m.type == "ratio":
            den = f"ev.et = {sql_literal(m.denominator or '')}{window}"
            inner.append(f"coalesce(sum(CASE WHEN {den} THEN 1.0 END), 0.0) AS y{i}")
            outer += [
                f"sum(y{i}) AS {k('den_sum')}",
                f"var_samp(y{i}) AS {k('den_var')}",
                f"covar_samp(x{i}, y{i}) AS {k('xy_cov')}",
            ]
            if name in adjusted:  # the pre-period denominator, and every covariance needed
                pre_den = f"ev.et = {sql_literal(m.denominator or '')} AND ev.t < x.t0"
                inner.append(f"coalesce(sum(CASE WHEN {pre_den} THEN 1.0 END), 0.0) AS d{i}")
                outer += [
                    f"sum(d{i}) AS {k('d_sum')}",
                    f"var_samp(d{i}) AS {k('d_var')}",
                    f"covar_samp(x{i}, d{i}) AS {k('xd_cov')}",
                    f"covar_samp(y{i}, c{i}) AS {k('yc_cov')}",
                    f"covar_samp(y{i}, d{i}) AS {k('yd_cov')}",
                    f"covar_samp(c{i}, d{i}) AS {k('cd_cov')}",
                ]
        outer += [
            f"count(x{i}) AS {k('n')}",
            f"sum(x{i}) AS {k('sum')}",
            f"var_samp(x{i}) AS {k('var')}",
        ]
    return inner, outer


def _event_types(exp: ExperimentSpec) -> list[str]:
    types = []
    for m in exp.metrics.values():
        types += [m.event] + ([m.denominator] if m.type == "ratio" else [])
    return [t for t in dict.fromkeys(types) if t]


def _check_events(sources: SourceSet, exp: ExperimentSpec, name: str) -> tuple[str, str]:
    """The events source's entity and time columns, after checking its columns and that every
    event type a metric names occurs in it."""
    source = sources.spec.sources[exp.events]
    columns = sources.check(exp.events)
    needed = [source.entity, source.time, exp.event_column]
    needed += [m.value for m in exp.metrics.values() if m.value]
    missing = [c for c in dict.fromkeys(needed) if c not in columns]
    if missing:
        raise DataError(
            f"experiment {name!r}: events source {exp.events!r} lacks column(s) "
            f"{', '.join(missing)}",
            hint=f"its columns are {', '.join(columns)}; `event_column:` names the column holding "
            "the event type (default event_type), `value:` a metric's value column",
        )
    wanted = _event_types(exp)
    col = f"CAST({quote(exp.event_column)} AS VARCHAR)"
    found = {
        row[0]
        for row in sources.con.execute(
            f"SELECT DISTINCT {col} FROM {sources.view(exp.events)} "
            f"WHERE {col} IN (SELECT unnest(?))",
            [wanted],
        ).fetchall()
    }
    unknown = [t for t in wanted if t not in found]
    if unknown:
        metrics = [
            n for n, m in exp.metrics.items() if m.event in unknown or m.denominator in unknown
        ]
        present = [
            r[0]
            for r in sources.con.execute(
                f"SELECT DISTINCT {col} FROM {sources.view(exp.events)} ORDER BY 1 LIMIT 50"
            ).fetchall()
        ]
        raise DataError(
            f"experiment {name!r}: metric(s) {', '.join(metrics)} count event type(s) "
            f"{', '.join(map(repr, unknown))}, which source {exp.events!r} does not have "
            f"(column {exp.event_column!r})",
            hint=f"event types in {exp.events!r}: {', '.join(map(str, present)) or '(none yet)'}",
        )
    return source.entity, source.time


@contextlib.contextmanager
def _build_on_exposures(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Keep the join's build side as written (the right one: the exposures). DuckDB picks it by
    estimated size, and it underestimates the events left after the event-type filter, so it
    would hash 40M events to probe 10M exposures (about 20% more CPU at 10M/50M). A fixed plan
    also gives the same result bit for bit (on one thread) whether the exposures come as Arrow
    or as cached Parquet."""
    con.execute("SET disabled_optimizers = 'build_side_probe_side'")
    try:
        yield
    finally:
        con.execute("RESET disabled_optimizers")


def served_stats(
    sources: SourceSet, exp: ExperimentSpec, name: str, exposed: pa.Table | ExposureFiles
) -> dict[str, dict]:
    """Per variant: units (= exposures), units with an outcome event, and per metric the
    sufficient statistics. ``exposed`` holds unit, variant, first_exposed_at."""
    if exposed.num_rows == 0:
        raise DataError(
            f"experiment {name!r} has no exposures yet",
            hint="exposures are logged when predict/rank requests carry `experiment="
            f"{name}` or GET /v1/experiments/{name}/assignment is asked while the experiment runs "
            "(start..end); analyse once units have been exposed",
        )
    entity, time_col = _check_events(sources, exp, name)
    view = sources.view(exp.events)
    values = [
        f", CAST({quote(m.value)} AS DOUBLE) AS v{i}" if m.value else ""
        for i, m in enumerate(exp.metrics.values())
    ]
    table = f"_exposures_{name}"
    sources.con.register(table, exposure_relation(sources.con, exposed))  # Arrow or Parquet
    inner, outer = _metric_sql(exp)
    types = ", ".join(sql_literal(t) for t in _event_types(exp))
    sql = (
        f"WITH x AS (SELECT CAST(unit AS VARCHAR) AS unit, CAST(variant AS VARCHAR) AS variant, "
        f"CAST(first_exposed_at AS TIMESTAMP) AS t0 FROM {quote(table)}), "
        f"ev AS (SELECT CAST({quote(entity)} AS VARCHAR) AS unit, "
        f"CAST({quote(time_col)} AS TIMESTAMP) AS t, "
        f"CAST({quote(exp.event_column)} AS VARCHAR) AS et{''.join(values)} FROM {view} "
        f"WHERE CAST({quote(exp.event_column)} AS VARCHAR) IN ({types})), "
        "per_unit AS (SELECT x.unit, any_value(x.variant) AS variant, "
        "count(ev.t) FILTER (WHERE ev.t >= x.t0) AS n_events"
        + "".join(f", {item}" for item in inner)
        # ev RIGHT JOIN x = x LEFT JOIN ev, with the hash table built over the exposures (see
        # _build_on_exposures)
        + f" FROM ev RIGHT JOIN x ON {outcome_join(exp)} GROUP BY x.unit) "
        "SELECT variant, count(*) AS units, count(*) AS n_rows, "
        "count(*) FILTER (WHERE n_events > 0) AS with_outcome"
        + "".join(f", {item}" for item in outer)
        + " FROM per_unit GROUP BY 1 ORDER BY 1"
    )
    try:
        with _build_on_exposures(sources.con):
            relation = sources.con.sql(sql)
            names = relation.columns
            rows = relation.fetchall()
    except duckdb.Error as exc:
        raise DataError(
            f"cannot compute the metrics of experiment {name!r} over source {exp.events!r}: "
            f"{str(exc).splitlines()[0]}",
            hint="a metric's `value:` column must hold numbers; the time column timestamps",
        ) from None
    finally:
        sources.con.unregister(table)
    return {row[0]: dict(zip(names, row, strict=True)) for row in rows}
