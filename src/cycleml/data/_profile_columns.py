"""Per-column statistics of a profile, in batched DuckDB queries (see ``_profile``).

Passes, each one query per batch of at most ``BATCH`` columns (never one query per statistic):

1. aggregates: non-null count, distinct (exact or HyperLogLog), moments, quantiles, min/max,
   text lengths and the count of values passing each semantic pattern (above ``EXACT_ROWS``
   rows, quantiles come first from one sampled query, and moments from shifted sums of powers);
2. the same numeric/datetime aggregates over text columns parsed as numbers or datetimes;
3. histograms (equal-width bins from pass 1's min/max; day/week/month/year buckets), exact
   distinct counts of integer columns from bitmaps, and top values (exact GROUP BY, or
   ``approx_top_k`` recounted exactly for very many distinct values);
4. null masks in file order (Arrow bitmaps) for the longest run of nulls, only of columns that
   have some nulls.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import duckdb
import numpy as np
import pyarrow.compute as pc

from . import _cleaning_checks as _checks
from . import _types
from ._sources import quote, sql_literal

BATCH = 200  # columns per query
EXACT_ROWS = 1_000_000  # up to this many rows: exact distinct counts and quantiles
EXACT_VALUES = 20_000_000  # rows x columns held at once by exact quantiles in one query
TOP = 10
# The TOP most frequent values of a grouped CTE ``g(v, n)`` (a top-N, not a sort of every group).
_TOP_OF_G = (
    "(SELECT list({'value': v, 'count': n} ORDER BY n DESC, v) "
    f"FROM (SELECT v, n FROM g ORDER BY n DESC, v LIMIT {TOP}))"
)
# approx_top_k candidates recounted exactly for the top TOP (asking for only TOP misses most of
# the true top values of a long-tailed column: measured on the benchmark's user_id and email).
TOP_CANDIDATES = 100
SMALL_ROWS = 10_000  # up to this many rows, distinct counts come from a list of the values
# Up to this many distinct values, a text column's values are grouped once for its top values,
# exact distinct count, patterns and the cleaning rules' checks (each distinct value tested once).
TOP_GROUP_LIMIT = 100_000
# Above TOP_GROUP_LIMIT (text: patterns then checked on a sample) and up to this many distinct
# values, top values and the distinct count still come from an exact GROUP BY (over 2M keys it
# costs less than approx_top_k and its recount); above it, from approx_top_k.
APPROX_TOP_LIMIT = 2_000_000
# ... unless distinct/non-null is at least this: then no top values are listed (each value is
# rare, and approx_top_k over millions of distinct values is the slowest sketch of the profile).
NEAR_UNIQUE = 0.8
HIST_BINS = 20
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
QUANTILE_KEYS = ("p05", "p25", "p50", "p75", "p95")
# Above EXACT_ROWS rows, quantiles (and datetime medians) are the exact quantiles of a Bernoulli
# sample of about this many rows (one standard error at the median: 0.05% of the ranks), in one
# query: ~6x cheaper than DuckDB's t-digest over every row, and as accurate.
QUANTILE_SAMPLE = 1_000_000
# An integer column whose range (max - min + 1) is at most this many values gets its exact
# distinct count from a bitmap (``bitstring_agg``: one bit per value in the range, no hashing).
BITMAP_RANGE = 1 << 27


@dataclass
class Col:
    """One column while it is being profiled: its facts, then its statistics."""

    name: str
    dtype: str
    base: str
    stats: dict[str, Any] = field(default_factory=dict)
    facts: _types.ColumnFacts | None = None
    semantic: str = "other"
    parsed: str | None = None  # SQL of the value parsed as a number or timestamp (text columns)

    @property
    def q(self) -> str:
        return quote(self.name)

    @property
    def value_kind(self) -> str | None:
        """``number`` or ``datetime`` when numeric/time statistics apply."""
        if self.semantic == "boolean":
            return None
        if self.base in ("integer", "float") or (
            self.base == "string" and self.parsed and self.semantic == "number"
        ):
            return "number"
        if self.base == "datetime" or (self.base == "string" and self.semantic == "datetime"):
            return "datetime"
        return None

    def value_sql(self) -> str:
        """The column as a DOUBLE (numbers, finite only) or TIMESTAMP (datetimes)."""
        if self.parsed:
            return self.parsed
        if self.base == "integer":  # always finite: no test per value
            return f"{self.q}::DOUBLE"
        if self.base == "float":
            return f"CASE WHEN isfinite({self.q}::DOUBLE) THEN {self.q}::DOUBLE END"
        return self.q


def batches(items: Sequence[Col], size: int) -> Iterator[Sequence[Col]]:
    for i in range(0, len(items), max(1, size)):
        yield items[i : i + max(1, size)]


def _one_row(con: duckdb.DuckDBPyConnection, sql: str) -> tuple:
    return con.sql(sql).fetchall()[0]


# -- pass 1: aggregates -----------------------------------------------------------------------


def aggregate(
    con: duckdb.DuckDBPyConnection,
    view: str,
    cols: list[Col],
    rows: int,
    sampled: list[dict] | None = None,
) -> None:
    """Fill ``stats`` with counts, distinct, moments, quantiles and pattern matches. Above
    ``EXACT_ROWS`` rows the quantiles come from :func:`sampled_quantiles` (noted in
    ``sampled``)."""
    exact = rows <= EXACT_ROWS
    numeric = sum(c.base in ("integer", "float") for c in cols)
    size = BATCH if not exact or not numeric else max(1, min(BATCH, EXACT_VALUES // max(rows, 1)))
    if not exact:  # first: the sample's medians are the shifts of the moment sums below
        kinds = {"integer": "number", "float": "number", "datetime": "datetime"}
        todo = [(c, kinds[c.base]) for c in cols if c.base in kinds]
        sampled_quantiles(con, view, todo, rows, sampled)
    for batch in batches(cols, size):
        exprs: list[str] = []
        slots: list[tuple[Col, list[str]]] = []
        for col in batch:
            names, parts = _aggregates(col, exact, rows <= SMALL_ROWS)
            exprs.extend(parts)
            slots.append((col, names))
        values = _one_row(con, f"SELECT {', '.join(exprs)} FROM {view}")
        i = 0
        for col, names in slots:
            for key in names:
                col.stats[key] = values[i]
                i += 1
            if "moment_n" in col.stats:
                col.stats.update(_moments(col.stats))
    if exact and rows > SMALL_ROWS:
        exact_distinct(con, view, cols)
    for col in cols:
        col.stats.setdefault("distinct_approx", col.stats.get("distinct"))


def exact_distinct(con: duckdb.DuckDBPyConnection, view: str, cols: Sequence[Col]) -> None:
    """Exact distinct counts, each column in a scalar subquery of its own: one aggregate with
    many ``count(DISTINCT)`` is ~2-3x slower than the same counts as separate subqueries (each
    runs as its own parallel pipeline). Integer columns whose range (from pass 1's min/max) is
    at most ``BITMAP_RANGE`` values are counted from a bitmap instead, also exactly. Text
    columns are left to :func:`text_patterns`, which groups their values anyway."""
    todo = [c for c in cols if c.base != "string"]  # text: grouped whole by text_patterns
    for batch in batches(todo, BATCH):
        exprs = [
            f"(SELECT {_bitmap_sql(c) or f'count(DISTINCT {c.q})'} FROM {view})" for c in batch
        ]
        values = _one_row(con, f"SELECT {', '.join(exprs)}")
        for col, value in zip(batch, values, strict=True):
            col.stats["distinct"] = int(value or 0)


def _moments(s: dict[str, Any]) -> dict[str, float | None]:
    """Mean, sample standard deviation and sample skewness (adjusted Fisher-Pearson, as
    DuckDB's ``skewness``) from the sums of powers of ``x - shift`` (the shift, a median of a
    sample, keeps the sums of squares and cubes from cancelling)."""
    n, shift = int(s.pop("moment_n") or 0), float(s.pop("shift"))
    s1, s2, s3 = (float(s.pop(k) or 0.0) for k in ("moment_s1", "moment_s2", "moment_s3"))
    if n == 0:
        return {"mean": None, "std": None, "skew": None}
    d = s1 / n
    m2 = max(s2 / n - d * d, 0.0)  # central moments (population)
    m3 = s3 / n - 3 * d * s2 / n + 2 * d**3
    std = math.sqrt(m2 * n / (n - 1)) if n > 1 else None
    skew = None
    if n > 2 and m2 > 0:
        skew = m3 / m2**1.5 * math.sqrt(n * (n - 1)) / (n - 2)
    return {"mean": shift + d, "std": std, "skew": skew}


def _aggregates(col: Col, exact: bool, small: bool) -> tuple[list[str], list[str]]:
    q = col.q
    out: dict[str, str] = {"non_null": f"count({q})"}
    if small:  # count(DISTINCT) sets up a hash table per column: slow on wide, short tables
        out["distinct"] = f"len(list_distinct(list({q})))"
    elif not exact:  # exact (and not small): exact_distinct, after this pass
        out["distinct_approx"] = f"approx_count_distinct({q})"
    if col.base in ("integer", "float"):
        # 0 exactly when every value is 0 or 1, given 0 <= min and max <= 1 (x(1-x) >= 0 there;
        # NaN and infinities make it non-zero): a sum, cheaper than counting with a filter.
        out["zero_one_gap"] = f"sum({q}::DOUBLE * (1 - {q}::DOUBLE))"
        if col.base == "float":  # integers are always finite
            out["not_finite"] = f"count(*) FILTER (WHERE NOT isfinite({q}::DOUBLE))"
        out.update(_value_aggregates(col, exact, "number"))
    elif col.base == "datetime":
        out.update(_value_aggregates(col, exact, "datetime"))
    elif col.base == "boolean":
        out["trues"] = f"count(*) FILTER (WHERE {q})"
    elif col.base == "string":
        out["len_min"] = f"min(length({q}))"
        out["len_mean"] = f"avg(length({q}))"
        out["len_max"] = f"max(length({q}))"
    return list(out), list(out.values())


def _value_aggregates(col: Col, exact: bool, kind: str) -> dict[str, str]:
    x = col.value_sql()
    out = {"min": f"min({x})", "max": f"max({x})"}
    quantiles = col.stats.get("quantiles")
    if kind == "number" and not exact and not col.parsed and quantiles and quantiles[2] is not None:
        # Sums of powers (cheaper than DuckDB's stddev and skewness), shifted by the median.
        shift = float(quantiles[2])
        col.stats["shift"] = shift
        d = f"({x} - {shift!r})"
        out.update(
            {
                "moment_n": f"count({x})",
                "moment_s1": f"sum({d})",
                "moment_s2": f"sum({d} * {d})",
                "moment_s3": f"sum({d} * {d} * {d})",
            }
        )
    elif kind == "number":
        out.update({"mean": f"avg({x})", "std": f"stddev_samp({x})", "skew": f"skewness({x})"})
    if exact:  # else sampled_quantiles, in a query of its own
        out.update(_quantile_aggregates(x, kind))
    return out


def _quantile_aggregates(x: str, kind: str) -> dict[str, str]:
    if kind == "number":
        qs = "[" + ", ".join(str(p) for p in QUANTILES) + "]"
        return {"quantiles": f"quantile_cont({x}, {qs})"}
    if kind == "datetime":
        return {"median": f"quantile_disc({x}, 0.5)"}
    return {}


def sampled_quantiles(
    con: duckdb.DuckDBPyConnection,
    view: str,
    todo: Sequence[tuple[Col, str]],
    rows: int,
    sampled: list[dict] | None,
) -> None:
    """Quantiles (numbers) and medians (datetimes) of a large source: exact over a Bernoulli
    sample of about ``QUANTILE_SAMPLE`` rows (seed 0), all columns in one query per batch."""
    if not todo or not rows:
        return
    percent = min(100.0, 100.0 * QUANTILE_SAMPLE / rows)
    for batch in batches(list(todo), BATCH):
        exprs, slots = [], []
        for col, kind in batch:
            parts = _quantile_aggregates(col.value_sql(), kind)
            exprs.extend(parts.values())
            slots.append((col, list(parts)))
        values = _one_row(
            con,
            f"SELECT {', '.join(exprs)} FROM {view} USING SAMPLE {percent!r}% (bernoulli, 0)",
        )
        i = 0
        for col, names in slots:
            for key in names:
                col.stats[key] = values[i]
                i += 1
            col.stats["quantiles_sampled"] = True
    if sampled is not None:
        names = ", ".join(c.name for c, _ in todo[:10]) + (" ..." if len(todo) > 10 else "")
        sampled.append(
            {
                "statistic": f"quantiles and medians of {names}",
                "rows": min(rows, round(rows * percent / 100)),
                "of": rows,
                "method": f"Bernoulli sample of {percent:.3g}% of the rows (seed 0), exact "
                "quantiles of the sample: about 0.05% of the ranks at the median (one "
                "standard error at 1M sampled rows)",
            }
        )


def parsed_aggregates(
    con: duckdb.DuckDBPyConnection,
    view: str,
    cols: list[Col],
    rows: int,
    sampled: list[dict] | None = None,
) -> None:
    """Pass 2: numeric/datetime statistics of text columns parsed as numbers or datetimes."""
    exact = rows <= EXACT_ROWS
    size = BATCH if not exact else max(1, min(BATCH, EXACT_VALUES // max(rows, 1)))
    for batch in batches(cols, size):
        exprs, slots = [], []
        for col in batch:
            parts = _value_aggregates(col, exact, col.value_kind or "")
            exprs.extend(parts.values())
            slots.append((col, list(parts)))
        values = _one_row(con, f"SELECT {', '.join(exprs)} FROM {view}")
        i = 0
        for col, names in slots:
            for key in names:
                col.stats[key] = values[i]
                i += 1
    if not exact:
        todo = [(c, c.value_kind) for c in cols if c.value_kind]
        sampled_quantiles(con, view, todo, rows, sampled)  # type: ignore[arg-type]


def parse_sql(col: Col) -> str | None:
    if col.semantic == "number":
        return f"TRY_CAST({col.q} AS DOUBLE)"
    if col.semantic == "datetime":
        formats = ", ".join(sql_literal(f) for f in _types.DATE_FORMATS)
        return (
            f"(CASE WHEN regexp_matches({col.q}, '^\\s*[0-9]{{4}}-[0-9]{{1,2}}') "
            f"THEN TRY_CAST({col.q} AS TIMESTAMP) "
            f"WHEN regexp_matches({col.q}, {sql_literal(_types.DATE_PREFIX_RE)}) "
            f"THEN try_strptime({col.q}, [{formats}]) END)"
        )
    return None


# -- pass 1b: text patterns ------------------------------------------------------------------

PATTERN_SAMPLE = 100_000  # rows of a text column with very many distinct values checked


def text_patterns(
    con: duckdb.DuckDBPyConnection, view: str, cols: list[Col], sampled: list[dict]
) -> None:
    """How many values of each text column pass each semantic pattern, plus its exact distinct
    count and top values. The values are grouped first, so each distinct value is checked once
    and weighted by its count: exact over the whole column. A column with more than
    ``TOP_GROUP_LIMIT`` distinct values is checked on a reservoir sample of ``PATTERN_SAMPLE``
    values (counts scaled to the column); the invalid count of its final type is then counted
    over the whole column (:func:`exact_invalid`). A text column whose distinct count is not
    known yet (sources of ``SMALL_ROWS`` to ``EXACT_ROWS`` rows: see :func:`exact_distinct`)
    is grouped whole first: the groups give its exact distinct count and top values, and are
    checked only when there are at most ``TOP_GROUP_LIMIT`` of them (else the sample, as
    above)."""
    strings = [c for c in cols if c.base == "string"]
    unknown = [c for c in strings if _known_distinct(c) is None]
    if unknown:
        _group_unknown(con, view, unknown)
    for batch in batches([c for c in strings if "patterns_sampled" not in c.stats], BATCH):
        exprs = []
        for col in batch:
            many = int(_known_distinct(col) or 0) > TOP_GROUP_LIMIT
            exprs.append(_pattern_sql(view, col, many))
        values = _one_row(con, f"SELECT {', '.join(exprs)}")
        for col, value in zip(batch, values, strict=True):
            _read_patterns(col, value or {}, sampled)


def _known_distinct(col: Col) -> int | None:
    value = col.stats.get("distinct")
    return value if value is not None else col.stats.get("distinct_approx")


def _pattern_fields(col: Col, many: bool) -> list[str]:
    fields = ["'with_space': sum(n) FILTER (WHERE regexp_matches(v, '\\s'))"]
    fields += [f"'{d.name}': sum(n) FILTER (WHERE {d.valid('v')})" for d in _types.PATTERNS]
    if many:
        return fields + ["'checked': count(*)"]
    fields.append("'groups': count(*)")
    # The cleaning rules' text tests, on the same groups (see _cleaning_checks).
    fields.append(f"'folded': {_checks.FOLDED_SQL.replace('{v}', 'v')}")
    fields += [
        f"'chk_{k}': sum(n) FILTER (WHERE {cond})" for k, cond in _checks.checks_sql("v").items()
    ]
    return fields


def _pattern_sql(view: str, col: Col, many: bool) -> str:
    non_null = int(col.stats["non_null"])
    col.stats["patterns_sampled"] = many and non_null > PATTERN_SAMPLE
    if many:
        percent = min(100.0, 100.0 * PATTERN_SAMPLE / max(non_null, 1))
        rows_sql = (
            f"SELECT v, 1 AS n FROM (SELECT {col.q} AS v FROM {view} "
            f"WHERE {col.q} IS NOT NULL) USING SAMPLE {percent!r}% (bernoulli, 0)"
        )
    else:
        rows_sql = (
            f"SELECT {col.q} AS v, count(*) AS n FROM {view} WHERE {col.q} IS NOT NULL GROUP BY 1"
        )
    fields = _pattern_fields(col, many)
    return (
        f"(WITH g AS MATERIALIZED ({rows_sql}) SELECT {{{', '.join(fields)}"
        + ("" if many else f", 'top': {_TOP_OF_G}")
        + "} FROM g)"
    )


def _group_unknown(con: duckdb.DuckDBPyConnection, view: str, cols: list[Col]) -> None:
    """Group each column's values once: exact distinct count and top values always, the
    patterns and checks of :func:`_pattern_fields` only over at most ``TOP_GROUP_LIMIT`` groups
    (the others are checked on a sample afterwards)."""
    for batch in batches(cols, BATCH):
        exprs = []
        for col in batch:
            fields = _pattern_fields(col, False)
            exprs.append(
                f"(WITH g AS MATERIALIZED (SELECT {col.q} AS v, count(*) AS n FROM {view} "
                f"WHERE {col.q} IS NOT NULL GROUP BY 1), "
                f"f AS (SELECT v, n FROM g WHERE (SELECT count(*) FROM g) <= {TOP_GROUP_LIMIT}) "
                f"SELECT {{{', '.join(fields)}, 'all_groups': (SELECT count(*) FROM g), "
                f"'top': {_TOP_OF_G}}} FROM f)"
            )
        values = _one_row(con, f"SELECT {', '.join(exprs)}")
        for col, value in zip(batch, values, strict=True):
            value = value or {}
            groups = int(value.get("all_groups") or 0)
            col.stats["distinct"] = groups
            non_null = int(col.stats["non_null"])
            if groups <= TOP_GROUP_LIMIT:
                col.stats["patterns_sampled"] = False
                _read_patterns(col, value, [])
                continue
            if groups >= NEAR_UNIQUE * non_null:  # as distributions() does: no top list
                col.stats["top"], col.stats["top_exact"] = [], False
                col.stats["top_note"] = "mostly unique: at least 80% of the values are distinct"
            else:
                col.stats["top"] = [
                    {"value": plain(t["value"]), "count": int(t["count"])}
                    for t in value.get("top") or []
                ]
                col.stats["top_exact"] = True


def _read_patterns(col: Col, value: dict, sampled: list[dict]) -> None:
    non_null = int(col.stats["non_null"])
    scale = 1.0
    if col.stats["patterns_sampled"]:
        checked = int(value.get("checked") or 0)
        scale = non_null / checked if checked else 1.0
        sampled.append(
            {
                "statistic": f"semantic patterns of column {col.name!r}",
                "rows": checked,
                "of": non_null,
                "method": f"Bernoulli sample of about {PATTERN_SAMPLE:,} values (seed "
                "0); the final type's invalid count is exact",
            }
        )
    for d in _types.PATTERNS:
        col.stats[f"match_{d.name}"] = round(int(value.get(d.name) or 0) * scale)
    col.stats["with_space"] = round(int(value.get("with_space") or 0) * scale)
    if "groups" in value:
        col.stats["distinct"] = int(value.get("all_groups") or value["groups"])
        checks = {"non_null": non_null, "folded": int(value.get("folded") or 0)}
        checks |= {k[4:]: int(v or 0) for k, v in value.items() if k.startswith("chk_")}
        col.stats["text_checks"] = checks
        col.stats["top"] = [
            {"value": plain(t["value"]), "count": int(t["count"])} for t in value.get("top") or []
        ]
        col.stats["top_exact"] = True


def exact_invalid(con: duckdb.DuckDBPyConnection, view: str, cols: list[Col]) -> None:
    """Whole-column counts of the pattern a sampled text column was typed by (or partly fits)."""
    exprs, slots = [], []
    for col in cols:
        for name in col.stats.pop("recount", []):
            exprs.append(f"count(*) FILTER (WHERE {_types.BY_NAME[name].valid(col.q)})")
            slots.append((col, name))
    for i in range(0, len(exprs), BATCH):
        values = _one_row(con, f"SELECT {', '.join(exprs[i : i + BATCH])} FROM {view}")
        for (col, name), value in zip(slots[i : i + BATCH], values, strict=True):
            col.stats[f"match_{name}"] = int(value)


# -- pass 3: histograms and top values --------------------------------------------------------


def time_unit(low: Any, high: Any) -> str:
    """day up to 90 days, week up to 2 years, month up to 30 years, then year."""
    days = (_as_datetime(high) - _as_datetime(low)).total_seconds() / 86400
    if days <= 90:
        return "day"
    if days <= 730:
        return "week"
    return "month" if days <= 365 * 30 else "year"


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day)


def distributions(con: duckdb.DuckDBPyConnection, view: str, cols: list[Col]) -> list[Col]:
    """Histograms and top values; returns the columns whose top values are approximate. Per
    batch: one query of scalar subqueries (histograms as GROUP BYs of bucket numbers, bitmaps,
    ``approx_top_k``) and one query of GROUP BYs (top values and exact distinct counts of
    columns with at most APPROX_TOP_LIMIT distinct values)."""
    approx: list[Col] = []
    for batch in batches(cols, BATCH):
        aggs: list[tuple[Col, str, str]] = []
        groups: list[tuple[Col, str]] = []
        for col in batch:
            if int(col.stats["non_null"]) == 0:
                col.stats["top"], col.stats["top_exact"] = [], True
                continue
            hist = _histogram_sql(col, view)
            if hist:
                aggs.append((col, "hist", hist))
            if "top" in col.stats:  # text: found with its patterns
                continue
            distinct = int(col.stats.get("distinct") or col.stats["distinct_approx"])
            if distinct > TOP_GROUP_LIMIT and distinct >= NEAR_UNIQUE * int(col.stats["non_null"]):
                # Nearly every value occurs once: no top list worth a sketch over the column.
                col.stats["top"], col.stats["top_exact"] = [], False
                col.stats["top_note"] = "mostly unique: at least 80% of the values are distinct"
                if bitmap := _bitmap_sql(col):
                    aggs.append((col, "bitmap", bitmap))
            elif distinct > APPROX_TOP_LIMIT:
                aggs.append((col, "approx_top", f"approx_top_k({col.q}, {TOP_CANDIDATES})"))
                approx.append(col)
                if bitmap := _bitmap_sql(col):
                    aggs.append((col, "bitmap", bitmap))
            else:
                groups.append(
                    (
                        col,
                        f"(WITH g AS MATERIALIZED (SELECT {col.q} AS v, count(*) AS n "
                        f"FROM {view} WHERE {col.q} IS NOT NULL GROUP BY 1) "
                        f"SELECT {{'top': {_TOP_OF_G}, 'groups': (SELECT count(*) FROM g)}})",
                    )
                )
        if aggs:
            exprs = [e if kind == "hist" else f"(SELECT {e} FROM {view})" for _, kind, e in aggs]
            values = _one_row(con, f"SELECT {', '.join(exprs)}")
            for (col, kind, _), value in zip(aggs, values, strict=True):
                if kind == "hist":
                    col.stats["histogram"] = _histogram_value(col, value)
                elif kind == "bitmap":
                    col.stats["distinct"], col.stats["distinct_exact"] = int(value), True
                else:
                    col.stats["top_candidates"] = list(value or [])
                    col.stats["top_exact"] = False
        if groups:
            values = _one_row(con, f"SELECT {', '.join(e for _, e in groups)}")
            for (col, _), value in zip(groups, values, strict=True):
                col.stats["top"] = [
                    {"value": plain(t["value"]), "count": int(t["count"])}
                    for t in (value or {}).get("top") or []
                ]
                col.stats["top_exact"] = True
                if value and not col.stats["distinct_exact"]:  # the groups are the distinct values
                    col.stats["distinct"], col.stats["distinct_exact"] = int(value["groups"]), True
    if approx:
        _recount(con, view, approx)
    return approx


def _bitmap_sql(col: Col) -> str | None:
    """The exact distinct count of an integer column with a range of at most BITMAP_RANGE
    values (one bit per value of the range, set where it occurs), or None."""
    low, high = col.stats.get("min"), col.stats.get("max")
    if col.base != "integer" or col.stats.get("distinct_exact") or low is None or high is None:
        return None
    if max(abs(float(low)), abs(float(high))) >= 2**53:  # the bounds came through a DOUBLE
        return None
    low, high = int(low), int(high)
    if high - low + 1 > BITMAP_RANGE:
        return None
    return f"bit_count(bitstring_agg({col.q}, {low}, {high}))"


def _histogram_sql(col: Col, view: str) -> str | None:
    """A scalar subquery: the histogram of ``col`` as a MAP of bucket -> count. A GROUP BY of
    the bucket numbers (a perfect hash of at most HIST_BINS keys) costs about half of DuckDB's
    ``histogram`` aggregate (measured: 0.36-0.38 vs 0.61-0.69 CPU s, 15 columns of 1M rows)."""
    kind = col.value_kind
    low, high = col.stats.get("min"), col.stats.get("max")
    if kind is None or low is None or high is None:
        return None
    x = col.value_sql()
    if kind == "number":
        low, high = float(low), float(high)
        if high == low:
            bucket = "0"
        else:
            width = (high - low) / HIST_BINS
            bucket = f"least(floor(({x} - {low!r}) / {width!r}), {HIST_BINS - 1})::INTEGER"
    else:
        unit = time_unit(low, high)
        col.stats["histogram_unit"] = unit
        bucket = f"date_trunc('{unit}', {x})"
    return (
        "(SELECT map(list(k ORDER BY k), list(n ORDER BY k)) FROM "
        f"(SELECT {bucket} AS k, count(*) AS n FROM {view} WHERE {x} IS NOT NULL GROUP BY 1))"
    )


def _histogram_value(col: Col, value: Any) -> dict[str, Any]:
    counts = dict(value or {})
    if col.value_kind == "number":
        low, high = float(col.stats["min"]), float(col.stats["max"])
        if high == low:
            return {"unit": "bin", "edges": [low, high], "counts": [int(sum(counts.values()))]}
        width = (high - low) / HIST_BINS
        edges = [low + i * width for i in range(HIST_BINS)] + [high]
        return {
            "unit": "bin",
            "edges": [num(e) for e in edges],
            "counts": [int(counts.get(i, 0)) for i in range(HIST_BINS)],
        }
    starts = sorted(counts)
    return {
        "unit": col.stats["histogram_unit"],
        "starts": [plain(s) for s in starts],
        "counts": [int(counts[s]) for s in starts],
    }


def _recount(con: duckdb.DuckDBPyConnection, view: str, cols: list[Col]) -> None:
    """Exact counts of the approx_top_k candidates: one ``histogram`` per column of the values
    that are candidates (others become NULL), all columns in one query."""
    exprs, params, slots = [], [], []
    for col in cols:
        candidates = [c for c in col.stats.pop("top_candidates", []) if c is not None]
        if not candidates:
            continue
        marks = ", ".join("?" for _ in candidates)
        exprs.append(f"histogram(CASE WHEN {col.q} IN ({marks}) THEN {col.q} END)")
        params.extend(candidates)
        slots.append(col)
    found: dict[str, list[dict]] = {c.name: [] for c in cols}
    if exprs:
        values = con.execute(f"SELECT {', '.join(exprs)} FROM {view}", params).fetchall()[0]
        for col, counts in zip(slots, values, strict=True):
            found[col.name] = [
                {"value": plain(v), "count": int(n)} for v, n in dict(counts or {}).items()
            ]
    for col in cols:
        col.stats["top"] = sorted(found[col.name], key=lambda t: (-t["count"], str(t["value"])))[
            :TOP
        ]


# -- pass 4: longest runs of nulls in file order ----------------------------------------------


def null_runs(con: duckdb.DuckDBPyConnection, view: str, cols: list[Col], rows: int) -> None:
    """The longest run of consecutive nulls of each column, in the order rows are read (DuckDB
    keeps the file order: ``preserve_insertion_order`` is on)."""
    todo = []
    for col in cols:
        nulls = rows - int(col.stats["non_null"])
        col.stats["longest_null_run"] = nulls if nulls in (0, rows) else None
        if col.stats["longest_null_run"] is None:
            todo.append(col)
    for batch in batches(todo, BATCH):
        exprs = ", ".join(f"{c.q} IS NULL" for c in batch)
        table = con.sql(f"SELECT {exprs} FROM {view}").to_arrow_table()
        for col, array in zip(batch, table.columns, strict=True):
            mask = pc.fill_null(array, False).to_numpy(zero_copy_only=False)
            col.stats["longest_null_run"] = longest_true_run(mask)


def longest_true_run(mask: np.ndarray) -> int:
    if mask.size == 0 or not mask.any():
        return 0
    padded = np.concatenate(([0], mask.astype(np.int8), [0]))
    edges = np.diff(padded)
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return int((ends - starts).max())


# -- values as JSON ---------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A JSON-able value: numbers stay numbers (finite), times become ISO text."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float | Decimal | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return str(value)


def num(value: Any, digits: int = 12) -> float | None:
    """A finite float rounded to ``digits`` significant digits, else None."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return float(f"{number:.{digits}g}") if math.isfinite(number) else None
