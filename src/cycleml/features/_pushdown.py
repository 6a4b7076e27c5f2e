"""Feature SQL pushed down into PostgreSQL.

When the feature groups of a problem read tables of one PostgreSQL database, their SQL runs there
instead of pulling every row out: the DuckDB SQL the FeatureSet builds is parsed with SQLGlot, the
DuckDB-only parts are rewritten (``to_seconds``/``to_days`` as intervals, ``isodow``/``quarter``
as ``EXTRACT``, ASOF joins as ``DISTINCT ON`` joins), each source view is replaced by its table
with the same conversions the DuckDB view makes (time zones to naive UTC, NUMERIC to double), the
spine is uploaded to a temporary table and the result comes back as Arrow, cast to the types DuckDB
would have given. A group that cannot be pushed down is computed in DuckDB, with a note saying why.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import sqlglot
from sqlglot import exp

from ..data import SourceSet, quote
from ..data._sources import _adbc_connect, _hide_password, _qualified, _short
from ..spec import Spec
from ._groups import AS_OF, ENTITY, SPINE, CompiledGroup

if TYPE_CHECKING:
    from ._featureset import FeatureSet

# DuckDB result types and the PostgreSQL type that carries them back exactly; any other type
# travels as text and is cast back in DuckDB.
_PG_TYPES = {
    "BOOLEAN": "boolean",
    "SMALLINT": "smallint",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "FLOAT": "real",
    "DOUBLE": "double precision",
    "VARCHAR": "text",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
}
_ASOF_KEY = "__asof_k"


class PushdownUnsupported(Exception):
    """This SQL cannot run in PostgreSQL as it is (the reason is the message)."""


@dataclass
class PushdownPlan:
    """Which feature groups run in PostgreSQL (at ``url``) and which stay in DuckDB, and why."""

    url: str | None
    pushed: list[CompiledGroup] = field(default_factory=list)
    local: list[CompiledGroup] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# -- which groups can go --------------------------------------------------------------------------


def postgres_url(spec: Spec, group_names: list[str]) -> str | None:
    """The URL of the PostgreSQL database the first PostgreSQL-backed group reads (None: none)."""
    for name in group_names:
        source = spec.sources[spec.features[name].source]
        if source.kind == "postgres":
            return source.url
    return None


def plan_pushdown(fs: FeatureSet, schema: SourceSet) -> PushdownPlan:
    """Split the groups of ``fs`` into those PostgreSQL can run and those DuckDB must run."""
    spec = fs.spec
    url = postgres_url(spec, list(fs.problem.features))
    plan = PushdownPlan(url)
    if url is None:
        plan.local = list(fs.groups)
        return plan
    where = _hide_password(url)
    tables = _source_tables(spec, url, schema)
    cleaned = _cleaned_sources(spec)
    for group in fs.groups:
        try:
            used = _sources_in(group.sql, spec)
            outside = sorted(name for name in used if name not in tables)
            if outside:
                raise PushdownUnsupported(
                    f"it reads source(s) {', '.join(outside)} outside that database"
                )
            fixed = sorted(used & cleaned)
            if fixed:
                raise PushdownUnsupported(
                    f"the `cleaning:` steps of source(s) {', '.join(fixed)} apply in DuckDB"
                )
            collected = sorted(n for n in used if getattr(spec.sources[n], "collect", False))
            if collected:
                raise PushdownUnsupported(
                    f"source(s) {', '.join(collected)} also hold events collected into the "
                    "store (`collect: true`), which only DuckDB's view of them includes"
                )
            to_postgres(f"SELECT * FROM ({group.sql}) AS q", tables)
        except PushdownUnsupported as exc:
            plan.local.append(group)
            plan.notes.append(
                f"feature group {group.name!r} was computed in DuckDB, not pushed down to "
                f"PostgreSQL ({where}): {exc}"
            )
            continue
        plan.pushed.append(group)
    return plan


def _cleaned_sources(spec: Spec) -> set[str]:
    from ..spec._cleaning import VIEW_ACTIONS

    return {step.source for step in spec.cleaning if step.action in VIEW_ACTIONS}


def _sources_in(sql: str, spec: Spec) -> set[str]:
    return {name for name in _tables_in(sql) if name in spec.sources}


@lru_cache(maxsize=256)
def _tables_in(sql: str) -> frozenset[str]:
    tree = _parse(sql)
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    return frozenset(t.name for t in tree.find_all(exp.Table) if t.name not in ctes)


@dataclass(frozen=True)
class _Table:
    """A source as PostgreSQL sees it: its table, and the SELECT list that converts its columns
    the way the DuckDB view of the source does."""

    table: str
    select: str


def _source_tables(spec: Spec, url: str, schema: SourceSet) -> dict[str, _Table]:
    out = {}
    for name, source in spec.sources.items():
        if source.kind != "postgres" or source.url != url or source.table is None:
            continue
        pg_types = schema_types(schema, name)
        if pg_types is None:
            continue
        cols = []
        for column, typname in pg_types.items():
            q = quote(column)
            if typname == "timestamptz":
                cols.append(f"({q} AT TIME ZONE 'UTC') AS {q}")
            elif column == source.time and typname in ("text", "varchar", "bpchar"):
                cols.append(f"(CAST({q} AS timestamptz) AT TIME ZONE 'UTC') AS {q}")
            elif typname == "numeric":
                cols.append(f"CAST({q} AS double precision) AS {q}")
            elif column == source.entity and typname not in ("text", "varchar"):
                # The spine's entity is text; DuckDB compares across types, PostgreSQL does not.
                cols.append(f"CAST({q} AS text) AS {q}")
            else:
                cols.append(q)
        out[name] = _Table(_qualified(source.table), ", ".join(cols))
    return out


# -- the transpile step ---------------------------------------------------------------------------


def _parse(sql: str) -> exp.Expression:
    try:
        return sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise PushdownUnsupported(f"SQLGlot cannot parse the SQL: {_short(exc)}") from None


def to_postgres(sql: str, tables: dict[str, _Table]) -> str:
    """The DuckDB ``sql`` as PostgreSQL SQL, with every source view replaced by its table."""
    # Parsing is the slow part (tens of ms per group): the same SQL (online requests, batches)
    # is transpiled once per process.
    return _to_postgres(sql, tuple(sorted(tables.items())))


@lru_cache(maxsize=256)
def _to_postgres(sql: str, table_items: tuple[tuple[str, _Table], ...]) -> str:
    tables = dict(table_items)
    tree = _parse(sql)
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in list(tree.find_all(exp.Table)):
        name = table.name
        if name in ctes or name == SPINE or table.args.get("db"):
            continue
        if name not in tables:
            raise PushdownUnsupported(f"table {name!r} is not a source in the database")
        src = tables[name]
        sub = sqlglot.parse_one(f"SELECT {src.select} FROM {src.table}", read="postgres")
        alias = table.alias or name
        table.replace(exp.Subquery(this=sub, alias=exp.TableAlias(this=exp.to_identifier(alias))))
    tree = tree.transform(_rewrite_function)
    for i, sub in enumerate(list(tree.find_all(exp.Subquery))):
        # DuckDB allows a subquery in FROM without an alias; PostgreSQL (before 16) does not.
        if not sub.alias and isinstance(sub.parent, exp.From | exp.Join):
            sub.set("alias", exp.TableAlias(this=exp.to_identifier(f"_q{i}")))
    for select in list(tree.find_all(exp.Select)):
        _rewrite_asof(select)
    for func in tree.find_all(exp.Anonymous):
        raise PushdownUnsupported(f"PostgreSQL has no function {func.name}()")
    try:
        return tree.sql(dialect="postgres", unsupported_level=sqlglot.ErrorLevel.RAISE)
    except sqlglot.errors.UnsupportedError as exc:
        raise PushdownUnsupported(f"SQLGlot cannot write it for PostgreSQL: {exc}") from None


def _interval(amount: exp.Expression, unit: str) -> exp.Expression:
    one = exp.Interval(this=exp.Literal.string("1"), unit=exp.var(unit))
    return exp.Paren(this=exp.Mul(this=exp.Paren(this=amount), expression=one))


def _extract(part: str, value: exp.Expression) -> exp.Expression:
    return exp.Extract(this=exp.var(part), expression=value)


def _rewrite_function(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        units = {"to_seconds": "second", "to_minutes": "minute", "to_hours": "hour"}
        if name in units and len(node.expressions) == 1:
            return _interval(node.expressions[0], units[name])
        if name == "epoch_us" and len(node.expressions) == 1:
            micros = exp.Mul(
                this=exp.Paren(this=_extract("EPOCH", node.expressions[0])),
                expression=exp.Literal.number(1_000_000),
            )
            return exp.Cast(this=micros, to=exp.DataType.build("BIGINT"))
        if name == "isodow" and len(node.expressions) == 1:
            return _extract("ISODOW", node.expressions[0])
        return node
    if isinstance(node, exp.ToDays):
        return _interval(node.this, "day")
    if isinstance(node, exp.DayOfWeekIso):
        return _extract("ISODOW", node.this)
    if isinstance(node, exp.Quarter):
        return _extract("QUARTER", node.this)
    return node


def _rewrite_asof(select: exp.Select) -> None:
    """``FROM l ASOF LEFT JOIN r ON l.k = r.k AND l.t > r.t`` becomes a join with, for each left
    key, the right row of the greatest ``r.t`` before it (``DISTINCT ON``)."""
    joins = select.args.get("joins") or []
    for index, join in enumerate(joins):
        if (join.args.get("method") or "").upper() != "ASOF":
            continue
        if (join.args.get("side") or "").upper() not in ("LEFT", ""):
            raise PushdownUnsupported("an ASOF join that is not LEFT")
        left = select.args["from_"].this
        left_alias = left.alias_or_name
        right = join.this
        right_alias = right.alias_or_name
        on = join.args.get("on")
        if on is None:
            raise PushdownUnsupported("an ASOF join without ON")
        # Every column of ON is of the FROM relation or of the joined one, so the matched row
        # depends on the FROM row only (earlier joins do not matter).
        if any(col.table not in (left_alias, right_alias) for col in on.find_all(exp.Column)):
            raise PushdownUnsupported("an ASOF join on columns of an earlier join")
        conditions = list(on.flatten()) if isinstance(on, exp.And) else [on]
        order = None
        for cond in conditions:
            if not isinstance(cond, exp.GT | exp.GTE | exp.LT | exp.LTE):
                continue
            right_side = [
                side
                for side in (cond.this, cond.expression)
                if isinstance(side, exp.Column) and side.table == right_alias
            ]
            other = cond.expression if right_side and right_side[0] is cond.this else cond.this
            if (
                len(right_side) != 1
                or order is not None
                or any(c.table != left_alias for c in other.find_all(exp.Column))
            ):
                raise PushdownUnsupported("an ASOF join condition it cannot read")
            right_is_smaller = (cond.expression is right_side[0]) == isinstance(
                cond, exp.GT | exp.GTE
            )
            order = (right_side[0], not right_is_smaller)
        if order is None:
            raise PushdownUnsupported("an ASOF join without an inequality")
        keys = sorted(
            {
                col.name
                for col in on.find_all(exp.Column)
                if col.table == left_alias and isinstance(col, exp.Column)
            }
        )
        key_alias = [f"{_ASOF_KEY}{i}" for i in range(len(keys))]
        left_copy = left.copy()
        key_select = ", ".join(
            f"{left_alias}.{quote(k)} AS {a}" for k, a in zip(keys, key_alias, strict=True)
        )
        column, ascending = order
        distinct = ", ".join(f"{left_alias}.{quote(k)}" for k in keys)
        inner = sqlglot.parse_one(
            f"SELECT DISTINCT ON ({distinct}) {key_select}, {right_alias}.* FROM x "
            f"JOIN y ON TRUE ORDER BY {distinct}, {column.sql('postgres')} "
            f"{'ASC' if ascending else 'DESC'}",
            read="postgres",
        )
        inner.args["from_"].set("this", left_copy)
        inner_join = inner.args["joins"][0]
        inner_join.set("this", right.copy())
        inner_join.set("on", on.copy())
        back = " AND ".join(
            f"{right_alias}.{a} = {left_alias}.{quote(k)}"
            for k, a in zip(keys, key_alias, strict=True)
        )
        new_join = sqlglot.parse_one(
            f"SELECT 1 FROM x LEFT JOIN y AS {right_alias} ON {back}", read="postgres"
        ).args["joins"][0]
        new_join.set(
            "this",
            exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier(right_alias))),
        )
        joins[index] = new_join
        select.set("joins", joins)


# -- running it -----------------------------------------------------------------------------------


class SchemaOnlySources(SourceSet):
    """A SourceSet whose database sources are empty tables with the real columns: enough to
    compile feature groups and learn result types without pulling rows out of PostgreSQL."""

    def _fetch_table(self, name, source) -> pa.Table:
        assert source.url is not None and source.table is not None
        conn = _adbc_connect(source.url, self.project_dir)
        try:
            cur = conn.cursor()
            try:
                cur.execute(f"SELECT * FROM {_qualified(source.table)} LIMIT 0")
                table = cur.fetch_arrow_table()
            finally:
                cur.close()
        finally:
            conn.close()
        self._pg_types = getattr(self, "_pg_types", {})
        self._pg_types[name] = {
            f.name: (f.metadata or {}).get(b"POSTGRESQL:type", b"").decode() for f in table.schema
        }
        return table


def schema_types(schema: SourceSet, name: str) -> dict[str, str] | None:
    schema.view(name)
    return getattr(schema, "_pg_types", {}).get(name)


def pushdown_features(fs: FeatureSet, spine: pa.Table) -> pd.DataFrame | None:
    """The feature rows of ``spine`` with every group that can run in PostgreSQL run there;
    None when no group reads PostgreSQL (the caller runs everything in DuckDB)."""
    from ._featureset import AS_OF_COLUMN

    if postgres_url(fs.spec, list(fs.problem.features)) is None:
        return None
    with SchemaOnlySources(fs.spec, fs.sources.project_dir) as schema:
        if fs._groups is None:
            # Compile against the empty tables: reading the real ones is what pushdown avoids.
            from ._featureset import FeatureSet

            with_schema = FeatureSet(fs.spec, fs.name, schema)
            fs._groups = with_schema.groups
        plan = plan_pushdown(fs, schema)
        fs.engine_notes.extend(plan.notes)
        if not plan.pushed:
            _open_views(fs, plan.local)
            return None
        pushed = _subset(fs, plan.pushed)
        sql = pushed.features_sql()
        tables = _source_tables(fs.spec, plan.url or "", schema)
        try:
            frame = _run_in_postgres(fs, plan.url or "", sql, tables, spine, schema)
        except PushdownUnsupported as exc:
            fs.engine_notes.append(
                f"the feature SQL could not run in PostgreSQL ({_hide_password(plan.url)}), so "
                f"every group was computed in DuckDB: {exc}"
            )
            _open_views(fs, fs.groups)
            return None
    if plan.local:
        _open_views(fs, plan.local)
        local = _subset(fs, plan.local)._features_duckdb(spine)
        keys = [fs.entity, AS_OF_COLUMN]
        frame = frame.merge(local, on=keys, how="left", validate="one_to_one")
        frame = frame[keys + fs.feature_names]
    return frame


def _open_views(fs: FeatureSet, groups: list[CompiledGroup]) -> None:
    """Open (read) the sources of the groups DuckDB computes: they were compiled against the
    empty tables, so the real views may not exist yet."""
    for group in groups:
        for name in sorted(_sources_in(group.sql, fs.spec)):
            fs.sources.view(name)


def _subset(fs: FeatureSet, groups: list[CompiledGroup]) -> FeatureSet:
    sub = copy.copy(fs)
    sub._groups = groups
    return sub


def _run_in_postgres(
    fs: FeatureSet,
    url: str,
    sql: str,
    tables: dict[str, _Table],
    spine: pa.Table,
    schema: SourceSet,
) -> pd.DataFrame:
    from ._featureset import AS_OF_COLUMN

    con = schema.con
    con.register("_spine_in", spine)
    try:
        spine_rows = con.sql(
            f"SELECT DISTINCT CAST({ENTITY} AS VARCHAR) AS {ENTITY}, "
            f"CAST({AS_OF} AS TIMESTAMP) AS {AS_OF} FROM _spine_in"
        ).to_arrow_table()
    finally:
        con.unregister("_spine_in")
    # The types DuckDB gives the result, learned on the empty tables.
    con.execute(f"CREATE OR REPLACE TEMP TABLE {SPINE} ({ENTITY} VARCHAR, {AS_OF} TIMESTAMP)")
    types = {row[0]: str(row[1]) for row in con.execute(f"DESCRIBE {sql}").fetchall()}
    pg_sql = to_postgres(sql, tables)
    outer = ", ".join(
        f"CAST(q.{quote(c)} AS {_PG_TYPES.get(t.upper(), 'text')}) AS {quote(c)}"
        for c, t in types.items()
    )
    try:
        conn = _adbc_connect(url, fs.sources.project_dir)
    except Exception as exc:
        raise PushdownUnsupported(f"cannot connect: {_short(exc)}") from None
    try:
        cur = conn.cursor()
        try:
            cur.execute("SET TimeZone = 'UTC'")
            # The default 4 MB sends the sorts and hashes of a training spine to disk.
            cur.execute("SET work_mem = '256MB'")
            cur.adbc_ingest(SPINE, spine_rows, mode="create", temporary=True)
            cur.execute(f"ANALYZE {SPINE}")
            cur.execute(f"SELECT {outer} FROM ({pg_sql}) AS q")
            result = cur.fetch_arrow_table()
        except Exception as exc:
            raise PushdownUnsupported(f"PostgreSQL answered: {_short(exc)}") from None
        finally:
            cur.close()
    finally:
        conn.close()
    con.register("_pushed", result)
    try:
        back = ", ".join(f"CAST({quote(c)} AS {t}) AS {quote(c)}" for c, t in types.items())
        frame = con.sql(f"SELECT {back} FROM _pushed ORDER BY {AS_OF}, {ENTITY}").df()
    finally:
        con.unregister("_pushed")
    return frame.rename(columns={ENTITY: fs.entity, AS_OF: AS_OF_COLUMN})
