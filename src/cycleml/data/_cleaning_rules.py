"""The cleaning rules. Each takes a :class:`Context` and returns suggestions; thresholds are
module constants so that docs and tests name the same numbers."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable
from functools import cached_property
from typing import Any

import numpy as np

from ..spec import ColumnLabel
from ..spec._cleaning import _referenced_by
from ._cleaning import Suggestion
from ._cleaning_checks import DATE_FORMATS, currency_sql, datetime_checks_sql, fits_sql
from ._sources import SourceSet, quote
from ._views import PATTERNS, datetime_sql, is_numeric, is_text
from ._views import currency_sql as currency_value_sql

EMPTY_NULL_RATE = 0.8  # drop a column at or above this null rate
PARSE_RATE = 0.3  # text becomes a datetime when at least this share parses
PATTERN_RATE = 0.5  # text is email/phone/zip/number when at least this share fits
COMPLETE_ROWS = 0.7  # suggest dropping incomplete rows when at least this share is complete
SKEW_MEAN = 0.7  # impute with the mean when |skew| is below this, else the median
VIF_LIMIT = 10.0  # a column is collinear when its variance inflation factor is above this
VIF_SAMPLE = 20_000
Z_LIMIT = 3.0  # outliers: |z| above this
LEAK_AUC = 0.98  # one column alone predicting the label this well is a leakage suspect
HIGH_CARDINALITY = 255
LOG_SKEW = 2.0  # log-transform non-negative numbers skewed more than this
IMBALANCE = 0.2  # minority class share below this is imbalanced
PREVIEW = 5
PREFILTER_ROWS = 200_000  # above this many rows, text rules first look at a sample
PREFILTER_SAMPLE = 20_000
PREVIEW_SCAN = 10_000  # above PREFILTER_ROWS rows, previews come from this many matching rows
SNAKE = re.compile(r"^[a-z_][a-z0-9_]*$")


class Context:
    """One source being checked: its profile, view and spec, with cached facts."""

    def __init__(self, sources: SourceSet, name: str, view: str, profile: dict[str, Any]) -> None:
        self.sources = sources
        self.con = sources.con
        self.spec = sources.spec
        self.name = name
        self.view = view
        self.profile = profile
        self.source = sources.spec.sources[name]
        self.rows = int(profile.get("rows") or 0)
        self.types = sources.columns(name)
        self.facts = {c["name"]: c for c in profile.get("columns", []) if c["name"] in self.types}
        # What was decided on a sample (the profile's ``sampled`` notes take these).
        self.sampled: list[dict[str, Any]] = []
        self.screened: dict[str, tuple] = {}  # a column's aggregates on the screening sample
        self._temp: list[str] = []  # temporary tables to drop (see close)

    def checks(self, column: str) -> dict[str, int] | None:
        """The profile's exact counts of the text tests of :mod:`._cleaning_checks` for
        ``column`` (None when the profile has none: then a rule counts with its own SQL)."""
        fact = self.facts.get(column) or {}
        checks = fact.get("text_checks")
        return checks if isinstance(checks, dict) and "non_null" in checks else None

    def q(self, sql: str) -> list[tuple]:
        return self.con.execute(sql).fetchall()

    def one(self, sql: str) -> tuple:
        return self.q(sql)[0]

    def values(self, expr: str, where: str, limit: int = PREVIEW) -> list[Any]:
        """Up to ``limit`` distinct values, in order; on a source of more than PREFILTER_ROWS
        rows, taken from the first PREVIEW_SCAN matching rows (a preview, not a census)."""
        rows = self.q(
            f"SELECT DISTINCT {expr} AS v FROM {self.preview_relation(where)} WHERE {where} "
            f"ORDER BY 1 LIMIT {limit}"
        )
        return [_plain(r[0]) for r in rows]

    def preview_relation(self, where: str) -> str:
        """The relation previews read: the view, or on a source of more than PREFILTER_ROWS rows
        its first PREVIEW_SCAN rows matching ``where`` (so a preview never sorts every row)."""
        if self.rows <= PREFILTER_ROWS:
            return self.view
        return f"(SELECT * FROM {self.view} WHERE {where} LIMIT {PREVIEW_SCAN}) AS _p"

    def rows_where(self, where: str, limit: int = PREVIEW) -> list[dict]:
        frame = self.con.sql(f"SELECT * FROM {self.view} WHERE {where} LIMIT {limit}").df()
        return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]

    def aggregate(
        self, exprs: dict[str, list[str]], chunk: int = 1500, *, relation: str | None = None
    ) -> dict[str, tuple]:
        """Per column, the values of its aggregate expressions over the view (or ``relation``):
        one query per ``chunk`` expressions, not one per column (wide sources have thousands)."""
        flat = [(col, i, e) for col, items in exprs.items() for i, e in enumerate(items)]
        values: dict[str, list] = {col: [None] * len(items) for col, items in exprs.items()}
        for start in range(0, len(flat), chunk):
            part = flat[start : start + chunk]
            row = self.one(
                f"SELECT {', '.join(e for _, _, e in part)} FROM {relation or self.view}"
            )
            for (col, i, _), value in zip(part, row, strict=True):
                values[col][i] = value
        return {col: tuple(v) for col, v in values.items()}

    def candidates(self, columns: list[str], exprs, keep, rule: str = "") -> list[str]:
        """The columns worth an exact count over every row: on a large source, ``keep`` (a
        test of a column and its ``exprs`` values) is first asked on a fixed-size sample, so a text
        rule scans the whole source only for the columns it may fire on. The screen is noted in
        :attr:`sampled`; the counts of the columns kept are exact."""
        if self.rows <= PREFILTER_ROWS or not columns:
            return list(columns)
        counted = self.aggregate({c: exprs(c) for c in columns}, relation=self.screen_sample)
        self.screened.update(counted)
        kept = [c for c in columns if keep(c, counted[c])]
        self.sampled.append(
            {
                "statistic": f"cleaning rule {rule}: which of {len(columns)} text column(s) to "
                f"count ({', '.join(columns[:5])}{', ...' if len(columns) > 5 else ''}); "
                f"{len(kept)} kept",
                "rows": min(PREFILTER_SAMPLE, self.rows),
                "of": self.rows,
                "method": "reservoir sample (seed 0) screens the columns; the counts of the "
                "columns kept, and so of every suggestion, are exact",
            }
        )
        return kept

    def text_counts(
        self, rule: str, keys: list[str], exprs, keep=None, narrow=None
    ) -> dict[str, tuple[int, ...]]:
        """Per text column: its non-null count and the counts of the text tests ``keys`` (see
        :mod:`._cleaning_checks`), from the profile's ``text_checks`` when it has them, else
        counted by ``exprs`` (a column's SQL aggregates, ``count(col)`` first) over every row,
        after the sample screen ``keep`` on a large source."""
        out: dict[str, tuple[int, ...]] = {}
        rest = []
        for col in self.texts:
            checks = self.checks(col)
            if checks is not None and all(k in checks for k in keys):
                out[col] = (int(checks["non_null"]), *(int(checks[k]) for k in keys))
            else:
                rest.append(col)
        if keep is not None:
            rest = self.candidates(rest, exprs, keep, rule)
        # ``narrow`` (with a screening sample): which of a column's tests can matter; the
        # others are not counted over every row (reported as 0).
        wanted = {
            c: narrow(c, self.screened[c]) if narrow and c in self.screened else None for c in rest
        }
        counted = self.aggregate(
            {
                c: [e for i, e in enumerate(exprs(c)) if not i or not wanted[c] or wanted[c][i - 1]]
                for c in rest
            }
        )
        for c in rest:
            values = iter(counted[c])
            row = [int(next(values) or 0)]
            for i in range(len(keys)):
                row.append(int(next(values) or 0) if not wanted[c] or wanted[c][i] else 0)
            out[c] = tuple(row)
        return {c: out[c] for c in self.texts if c in out}

    def nulls(self, column: str) -> int:
        fact = self.facts.get(column)
        if fact is not None and "nulls" in fact:
            return int(fact["nulls"])
        return int(self.one(f"SELECT count(*) - count({quote(column)}) FROM {self.view}")[0])

    def distinct(self, column: str) -> int:
        fact = self.facts.get(column)
        if fact is not None and fact.get("distinct") is not None:
            return int(fact["distinct"])
        return int(self.one(f"SELECT count(DISTINCT {quote(column)}) FROM {self.view}")[0])

    def semantic(self, column: str) -> str:
        fact = self.facts.get(column, {})
        if fact.get("semantic"):
            return str(fact["semantic"])
        dtype = self.types[column].upper()
        if is_numeric(dtype):
            return "number"
        if dtype.startswith(("TIMESTAMP", "DATE")):
            return "datetime"
        if dtype == "BOOLEAN":
            return "boolean"
        if is_text(dtype):
            return "high_cardinality" if self.distinct(column) > HIGH_CARDINALITY else "category"
        return "other"

    def referenced(self, column: str) -> bool:
        return _referenced_by(self.spec, self.name, column) is not None

    @cached_property
    def numbers(self) -> list[str]:
        """Numeric columns that are measurements (not the entity, not identifiers, not 0/1)."""
        out = []
        for col, dtype in self.types.items():
            if not is_numeric(dtype) or col in (self.source.entity, self.source.time):
                continue
            if self.semantic(col) in ("identifier", "boolean") or self.distinct(col) <= 2:
                continue
            out.append(col)
        return out

    @cached_property
    def screen_sample(self) -> str:
        """The screening sample of the text columns (PREFILTER_SAMPLE rows, reservoir, seed 0),
        drawn once for every rule into a temporary table (dropped by :meth:`close`)."""
        table = quote(f"_cycleml_screen_{uuid.uuid4().hex[:12]}")
        columns = ", ".join(quote(c) for c in self.texts) or "*"
        self.con.execute(
            f"CREATE TEMP TABLE {table} AS SELECT {columns} FROM {self.view} "
            f"USING SAMPLE reservoir({PREFILTER_SAMPLE} ROWS) REPEATABLE (0)"
        )
        self._temp.append(table)
        return f"{table} AS _prefilter"

    def close(self) -> None:
        """Drop the temporary tables this context made."""
        while self._temp:
            self.con.execute(f"DROP TABLE IF EXISTS {self._temp.pop()}")

    @cached_property
    def texts(self) -> list[str]:
        return [
            c
            for c, t in self.types.items()
            if is_text(t) and c not in (self.source.entity, self.source.time)
        ]

    @cached_property
    def stats(self) -> dict[str, dict[str, float | None]]:
        """mean, std, skewness, min of each of :attr:`numbers`: the profile's (finite values,
        12 significant digits), else one query."""
        keys = ("mean", "std", "skew", "min")
        out: dict[str, dict[str, float | None]] = {}
        todo = []
        for c in self.numbers:
            fact = self.facts.get(c) or {}
            if (
                fact.get("non_null")
                and fact.get("mean") is not None
                and all(k in fact for k in keys)
            ):
                out[c] = {k: _float(fact[k]) for k in keys}
            else:
                todo.append(c)
        if not todo:
            return out
        parts = []
        for c in todo:
            x = f"CAST({quote(c)} AS DOUBLE)"
            x = f"CASE WHEN isfinite({x}) THEN {x} END"
            parts += [f"avg({x})", f"stddev_samp({x})", f"skewness({x})", f"min({x})"]
        row = self.one(f"SELECT {', '.join(parts)} FROM {self.view}")
        for i, c in enumerate(todo):
            out[c] = dict(zip(keys, map(_float, row[4 * i : 4 * i + 4]), strict=True))
        return {c: out[c] for c in self.numbers}

    def step(self, rule: str, key: str | None, action: str, /, **fields) -> dict[str, Any]:
        return {"id": sid(self.name, rule, key), "source": self.name, "action": action, **fields}


def sid(source: str, rule: str, column: str | None = None) -> str:
    """A stable suggestion id: ``source.rule[.column]`` (column made id-safe)."""
    if column is None:
        return f"{source}.{rule}"
    safe = re.sub(r"[^A-Za-z0-9_+\-]", "_", column)
    return f"{source}.{rule}.{safe}"


# ---- rules ---------------------------------------------------------------------------------


def clean_names(ctx: Context) -> list[Suggestion]:
    keywords = {
        r[0]
        for r in ctx.q(
            "SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'"
        )
    }
    mapping: dict[str, str] = {}
    reasons: dict[str, str] = {}
    taken = set(ctx.types)
    for col in ctx.types:
        if ctx.referenced(col):
            continue
        new = snake_case(col)
        why = None
        if col[:1].isdigit():
            why = "starts with a digit"
        elif col.lower() in keywords:
            why = "is a SQL keyword"
            new = f"{new}_"
        elif not SNAKE.match(col):
            why = "is not snake_case"
        if why is None or new == col:
            continue
        while new in taken:
            new += "_"
        taken.add(new)
        mapping[col], reasons[col] = new, why
    if not mapping:
        return []
    return [
        Suggestion(
            sid(ctx.name, "clean_names"),
            ctx.name,
            "clean_names",
            f"rename {len(mapping)} column(s) to snake_case",
            {"columns": {c: reasons[c] for c in mapping}},
            ctx.step("clean_names", None, "rename_columns", mapping=mapping),
            [{"from": c, "to": n} for c, n in mapping.items()],
        )
    ]


def snake_case(name: str) -> str:
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip())
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    if not text:
        text = "column"
    return f"_{text}" if text[0].isdigit() else text


def drop_empty(ctx: Context) -> list[Suggestion]:
    out = []
    for col in ctx.types:
        nulls = ctx.nulls(col)
        rate = nulls / ctx.rows if ctx.rows else 0.0
        if ctx.rows == 0 or rate < EMPTY_NULL_RATE or ctx.referenced(col):
            continue
        what = "empty" if nulls == ctx.rows else f"{rate:.0%} null"
        out.append(
            Suggestion(
                sid(ctx.name, "drop_empty", col),
                ctx.name,
                "drop_empty",
                f"remove column {col!r} ({what})",
                {"nulls": nulls, "rows": ctx.rows, "null_rate": round(rate, 4)},
                ctx.step("drop_empty", col, "drop_columns", columns=[col]),
                ctx.values(quote(col), f"{quote(col)} IS NOT NULL"),
            )
        )
    return out


def drop_single_value(ctx: Context) -> list[Suggestion]:
    out = []
    for col in ctx.types:
        if ctx.rows == 0 or ctx.referenced(col) or ctx.nulls(col) / ctx.rows >= EMPTY_NULL_RATE:
            continue
        if ctx.distinct(col) != 1:
            continue
        out.append(
            Suggestion(
                sid(ctx.name, "drop_single_value", col),
                ctx.name,
                "drop_single_value",
                f"remove column {col!r} (one value only)",
                {"distinct": 1, "nulls": ctx.nulls(col), "rows": ctx.rows},
                ctx.step("drop_single_value", col, "drop_columns", columns=[col]),
                ctx.values(quote(col), f"{quote(col)} IS NOT NULL"),
            )
        )
    return out


def fix_invalid(ctx: Context) -> list[Suggestion]:
    out = []

    def conditions(col: str) -> dict[str, str]:
        return fits_sql(f"CAST({quote(col)} AS VARCHAR)")

    def exprs(col: str) -> list[str]:
        return [f"count({quote(col)})"] + [
            f"count(*) FILTER (WHERE {cond})" for cond in conditions(col).values()
        ]

    def hinted_kind(col: str) -> str | None:
        return next((k for k in PATTERNS if k in col.lower()), None)

    def may_fit(col: str, row: tuple) -> bool:
        non_null, fits = int(row[0] or 0), [int(v or 0) for v in row[1:]]
        if not non_null:
            return False
        hinted = hinted_kind(col)
        if hinted and fits[list(PATTERNS).index(hinted)] / non_null >= 0.1:
            return True
        return max(fits) / non_null >= PATTERN_RATE / 2

    def plausible(col: str, row: tuple) -> list[bool]:
        """On the screening sample: the kinds that may be the one chosen (the hinted kind,
        and any within 0.2 of the best share); the others are not counted on every row."""
        checked = max(int(row[0] or 0), 1)
        shares = [int(v or 0) / checked for v in row[1:]]
        hinted = hinted_kind(col)
        return [
            share >= max(shares) - 0.2 or kind == hinted
            for kind, share in zip([*PATTERNS, "number"], shares, strict=True)
        ]

    keys = [f"fits_{k}" for k in [*PATTERNS, "number"]]
    counted = ctx.text_counts("fix_invalid", keys, exprs, may_fit, plausible)
    for col in counted:
        c = f"CAST({quote(col)} AS VARCHAR)"
        conds = conditions(col)
        row = counted[col]
        non_null, fits = int(row[0]), dict(zip(conds, map(int, row[1:]), strict=True))
        if non_null == 0:
            continue
        kind = max(conds, key=lambda k: fits[k])
        hinted = hinted_kind(col)
        if hinted and fits[hinted] / non_null >= 0.2:
            kind = hinted
        elif fits[kind] / non_null < PATTERN_RATE:
            continue
        bad = non_null - fits[kind]
        if bad == 0 and kind != "number":
            continue
        if kind == "number" and bad == 0:
            continue  # every value is a number already written as text: parse_datetime/none
        where = f"{c} IS NOT NULL AND NOT coalesce({conds[kind]}, FALSE)"
        out.append(
            Suggestion(
                sid(ctx.name, "fix_invalid", col),
                ctx.name,
                "fix_invalid",
                f"set {bad} value(s) of {col!r} that are not a valid {kind} to NULL",
                {
                    "kind": kind,
                    "invalid": bad,
                    "checked": non_null,
                    "invalid_rate": round(bad / non_null, 4),
                },
                ctx.step("fix_invalid", col, "fix_invalid", column=col, kind=kind),
                ctx.values(quote(col), where),
            )
        )
    floats = [c for c in ctx.numbers if ctx.types[c].upper() in ("DOUBLE", "FLOAT")]
    # The profile's invalid count of a float column is its non-finite values.
    known = {c: ctx.facts[c].get("invalid") for c in floats if c in ctx.facts}
    infinite = ctx.aggregate(
        {
            c: [f"count(*) FILTER (WHERE NOT isfinite({quote(c)}))"]
            for c in floats
            if known.get(c) is None
        }
    )
    infinite.update({c: (int(n),) for c, n in known.items() if n is not None})
    for col in floats:
        bad = int(infinite[col][0])
        if bad:
            out.append(
                Suggestion(
                    sid(ctx.name, "fix_invalid", col),
                    ctx.name,
                    "fix_invalid",
                    f"set {bad} non-finite value(s) of {col!r} (NaN, infinity) to NULL",
                    {"kind": "number", "invalid": bad, "checked": ctx.rows},
                    ctx.step("fix_invalid", col, "fix_invalid", column=col, kind="number"),
                    ctx.values(f"CAST({quote(col)} AS VARCHAR)", f"NOT isfinite({quote(col)})"),
                )
            )
    return out


CASE_DISTINCT = 10_000  # reformat_case looks at columns with at most this many distinct values


def _case_counts(ctx: Context) -> dict[str, tuple[int, ...]]:
    """Per text column: distinct values, distinct ignoring case and spaces, all-upper and
    all-lower values: the profile's grouped counts, else one grouped query over the unpivoted
    text columns left (a column the profile found with more than CASE_DISTINCT distinct values
    is skipped: the rule would not look at it)."""
    out: dict[str, tuple[int, ...]] = {}
    rest = []
    for col in ctx.texts:
        checks = ctx.checks(col)
        fact = ctx.facts.get(col) or {}
        if checks is not None and fact.get("distinct_exact") and "folded" in checks:
            out[col] = (int(fact["distinct"]), checks["folded"], checks["upper"], checks["lower"])
        elif fact.get("distinct") is not None and int(fact["distinct"]) > 2 * CASE_DISTINCT:
            continue  # well above the limit even for an estimate
        else:
            rest.append(col)
    if not rest:
        return out
    cols = ", ".join(quote(c) for c in rest)
    rows = ctx.q(
        f"SELECT name, count(DISTINCT value), count(DISTINCT lower(trim(value))), "
        "count(*) FILTER (WHERE value = upper(value) AND value <> lower(value)), "
        "count(*) FILTER (WHERE value = lower(value) AND value <> upper(value)) "
        f"FROM (UNPIVOT (SELECT {cols} FROM {ctx.view}) ON {cols} INTO NAME name VALUE value) "
        "GROUP BY name"
    )
    out.update({r[0]: tuple(int(v) for v in r[1:]) for r in rows})
    return out


def reformat_case(ctx: Context) -> list[Suggestion]:
    out = []
    counted = _case_counts(ctx)
    for col in ctx.texts:
        c = quote(col)
        if col not in counted:
            continue
        distinct, folded, upper, lower = counted[col]
        if distinct == folded or distinct > CASE_DISTINCT:
            continue
        variants = ctx.q(
            f"SELECT lower(trim({c})) AS k, list(DISTINCT {c} ORDER BY {c}) FROM {ctx.view} "
            f"WHERE {c} IS NOT NULL GROUP BY 1 HAVING count(DISTINCT {c}) > 1 "
            f"ORDER BY count(*) DESC, 1 LIMIT {PREVIEW}"
        )
        case = "upper" if upper > lower else "lower"
        out.append(
            Suggestion(
                sid(ctx.name, "reformat_case", col),
                ctx.name,
                "reformat_case",
                f"write {col!r} in one case ({distinct} spellings of {folded} values)",
                {"distinct": distinct, "distinct_ignoring_case": folded},
                ctx.step("reformat_case", col, "normalize_case", column=col, case=case),
                [list(v) for _, v in variants],
            )
        )
    return out


def reformat_currency(ctx: Context) -> list[Suggestion]:
    out = []

    def exprs(col: str) -> list[str]:
        return [f"count(trim({quote(col)}))"] + [
            f"count(*) FILTER (WHERE {cond})" for cond in currency_sql(quote(col)).values()
        ]

    counted = ctx.text_counts(
        "currency_to_number",
        ["currency", "currency_mark"],
        exprs,
        lambda _col, row: bool(row[0]) and row[1] / row[0] >= 0.4,
    )
    for col in counted:
        non_null, fits, marked = map(int, counted[col])
        if non_null == 0 or fits / non_null < 0.8 or marked == 0:
            continue
        sample = ctx.q(
            f"SELECT DISTINCT {quote(col)}, {currency_value_sql(quote(col))} "
            f"FROM {ctx.preview_relation(f'{quote(col)} IS NOT NULL')} "
            f"WHERE {quote(col)} IS NOT NULL ORDER BY 1 LIMIT {PREVIEW}"
        )
        out.append(
            Suggestion(
                sid(ctx.name, "currency_to_number", col),
                ctx.name,
                "currency_to_number",
                f"read {col!r} as numbers (currency text such as {sample[0][0]!r})",
                {"currency_values": fits, "checked": non_null},
                ctx.step("currency_to_number", col, "currency_to_number", column=col),
                [{"from": a, "to": b} for a, b in sample],
            )
        )
    return out


def reformat_datetime(ctx: Context) -> list[Suggestion]:
    out = []
    formats: list[str | None] = [None, *DATE_FORMATS]

    def exprs(col: str) -> list[str]:
        return [f"count({quote(col)})"] + [
            f"count(*) FILTER (WHERE {cond})" for cond in datetime_checks_sql(quote(col)).values()
        ]

    def may_parse(_col: str, row: tuple) -> bool:
        return bool(row[0]) and max(row[1:]) / row[0] >= PARSE_RATE / 2

    keys = list(datetime_checks_sql("v"))
    counted = ctx.text_counts("parse_datetime", keys, exprs, may_parse)
    for col in counted:
        c = quote(col)
        row = counted[col]
        non_null = int(row[0])
        if non_null == 0:
            continue
        best = max(range(len(formats)), key=lambda i: row[1 + i])
        parsed = int(row[1 + best])
        if parsed / non_null < PARSE_RATE:
            continue
        fmt = formats[best]
        fields: dict[str, Any] = {"column": col}
        if fmt:
            fields["format"] = fmt
        expr = datetime_sql(c, fmt)
        relation = ctx.preview_relation(f"{c} IS NOT NULL")
        out.append(
            Suggestion(
                sid(ctx.name, "parse_datetime", col),
                ctx.name,
                "parse_datetime",
                f"read {col!r} as datetimes ({parsed / non_null:.0%} parse"
                + (f" with {fmt}" if fmt else "")
                + ")",
                {
                    "parsed": parsed,
                    "checked": non_null,
                    "parse_rate": round(parsed / non_null, 4),
                    "format": fmt,
                    "unparsed": non_null - parsed,
                },
                ctx.step("parse_datetime", col, "parse_datetime", **fields),
                [
                    {"from": a, "to": _plain(b)}
                    for a, b in ctx.q(
                        f"SELECT DISTINCT {c}, {expr} FROM {relation} WHERE {c} IS NOT NULL "
                        f"ORDER BY ({expr}) IS NOT NULL, 1 LIMIT {PREVIEW}"
                    )
                ],
            )
        )
    return out


def impute(ctx: Context) -> list[Suggestion]:
    if ctx.rows == 0:
        return []
    gaps = [
        c
        for c in ctx.types
        if 0 < ctx.nulls(c) / ctx.rows < EMPTY_NULL_RATE and c not in (ctx.source.entity,)
    ]
    out = []
    if not gaps:
        return out
    where = " AND ".join(f"{quote(c)} IS NOT NULL" for c in gaps)
    complete = int(ctx.one(f"SELECT count(*) FROM {ctx.view} WHERE {where}")[0])
    if complete / ctx.rows >= COMPLETE_ROWS:
        out.append(
            Suggestion(
                sid(ctx.name, "drop_incomplete_rows"),
                ctx.name,
                "drop_incomplete_rows",
                f"remove the {ctx.rows - complete} row(s) with a missing value "
                f"({complete / ctx.rows:.0%} of rows are complete)",
                {"complete_rows": complete, "rows": ctx.rows, "columns": gaps},
                ctx.step("drop_incomplete_rows", None, "drop_incomplete_rows", columns=gaps),
                ctx.rows_where(f"NOT ({where})"),
                note="an alternative to imputing each column",
            )
        )
    series = _is_time_series(ctx)
    for col in gaps:
        nulls = ctx.nulls(col)
        evidence: dict[str, Any] = {"nulls": nulls, "null_rate": round(nulls / ctx.rows, 4)}
        if series:
            step = ctx.step("impute", col, "forward_fill", column=col)
            title = f"fill {col!r} forward from the entity's previous row ({nulls} missing)"
        elif col in ctx.stats:
            skew = ctx.stats[col]["skew"]
            strategy = "mean" if skew is not None and abs(skew) < SKEW_MEAN else "median"
            evidence["skew"] = skew
            step = ctx.step("impute", col, "impute", column=col, strategy=strategy)
            title = f"impute {col!r} with the training split's {strategy} ({nulls} missing)"
        elif ctx.semantic(col) in ("category", "boolean", "high_cardinality"):
            step = ctx.step("impute", col, "impute", column=col, strategy="most_frequent")
            title = f"impute {col!r} with its most frequent value ({nulls} missing)"
        else:
            continue
        out.append(
            Suggestion(
                step["id"],
                ctx.name,
                "impute",
                title,
                evidence,
                step,
                ctx.rows_where(f"{quote(col)} IS NULL", 3),
            )
        )
    return out


def _is_time_series(ctx: Context) -> bool:
    src = ctx.source
    if not src.entity or not src.time or ctx.rows == 0:
        return False
    entities = ctx.distinct(src.entity) if src.entity in ctx.types else ctx.rows
    return entities * 2 <= ctx.rows  # several timestamped rows per entity


def collinear(ctx: Context) -> list[Suggestion]:
    cols = [c for c in ctx.numbers if (ctx.stats[c]["std"] or 0) > 0]
    if len(cols) < 2:
        return []
    select = ", ".join(f"CAST({quote(c)} AS DOUBLE)" for c in cols)
    where = " AND ".join(f"isfinite(CAST({quote(c)} AS DOUBLE))" for c in cols)
    data = np.asarray(
        ctx.q(
            f"SELECT {select} FROM {ctx.view} WHERE {where} "
            f"USING SAMPLE reservoir({VIF_SAMPLE} ROWS) REPEATABLE (7)"
        ),
        dtype=float,
    )
    if len(data) <= len(cols) + 1:
        return []
    keep = list(range(len(cols)))
    out = []
    while len(keep) >= 2:
        vifs = variance_inflation(data[:, keep])
        worst = int(np.argmax(vifs))
        if vifs[worst] <= VIF_LIMIT:
            break
        col = cols[keep[worst]]
        if not ctx.referenced(col):
            out.append(
                Suggestion(
                    sid(ctx.name, "drop_collinear", col),
                    ctx.name,
                    "drop_collinear",
                    f"remove {col!r}: the other numeric columns explain it "
                    f"(variance inflation {_round(vifs[worst])})",
                    {
                        "vif": _round(vifs[worst]),
                        "limit": VIF_LIMIT,
                        "sample_rows": len(data),
                        "with": [cols[i] for i in keep if i != keep[worst]],
                    },
                    ctx.step("drop_collinear", col, "drop_columns", columns=[col]),
                )
            )
        keep.pop(worst)
    return out


def variance_inflation(x: np.ndarray) -> np.ndarray:
    """VIF of each column: 1 / (1 - R²) of it regressed on the others (with an intercept),
    the diagonal of the inverse correlation matrix; infinite for an exact linear combination."""
    corr = np.corrcoef(x, rowvar=False)
    try:
        inv = np.linalg.inv(corr)
        vif = np.diag(inv)
        if np.any(vif < 0) or not np.all(np.isfinite(vif)):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        vif = np.full(x.shape[1], np.inf)
        for i in range(x.shape[1]):
            others = np.delete(x, i, axis=1)
            design = np.column_stack([np.ones(len(x)), others])
            fit, *_ = np.linalg.lstsq(design, x[:, i], rcond=None)
            resid = x[:, i] - design @ fit
            total = ((x[:, i] - x[:, i].mean()) ** 2).sum()
            r2 = 1 - (resid**2).sum() / total
            vif[i] = np.inf if r2 >= 1 - 1e-12 else 1 / (1 - r2)
    return vif


def duplicates(ctx: Context) -> list[Suggestion]:
    dup = ctx.profile.get("duplicate_rows")
    if dup is None:
        dup = ctx.rows - int(
            ctx.one(f"SELECT count(*) FROM (SELECT DISTINCT * FROM {ctx.view})")[0]
        )
    if not dup:
        return []
    cols = ", ".join(quote(c) for c in ctx.types)
    frame = (
        ctx.con.sql(
            f"SELECT *, count(*) AS copies FROM {ctx.view} GROUP BY ALL HAVING count(*) > 1 "
            f"ORDER BY copies DESC LIMIT {PREVIEW}"
        ).df()
        if cols
        else None
    )
    preview = (
        []
        if frame is None
        else [{k: _plain(v) for k, v in r.items()} for r in frame.to_dict("records")]
    )
    return [
        Suggestion(
            sid(ctx.name, "drop_duplicates"),
            ctx.name,
            "drop_duplicates",
            f"remove {dup} duplicate row(s)",
            {"duplicate_rows": int(dup), "rows": ctx.rows},
            ctx.step("drop_duplicates", None, "drop_duplicates"),
            preview,
        )
    ]


def outliers(ctx: Context) -> list[Suggestion]:
    out = []
    bounds = {}
    for col in ctx.numbers:
        s = ctx.stats[col]
        if s["std"] and s["mean"] is not None:
            bounds[col] = (s["mean"] - Z_LIMIT * s["std"], s["mean"] + Z_LIMIT * s["std"])

    def outside(col: str) -> str:
        return f"{quote(col)} < {bounds[col][0]!r} OR {quote(col)} > {bounds[col][1]!r}"

    # Each column's value when outside its bounds (else NULL), computed once per row.
    alias = {col: quote(f"_o{i}") for i, col in enumerate(bounds)}
    exprs = {col: [f"count({a})", f"min({a})", f"max({a})"] for col, a in alias.items()}
    relation = None
    if bounds:  # rows outside any column's bounds, for the isolation forest (same pass)
        any_outside = " OR ".join(f"{a} IS NOT NULL" for a in alias.values())
        exprs[_ANY] = [f"count(*) FILTER (WHERE {any_outside})"]
        projected = ", ".join(
            f"CASE WHEN {outside(col)} THEN {quote(col)} END AS {a}" for col, a in alias.items()
        )
        relation = f"(SELECT {projected} FROM {ctx.view}) AS _outside"
    counted = ctx.aggregate(exprs, relation=relation)
    for col, (lower, upper) in bounds.items():
        s = ctx.stats[col]
        count = int(counted[col][0])
        preview = sorted({counted[col][1], counted[col][2]} - {None})  # the extremes
        if count == 0:
            continue
        out.append(
            Suggestion(
                sid(ctx.name, "remove_outliers", col),
                ctx.name,
                "remove_outliers",
                f"remove {count} row(s) whose {col!r} is more than {Z_LIMIT:g} standard "
                "deviations from the mean",
                {
                    "outliers": count,
                    "rows": ctx.rows,
                    "mean": s["mean"],
                    "std": s["std"],
                    "lower": lower,
                    "upper": upper,
                },
                ctx.step(
                    "remove_outliers",
                    col,
                    "remove_outliers",
                    column=col,
                    z=Z_LIMIT,
                    lower=lower,
                    upper=upper,
                ),
                [_plain(v) for v in preview or []],
            )
        )
    outside_rows = int(counted[_ANY][0]) if bounds else 0
    return out + _isolation_forest(ctx, out, outside_rows)


_ANY = "\x00any"  # the key of the any-column outlier count (no column has this name)


# Above this many rows the flagged count is estimated on a sample of this many rows. The forest
# is fitted on that sample, and IsolationForest grows each tree on max_samples=256 of its rows
# whatever the sample's size, so a larger sample would not give a better forest; the flagged
# share of the rows it was fitted on is its contamination up to ties (sklearn sets the threshold
# at that quantile of their scores). 20k rows keep the estimate within about 0.1% of the rows.
IFOREST_ESTIMATE_ROWS = 20_000


def _isolation_forest(
    ctx: Context, zscore: list[Suggestion], outside_rows: int | None = None
) -> list[Suggestion]:
    """The multivariate alternative to the z-score rule: an IsolationForest over every
    measurement column, with the contamination set to the share of z-score outlier rows."""
    from ..spec._cleaning import IsolationForestOutliers
    from ._views import _isolation_forest as forest_sql

    cols = [c for c in ctx.numbers if ctx.stats[c]["std"]]
    if not zscore or len(cols) < 2 or ctx.rows < 20:
        return []
    outside = " OR ".join(
        f"({quote(s.action['column'])} < {s.action['lower']!r} OR "
        f"{quote(s.action['column'])} > {s.action['upper']!r})"
        for s in zscore
    )
    if outside_rows is None:
        outside_rows = int(ctx.one(f"SELECT count(*) FROM {ctx.view} WHERE {outside}")[0])
    share = outside_rows / ctx.rows
    fields = {"columns": cols, "contamination": round(min(max(share, 0.001), 0.1), 4)}
    fields.update(n_estimators=100, random_state=0)
    step = ctx.step("remove_outliers_iforest", None, "remove_outliers_iforest", **fields)
    model = IsolationForestOutliers.model_validate(step)
    base = f"SELECT * FROM {ctx.view}"
    evidence: dict[str, Any] = {}
    if ctx.rows > IFOREST_ESTIMATE_ROWS:
        # Scoring every row of a large source costs minutes: estimate the flagged count on a
        # fixed-size sample (the recorded step, once applied, still scores every row). The
        # sample holds the forest's columns only (the same rows as a sample of whole rows, and
        # the text columns are never read); the preview looks the flagged rows up whole.
        sample = f"_iforest_sample_{abs(hash(ctx.name)) % 10**8}"
        ctx.con.execute(
            f"CREATE OR REPLACE TEMP TABLE {sample} AS SELECT {', '.join(map(quote, cols))} "
            f"FROM {ctx.view} USING SAMPLE reservoir({IFOREST_ESTIMATE_ROWS} ROWS) REPEATABLE (0)"
        )
        ctx._temp.append(sample)
        base = f"SELECT * FROM {sample}"
        evidence["estimated_from_sample_rows"] = IFOREST_ESTIMATE_ROWS
    scored = int(ctx.one(f"SELECT count(*) FROM ({base})")[0])
    kept_sql = forest_sql(ctx.con, model, base, f"({base}) AS _s")
    # The rows kept, scored once (the count and the preview both read them).
    kept_table = quote(f"_cycleml_iforest_kept_{uuid.uuid4().hex[:12]}")
    ctx.con.execute(f"CREATE TEMP TABLE {kept_table} AS {kept_sql}")
    ctx._temp.append(kept_table)
    kept = int(ctx.one(f"SELECT count(*) FROM {kept_table}")[0])
    flagged = round((scored - kept) * ctx.rows / scored) if scored else 0
    # The first flagged rows in value order (a set difference has no order of its own).
    flagged_sql = (
        f"SELECT * FROM (({base}) EXCEPT ALL (SELECT * FROM {kept_table})) "
        f"ORDER BY ALL LIMIT {PREVIEW}"
    )
    if evidence:
        frame = _whole_rows(ctx, cols, ctx.con.execute(flagged_sql).fetchall())
    else:
        frame = ctx.con.sql(flagged_sql).df()
    about = "about " if evidence else ""
    return [
        Suggestion(
            step["id"],
            ctx.name,
            "remove_outliers",
            f"or remove the {about}{flagged} row(s) an isolation forest over "
            f"{len(cols)} numeric columns flags as outliers",
            {"flagged": flagged, "rows": ctx.rows, **evidence, **fields},
            step,
            [{k: _plain(v) for k, v in r.items()} for r in frame.to_dict("records")],
            note="an alternative to the per-column z-score suggestions",
        )
    ]


def _whole_rows(ctx: Context, cols: list[str], values: list[tuple]) -> Any:
    """The rows of the view (at most PREVIEW) whose ``cols`` equal one of the tuples
    ``values`` (NULL matching NULL): the whole rows behind values found on a narrow sample."""
    conds, params = [], []
    for row in values:
        parts = []
        for col, value in zip(cols, row, strict=True):
            if value is None:
                parts.append(f"{quote(col)} IS NULL")
            else:
                parts.append(f"{quote(col)} = ?")
                params.append(value)
        conds.append("(" + " AND ".join(parts) + ")")
    where = " OR ".join(conds) or "false"
    return ctx.con.execute(f"SELECT * FROM {ctx.view} WHERE {where} LIMIT {PREVIEW}", params).df()


def identifiers(ctx: Context) -> list[Suggestion]:
    out = []
    if ctx.rows < 10:
        return out
    for col, dtype in ctx.types.items():
        if col in (ctx.source.entity, ctx.source.time):
            continue
        sem = ctx.semantic(col)
        unique = ctx.distinct(col) == ctx.rows - ctx.nulls(col) == ctx.rows
        looks = bool(re.search(r"(^|_)(id|uuid|key)$", col.lower()))
        if not (sem == "identifier" or (unique and (looks or is_text(dtype)))):
            continue
        if dtype.upper() in ("DOUBLE", "FLOAT") and not looks:
            continue  # unique measurements are not identifiers
        out.append(
            Suggestion(
                sid(ctx.name, "exclude_identifier", col),
                ctx.name,
                "exclude_identifier",
                f"do not use {col!r} as a feature (an identifier: one value per row)",
                {"distinct": ctx.distinct(col), "rows": ctx.rows},
                ctx.step(
                    "exclude_identifier",
                    col,
                    "exclude_features",
                    columns=[col],
                    reason="identifier",
                ),
                ctx.values(quote(col), f"{quote(col)} IS NOT NULL", 3),
            )
        )
    return out


def leakage(ctx: Context) -> list[Suggestion]:
    out = []
    for pname, problem in ctx.spec.problems.items():
        label = problem.label
        if not isinstance(label, ColumnLabel) or label.source != ctx.name:
            continue
        if problem.task != "binary" or label.column not in ctx.types:
            continue
        out.extend(_label_leaks(ctx, pname, label.column))
    if ctx.source.time:
        out.extend(_future_times(ctx))
    return out


def _label_leaks(ctx: Context, problem: str, label: str) -> list[Suggestion]:
    from sklearn.metrics import roc_auc_score

    out = []
    y_expr = f"CAST({quote(label)} AS VARCHAR)"
    for col, dtype in ctx.types.items():
        if col in (label, ctx.source.entity, ctx.source.time):
            continue
        numeric = is_numeric(dtype) or dtype.upper() == "BOOLEAN"
        if not numeric and not (is_text(dtype) and ctx.distinct(col) <= 50):
            continue
        x_expr = f"CAST({quote(col)} AS DOUBLE)" if numeric else f"CAST({quote(col)} AS VARCHAR)"
        frame = ctx.con.sql(
            f"SELECT {x_expr} AS x, {y_expr} AS y FROM {ctx.view} "
            f"WHERE {quote(label)} IS NOT NULL AND {quote(col)} IS NOT NULL"
        ).df()
        classes = sorted(frame["y"].unique())
        if len(classes) != 2 or len(frame) < 20:
            continue
        y = (frame["y"] == classes[1]).to_numpy()
        x = (
            frame["x"]
            if numeric
            else (frame["y"] == classes[1]).groupby(frame["x"]).transform("mean")
        )
        auc = float(roc_auc_score(y, x.to_numpy(dtype=float)))
        auc = max(auc, 1 - auc)
        if auc <= LEAK_AUC:
            continue
        out.append(
            Suggestion(
                sid(ctx.name, "leakage", col),
                ctx.name,
                "leakage",
                f"{col!r} alone predicts the label of {problem!r} almost perfectly "
                f"(ROC AUC {auc:.3f}): a leakage suspect",
                {
                    "problem": problem,
                    "roc_auc": round(auc, 4),
                    "limit": LEAK_AUC,
                    "rows": len(frame),
                },
                ctx.step("leakage", col, "exclude_features", columns=[col], reason="leakage"),
                ctx.rows_where(f"{quote(col)} IS NOT NULL", 3),
                note="check whether the column is only known after the outcome",
            )
        )
    return out


def _future_times(ctx: Context) -> list[Suggestion]:
    out = []
    t = quote(ctx.source.time)
    for col, dtype in ctx.types.items():
        if col == ctx.source.time or not dtype.upper().startswith(("TIMESTAMP", "DATE")):
            continue
        c = quote(col)
        later = int(ctx.one(f"SELECT count(*) FROM {ctx.view} WHERE {c} > {t}")[0])
        if later == 0:
            continue
        out.append(
            Suggestion(
                sid(ctx.name, "future_time", col),
                ctx.name,
                "leakage",
                f"{col!r} is later than the row's time {ctx.source.time!r} in {later} row(s): "
                "as a feature it would see the future",
                {"rows_after_time": later, "rows": ctx.rows},
                ctx.step("future_time", col, "exclude_features", columns=[col], reason="leakage"),
                ctx.rows_where(f"{c} > {t}", 3),
            )
        )
    return out


def encode(ctx: Context) -> list[Suggestion]:
    out = []
    labels = {
        p.label.source
        for p in ctx.spec.problems.values()
        if isinstance(p.label, ColumnLabel) and p.task in ("binary", "regression")
    }
    for col in ctx.texts:
        distinct = ctx.distinct(col)
        non_null = ctx.rows - ctx.nulls(col)
        if distinct <= HIGH_CARDINALITY or distinct >= 0.9 * max(non_null, 1):
            continue  # few values (one-hot works) or nearly unique (an identifier)
        method = "target" if ctx.name in labels else "frequency"
        out.append(
            Suggestion(
                sid(ctx.name, "encode", col),
                ctx.name,
                "encode",
                f"encode {col!r} ({distinct} values) by its {method}"
                + (" mean" if method == "target" else ""),
                {"distinct": distinct, "limit": HIGH_CARDINALITY},
                ctx.step("encode", col, "encode", column=col, method=method),
                ctx.values(quote(col), f"{quote(col)} IS NOT NULL"),
            )
        )
    return out


def log_transform(ctx: Context) -> list[Suggestion]:
    out = []
    for col in ctx.numbers:
        s = ctx.stats[col]
        if s["skew"] is None or s["min"] is None or s["min"] < 0 or s["skew"] <= LOG_SKEW:
            continue
        if ctx.distinct(col) <= 10:
            continue
        out.append(
            Suggestion(
                sid(ctx.name, "log_transform", col),
                ctx.name,
                "log_transform",
                f"log-transform {col!r} (skew {s['skew']:.2f}, no negative values)",
                {"skew": _round(s["skew"]), "min": s["min"], "limit": LOG_SKEW},
                ctx.step("log_transform", col, "log_transform", column=col),
            )
        )
    return out


def expand_dates(ctx: Context) -> list[Suggestion]:
    out = []
    groups = {n: g for n, g in ctx.spec.features.items() if g.source == ctx.name and not g.windows}
    if not groups:  # only entity-table feature groups take date parts
        return out
    for col, dtype in ctx.types.items():
        if not dtype.upper().startswith(("TIMESTAMP", "DATE")):
            continue
        if any(col in g.dates for g in groups.values()):
            continue
        parts = ["year", "month", "weekday", "days_since"]
        target = next(iter(groups), None)
        out.append(
            Suggestion(
                sid(ctx.name, "expand_dates", col),
                ctx.name,
                "expand_dates",
                f"expand {col!r} into date parts ({', '.join(parts)})",
                {"type": dtype, "feature_group": target},
                None,
                ctx.values(quote(col), f"{quote(col)} IS NOT NULL", 3),
                note=(
                    f"add to features.{target}: " if target else "add to an entity feature group: "
                )
                + f"dates: {{{col}: [{', '.join(parts)}]}}",
            )
        )
    return out


def class_imbalance(ctx: Context) -> list[Suggestion]:
    out = []
    for pname, problem in ctx.spec.problems.items():
        label = problem.label
        if not isinstance(label, ColumnLabel) or label.source != ctx.name:
            continue
        if problem.task not in ("binary", "multiclass") or label.column not in ctx.types:
            continue
        c = quote(label.column)
        counts = ctx.q(
            f"SELECT CAST({c} AS VARCHAR), count(*) FROM {ctx.view} WHERE {c} IS NOT NULL "
            "GROUP BY 1 ORDER BY 2"
        )
        total = sum(n for _, n in counts)
        if len(counts) < 2 or counts[0][1] / total >= IMBALANCE:
            continue
        share = counts[0][1] / total
        out.append(
            Suggestion(
                sid(ctx.name, "class_imbalance", pname),
                ctx.name,
                "class_imbalance",
                f"the label of {pname!r} is imbalanced: {counts[0][0]!r} is {share:.1%} of rows",
                {
                    "problem": pname,
                    "classes": {str(k): int(n) for k, n in counts},
                    "minority_share": round(share, 4),
                },
                None,
                note=(
                    "accuracy is misleading here (always predicting the majority scores "
                    f"{1 - share:.1%}); judge models by PR-AUC, or recall/precision at a goal "
                    "(metric: {name: recall, goal: 0.7})"
                ),
            )
        )
    return out


RULES: dict[str, Callable[[Context], list[Suggestion]]] = {
    "clean_names": clean_names,
    "drop_empty": drop_empty,
    "drop_single_value": drop_single_value,
    "fix_invalid": fix_invalid,
    "reformat_case": reformat_case,
    "currency_to_number": reformat_currency,
    "parse_datetime": reformat_datetime,
    "impute": impute,
    "drop_collinear": collinear,
    "drop_duplicates": duplicates,
    "remove_outliers": outliers,
    "exclude_identifier": identifiers,
    "leakage": leakage,
    "encode": encode,
    "log_transform": log_transform,
    "expand_dates": expand_dates,
    "class_imbalance": class_imbalance,
}


def _float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) or math.isinf(number) else number


def _round(value: float) -> float | None:
    return None if not math.isfinite(value) else round(float(value), 4)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if hasattr(value, "item"):
        try:
            return _plain(value.item())
        except (ValueError, TypeError):
            pass
    if value != value:  # NaT
        return None
    return str(value)
