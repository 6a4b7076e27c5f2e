"""Event groups: counts, sums, means, minimums, maximums and distinct counts over time windows,
overall and per category value, recency and trend ratios, as of each spine row.

Two strategies compute the same numbers:

* ``join``: one ``JOIN`` of the spine with the events in ``[as_of - longest window, as_of)`` and
  ``FILTER`` aggregates. Near the limit with one as_of per entity, but every event joins every
  as_of whose longest window holds it, so many cutoffs per entity multiply the work.
* ``running``: per entity, running totals of counts and sums ordered by time, read with ASOF joins
  at ``as_of`` and at ``as_of - window``; every window is a difference. Time grows with events +
  spine rows. Minimums, maximums and distinct counts cannot be differenced, so they still use
  the join (restricted to the windows and columns that need it).

Every event group of one source with the same strategy is computed in one pass
(:func:`event_block`). The strategy is ``auto`` by default: ``running`` when the spine holds more
than :data:`RUNNING_ABOVE` as_of times per entity on average, ``join`` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..data import quote

ENTITY = "__entity"
AS_OF = "__as_of"
SPINE = "_spine"
RUNNING_ABOVE = 100.0
"""`auto` switches to running totals above this many as_of times per entity. Measured here
(benchmarks/features, DuckDB 2.0, 2 cores), the join was faster at 26 weekly cutoffs per entity
with 1M and 5M events, so running totals are kept for dense (e.g. daily) cutoffs."""
RUNNABLE = ("count", "sum", "mean")


@dataclass(frozen=True)
class Agg:
    op: str  # count | sum | mean | min | max | count_distinct
    column: str  # "*" or a column (or derived column) of the source relation
    seconds: int
    cond: str | None  # SQL over alias e, or None for every row
    feature: str  # output name; a name starting with "__" is internal (trend inputs)


@dataclass(frozen=True)
class EventPlan:
    group: str
    source: str  # the source's view name, quoted
    entity: str  # quoted entity column
    time: str  # quoted time column
    derived: dict[str, str]  # internal column name -> SQL expression over the source row
    aggs: list[Agg]
    recency: tuple[str, str] | None  # (days_since_last, days_since_first) feature names
    trends: list[tuple[str, str, str]]  # (feature, numerator agg feature, denominator)
    strategy: str  # auto | join | running
    outputs: list[str] = field(default_factory=list)  # visible feature names, in order


def pick_strategy(plan: EventPlan, cutoffs_per_entity: float | None) -> str:
    if plan.strategy != "auto":
        return plan.strategy
    if cutoffs_per_entity is not None and cutoffs_per_entity > RUNNING_ABOVE:
        return "running"
    return "join"


def _relation(plans: list[EventPlan]) -> str:
    plan = plans[0]
    extra = "".join(f", {expr} AS {quote(name)}" for p in plans for name, expr in p.derived.items())
    return f"(SELECT *{extra}, {plan.time} AS __t FROM {plan.source})"


def _value(agg: Agg) -> str:
    return "e.__t" if agg.column == "*" else f"e.{quote(agg.column)}"


def _join_expr(agg: Agg) -> str:
    where = f"e.__t >= s.{AS_OF} - to_seconds({agg.seconds})"
    if agg.cond:
        where += f" AND {agg.cond}"
    value = _value(agg)
    if agg.op == "count":
        return f"count({value}) FILTER (WHERE {where})"
    if agg.op == "count_distinct":
        return f"count(DISTINCT {value}) FILTER (WHERE {where})"
    if agg.op == "sum":
        return f"CAST(coalesce(sum({value}) FILTER (WHERE {where}), 0) AS DOUBLE)"
    fn = {"mean": "avg", "min": "min", "max": "max"}[agg.op]
    return f"{fn}({value}) FILTER (WHERE {where})"


def _same(aggs: list[Agg]) -> dict[str, str]:
    """Each aggregate's feature -> the first aggregate computing the same numbers (groups of one
    source often repeat one, e.g. the overall 30d count of several ``by`` groups)."""
    first: dict[tuple[str, str, int, str | None], str] = {}
    return {
        a.feature: first.setdefault((a.op, a.column, a.seconds, a.cond), a.feature) for a in aggs
    }


def _join_part(plans: list[EventPlan], aggs: list[Agg]) -> str:
    plan = plans[0]
    longest = max(a.seconds for a in aggs)
    same = _same(aggs)
    unique = [a for a in aggs if same[a.feature] == a.feature]
    selects = ", ".join(f"{_join_expr(a)} AS {quote(a.feature)}" for a in unique)
    return (
        f"SELECT s.{ENTITY}, s.{AS_OF}, {selects} FROM {SPINE} s "
        f"LEFT JOIN {_relation(plans)} e ON e.{plan.entity} = s.{ENTITY} "
        f"AND e.__t < s.{AS_OF} AND e.__t >= s.{AS_OF} - to_seconds({longest}) "
        f"GROUP BY s.{ENTITY}, s.{AS_OF}"
    )


def _stat_keys(agg: Agg) -> list[tuple[str, str, str | None]]:
    """The running totals an aggregate needs: ("n", column, cond) counts, ("s", ...) sums."""
    if agg.op == "count":
        return [("n", agg.column, agg.cond)]
    if agg.op == "sum":
        return [("s", agg.column, agg.cond)]
    return [("s", agg.column, agg.cond), ("n", agg.column, agg.cond)]


def _running_part(
    plans: list[EventPlan], aggs: list[Agg], want_last: bool
) -> tuple[str, dict[str, str]]:
    """The running-totals query (one row per spine row) and each aggregate's expression over
    it (alias ``r``)."""
    plan = plans[0]
    stats: dict[tuple[str, str, str | None], str] = {}
    for agg in aggs:
        for key in _stat_keys(agg):
            stats.setdefault(key, f"__st{len(stats)}")
    per_time = []
    for (kind, column, cond), name in stats.items():
        value = "*" if column == "*" else f"e.{quote(column)}"
        filt = f" FILTER (WHERE {cond})" if cond else ""
        if kind == "n":
            per_time.append(f"count({value}){filt} AS {name}")
        else:
            per_time.append(f"CAST(sum({value}){filt} AS DOUBLE) AS {name}")
    names = list(stats.values())
    windows = sorted({a.seconds for a in aggs})
    stat_cols = "".join(f", {x}" for x in per_time)
    ev = (
        f"SELECT CAST(e.{plan.entity} AS VARCHAR) AS __k, e.__t{stat_cols} "
        f"FROM {_relation(plans)} e WHERE e.__t IS NOT NULL AND e.{plan.entity} IS NOT NULL "
        "GROUP BY ALL"
    )
    cum_cols = "".join(f", sum({n}) OVER w AS {n}" for n in names)
    cum = (
        f"SELECT __k, __t{cum_cols} FROM ({ev}) "
        "WINDOW w AS (PARTITION BY __k ORDER BY __t ROWS BETWEEN UNBOUNDED PRECEDING AND "
        "CURRENT ROW)"
    )
    joins = [f"ASOF LEFT JOIN __cum a ON s.{ENTITY} = a.__k AND s.{AS_OF} > a.__t"]
    lo = {}
    for i, seconds in enumerate(windows):
        lo[seconds] = f"b{i}"
        joins.append(
            f"ASOF LEFT JOIN __cum b{i} ON s.{ENTITY} = b{i}.__k "
            f"AND s.{AS_OF} - to_seconds({seconds}) > b{i}.__t"
        )
    selects = [f"s.{ENTITY}", f"s.{AS_OF}"]
    if want_last:
        selects.append("a.__t AS __last")
    for (_kind, _column, _cond), name in stats.items():
        for seconds, alias in lo.items():
            selects.append(
                f"coalesce(a.{name}, 0) - coalesce({alias}.{name}, 0) AS {name}_{seconds}"
            )
    sql = f"WITH __cum AS ({cum}) SELECT {', '.join(selects)} FROM {SPINE} s {' '.join(joins)}"
    exprs: dict[str, str] = {}
    for agg in aggs:
        keys = [f"r.{stats[k]}_{agg.seconds}" for k in _stat_keys(agg)]
        if agg.op == "count":
            exprs[agg.feature] = f"CAST({keys[0]} AS BIGINT)"
        elif agg.op == "sum":
            exprs[agg.feature] = f"CAST({keys[0]} AS DOUBLE)"
        else:
            exprs[agg.feature] = (
                f"CASE WHEN {keys[1]} > 0 THEN CAST({keys[0]} AS DOUBLE) / {keys[1]} END"
            )
    return sql, exprs


def event_block(plans: list[EventPlan], strategy: str) -> tuple[str, list[str]]:
    """One SQL over the spine for event groups that share a source: SELECT __entity, __as_of,
    <every visible feature of every plan>."""
    plan = plans[0]
    aggs = [a for p in plans for a in p.aggs]
    recency = any(p.recency for p in plans)
    running_aggs = [a for a in aggs if strategy == "running" and a.op in RUNNABLE]
    join_aggs = [a for a in aggs if a not in running_aggs]
    ctes: list[str] = []
    expr: dict[str, str] = {}
    base = "s"
    if running_aggs or (strategy == "running" and recency):
        sql, running_exprs = _running_part(plans, running_aggs, want_last=recency)
        ctes.append(f"r AS ({sql})")
        expr.update(running_exprs)
        base = "r"
    if join_aggs:
        ctes.append(f"j AS ({_join_part(plans, join_aggs)})")
        same = _same(join_aggs)
        expr.update({a.feature: f"j.{quote(same[a.feature])}" for a in join_aggs})
    last = "r.__last" if base == "r" and recency else None
    first = "f.__first"
    if recency and last is None:
        # The entity's first event rides along the ASOF join's rows (a window minimum in the
        # same scan, instead of a second GROUP BY over every event): a spine row matches an
        # event exactly when the first event is before its as_of, which is when
        # days_since_first has a value.
        key = f"CAST({plan.entity} AS VARCHAR)"
        ctes.append(
            f"l AS (SELECT s.{ENTITY}, s.{AS_OF}, e.__t AS __last, e.__first FROM {SPINE} s "
            f"ASOF LEFT JOIN (SELECT {key} AS __k, {plan.time} AS __t, "
            f"min({plan.time}) OVER (PARTITION BY {key}) AS __first "
            f"FROM {plan.source} WHERE {plan.time} IS NOT NULL) e "
            f"ON s.{ENTITY} = e.__k AND s.{AS_OF} > e.__t)"
        )
        last, first = "l.__last", "l.__first"
    if recency and first == "f.__first":
        ctes.append(
            f"f AS (SELECT CAST({plan.entity} AS VARCHAR) AS __k, min({plan.time}) AS __first "
            f"FROM {plan.source} GROUP BY 1)"
        )
    tables = {"r": base == "r", "j": bool(join_aggs), "l": last == "l.__last"}
    driver = "r" if tables["r"] else "j" if tables["j"] else "l"
    joins = []
    for alias in ("r", "j", "l"):
        if tables[alias] and alias != driver:
            joins.append(
                f"JOIN {alias} ON {alias}.{ENTITY} = {driver}.{ENTITY} "
                f"AND {alias}.{AS_OF} = {driver}.{AS_OF}"
            )
    if recency and first == "f.__first":
        joins.append(f"LEFT JOIN f ON f.__k = {driver}.{ENTITY}")
    outputs: list[str] = []
    selects = [f"{driver}.{ENTITY}", f"{driver}.{AS_OF}"]
    for p in plans:
        for agg in p.aggs:
            if not agg.feature.startswith("__"):
                selects.append(f"{expr[agg.feature]} AS {quote(agg.feature)}")
                outputs.append(agg.feature)
        for name, num, den in p.trends:
            selects.append(f"CAST({expr[num]} AS DOUBLE) / nullif({expr[den]}, 0) AS {quote(name)}")
            outputs.append(name)
        if p.recency:
            last_name, first_name = p.recency
            selects.append(f"{days_between(last, f'{driver}.{AS_OF}')} AS {quote(last_name)}")
            selects.append(
                f"CASE WHEN {first} < {driver}.{AS_OF} THEN "
                f"{days_between(first, f'{driver}.{AS_OF}')} END AS {quote(first_name)}"
            )
            outputs += [last_name, first_name]
    with_clause = f"WITH {', '.join(ctes)} " if ctes else ""
    sql = f"{with_clause}SELECT {', '.join(selects)} FROM {driver} {' '.join(joins)}"
    return sql, outputs


def days_between(start: str, end: str) -> str:
    """Days from ``start`` to ``end`` (timestamps), to the microsecond."""
    return f"(epoch_us({end}) - epoch_us({start})) / 86400000000.0"
