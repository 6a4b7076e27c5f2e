"""One feature definition for training, batch scoring and online requests.

:meth:`FeatureSet.compute` is the single function that batch scoring, online serving and
monitoring call; :meth:`FeatureSet.training_frame` runs the same SQL at every cutoff and adds the
label.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..data import SourceSet
from ..errors import DataError, NotFoundError, RequestError, SpecError, SpecIssue
from ..spec import ClickLabel, ColumnLabel, CutoffTable, ForecastLabel, ProblemSpec, Spec
from ._cutoffs import as_datetime, schedule_cutoffs, table_spine
from ._groups import (
    AS_OF,
    ENTITY,
    SPINE,
    CompiledGroup,
    FeatureColumn,
    compile_group,
    group_blocks,
    training_notes,
)
from ._labels import (
    CUTOFFS,
    GROUP,
    HORIZON,
    ITEM,
    check_label_data,
    data_end,
    eligible_sql,
    impressions_sql,
    label_sql,
    label_window,
)

AS_OF_COLUMN = "as_of"
LABEL_COLUMN = "label"
HORIZON_COLUMN = "horizon"
"""Forecast frames: the day h (1..horizon) after the cutoff the row's label is for (a feature)."""
GROUP_COLUMN = "group"
"""Ranking frames: the impression list a row belongs to (the query group of LambdaRank)."""
LABEL_SPINE = "_label_spine"
SPINE_CHUNK_ROWS = 750_000
"""Spines longer than this are computed in chunks of entities (bounds DuckDB's memory)."""


BACKGROUND_PURGE_ROWS = 100_000
"""From this many spine rows on, DuckDB's allocator purges freed memory in a background thread
(else it keeps the chunks' freed results, ~0.3 GB more peak at 2.6M rows)."""


def _background_purge(con: duckdb.DuckDBPyConnection) -> None:
    """Let DuckDB's allocator (jemalloc, on Linux) return freed memory from a background thread,
    so the memory of one chunk's results is given back before the next chunk and the pandas
    conversion allocate theirs. A no-op where the setting does not exist."""
    with contextlib.suppress(duckdb.Error):  # builds without the setting
        con.execute("SET allocator_background_threads = true")


@dataclass
class TrainingFrame:
    frame: pd.DataFrame
    cutoffs: list[datetime]
    notes: list[str] = field(default_factory=list)


class FeatureSet:
    """The features (and label) of one problem, compiled to SQL over the project's sources."""

    def __init__(
        self, spec: Spec, problem: str, sources: SourceSet, *, engine: str | None = None
    ) -> None:
        if problem not in spec.problems:
            raise NotFoundError(
                f"unknown problem {problem!r}",
                hint=f"problems in cycleml.yaml: {', '.join(spec.problems) or '(none)'}",
            )
        self.spec = spec
        self.name = problem
        self.problem: ProblemSpec = spec.problems[problem]
        self.sources = sources
        self._groups: list[CompiledGroup] | None = None
        # "duckdb" (with PostgreSQL pushdown when the groups read PostgreSQL) or "dask". The
        # spec's `engine` applies to dataset builds and batch scoring (Project passes it): an
        # online request never starts a cluster.
        self.engine: str = engine or "duckdb"
        self.engine_notes: list[str] = []  # what the engine did differently (pushdown fallbacks)

    def close(self) -> None:
        """Close the DuckDB connection of the sources this feature set reads."""
        self.sources.close()

    def __enter__(self) -> FeatureSet:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def entity(self) -> str:
        return self.problem.entity

    @property
    def groups(self) -> list[CompiledGroup]:
        if self._groups is None:
            groups = []
            errors: list[SpecError] = []
            for name in self.problem.features:
                group = self.spec.features[name]
                columns = self.sources.check(group.source)
                try:
                    compiled = compile_group(
                        name, group, self.spec.sources[group.source], columns, self
                    )
                except SpecError as exc:  # report every bad group at once, not the first only
                    errors.append(exc)
                    continue
                groups.append(compiled)
            if len(errors) == 1:
                raise errors[0]
            if errors:
                issues = [
                    issue for exc in errors for issue in exc.issues or [SpecIssue("", exc.message)]
                ]
                raise SpecError(
                    f"problem {self.name!r}: {len(errors)} feature groups have problems",
                    issues=issues,
                )
            self._check_names(groups)
            self._groups = groups
        return self._groups

    @property
    def columns(self) -> list[FeatureColumn]:
        return [col for group in self.groups for col in group.columns]

    @property
    def model_columns(self) -> list[FeatureColumn]:
        """The model's input columns: the features and the label's (``horizon``)."""
        return self.columns + self.label_columns

    @property
    def label_columns(self) -> list[FeatureColumn]:
        """Feature columns the label adds: ``horizon`` for a forecast (direct multi-horizon)."""
        if isinstance(self.problem.label, ForecastLabel):
            return [FeatureColumn(HORIZON_COLUMN, "label", "number")]
        return []

    @property
    def feature_names(self) -> list[str]:
        return [col.name for col in self.columns]

    def _check_names(self, groups: list[CompiledGroup]) -> None:
        seen: dict[str, str] = {}
        issues = []
        label = self.problem.label
        for group in groups:
            for col in group.columns:
                if col.name in seen:
                    issues.append(
                        SpecIssue(
                            f"features.{group.name}",
                            f"feature {col.name!r} is also made by group {seen[col.name]!r}",
                            "rename one of the columns or drop it from one group",
                        )
                    )
                seen[col.name] = group.name
                if (
                    isinstance(label, ColumnLabel)
                    and col.name == label.column
                    and self.spec.features[group.name].source == label.source
                ):
                    issues.append(
                        SpecIssue(
                            f"features.{group.name}.columns",
                            f"the label column {label.column!r} is also a feature (leakage)",
                            "remove it from the feature group",
                        )
                    )
        if issues:
            raise SpecError(f"problem {self.name!r} has conflicting features", issues=issues)

    # -- the one compute function ------------------------------------------------------------

    def compute(
        self,
        entities: Sequence[str] | pa.Array | pa.ChunkedArray | pd.Series | None,
        as_of: datetime | date | Sequence[datetime] | pa.Array | pa.ChunkedArray | pd.Series,
    ) -> pd.DataFrame:
        """Feature rows for ``entities`` as of ``as_of`` (one time, or one per entity).

        ``entities=None`` means every entity eligible at ``as_of`` under the problem's label.
        A date means its midnight. Entities and times may be Python sequences, or Arrow arrays,
        pandas Series or NumPy arrays (read without building Python lists: the fast way for
        millions of rows). A forecast has one row per entity and day of the horizon (column
        ``horizon``, 1..horizon)."""
        if isinstance(as_of, date) and not isinstance(as_of, datetime):
            as_of = datetime(as_of.year, as_of.month, as_of.day)
        if entities is None:
            if not isinstance(as_of, datetime):
                raise DataError("as_of must be one time when entities are not given")
            if isinstance(self.problem.label, ClickLabel):
                raise RequestError(
                    f"problem {self.name!r} ranks items (a click label): it has no batch of "
                    "eligible entities to score",
                    hint="rank online, one request per impression list (POST /v1/models/"
                    f"{self.name}/rank), or pass the entities to compute",
                )
            spine = self._eligible([as_of])
        else:
            spine = _request_spine(entities, as_of)
        return self._with_horizon(self._features(spine))

    def _with_horizon(self, frame: pd.DataFrame) -> pd.DataFrame:
        label = self.problem.label
        if not isinstance(label, ForecastLabel):
            return frame
        days = pd.DataFrame({HORIZON_COLUMN: range(1, int(label.horizon) + 1)})
        out = frame.merge(days, how="cross")
        order = [self.entity, AS_OF_COLUMN, HORIZON_COLUMN]
        out = out[order + [c for c in out.columns if c not in order]]
        return out.sort_values([AS_OF_COLUMN, self.entity, HORIZON_COLUMN], kind="stable")

    def _eligible(self, cutoffs: list[datetime]) -> pa.Table:
        con = self.sources.con
        con.register(CUTOFFS, pa.table({AS_OF: pa.array(cutoffs, pa.timestamp("us"))}))
        try:
            sql = eligible_sql(self.problem, self.sources)
            table = con.sql(
                f"SELECT CAST({ENTITY} AS VARCHAR) AS {ENTITY}, {AS_OF} FROM ({sql}) "
                f"ORDER BY {AS_OF}, {ENTITY}"
            ).to_arrow_table()
        finally:
            con.unregister(CUTOFFS)
        return table

    def _features(self, spine: pa.Table) -> pd.DataFrame:
        from ._engine import run_features  # the one engine dispatch: Dask, pushdown or here

        frame = run_features(self, spine)
        return self._features_duckdb(spine) if frame is None else frame

    def _features_duckdb(self, spine: pa.Table) -> pd.DataFrame:
        con = self.sources.con
        con.register("_spine_in", spine)
        try:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {SPINE} AS SELECT DISTINCT "
                f"CAST({ENTITY} AS VARCHAR) AS {ENTITY}, CAST({AS_OF} AS TIMESTAMP) AS {AS_OF} "
                "FROM _spine_in"
            )
        finally:
            con.unregister("_spine_in")
        try:
            rows, entities = con.sql(
                f"SELECT count(*), count(DISTINCT {ENTITY}) FROM {SPINE}"
            ).fetchall()[0]
            shape = rows / max(entities, 1)  # as_of times per entity: picks the strategy
            if rows >= BACKGROUND_PURGE_ROWS:
                _background_purge(con)
            sql = self.features_sql(shape, ordered=False)
            if not arrow_safe(con, sql):
                frame = con.sql(self.features_sql(shape)).df()
            else:
                # Sorted after the fetch (in Arrow, one column at a time), not by DuckDB: a
                # sort in DuckDB holds a second copy of every feature row.
                table = self._chunked_arrow(sql, rows)
                frame = arrow_frame(table, order_by=[AS_OF, ENTITY])
        finally:
            con.execute(f"DROP TABLE IF EXISTS {SPINE}")  # the spine can be millions of rows
            con.execute(f"DROP TABLE IF EXISTS {SPINE}_all")
        # Renamed in place: ``rename`` copies every column under pandas 2 (no copy-on-write),
        # doubling the peak memory of millions of feature rows.
        names = {ENTITY: self.entity, AS_OF: AS_OF_COLUMN}
        frame.columns = pd.Index([names.get(c, c) for c in frame.columns])
        return frame

    def _chunked_arrow(self, sql: str, rows: int) -> pa.Table:
        """Run ``sql`` over the spine, in chunks of about :data:`SPINE_CHUNK_ROWS` rows (ranges of
        entities) when it is longer: DuckDB's working memory (the join and the aggregate) then
        grows with the chunk, not the spine. A feature reads only its own entity's rows, so the
        chunks give the same rows as one pass."""
        con = self.sources.con
        parts = -(-rows // SPINE_CHUNK_ROWS)
        if parts <= 1:
            return fetch_arrow(con, sql)
        con.execute(f"ALTER TABLE {SPINE} RENAME TO {SPINE}_all")
        tops = [
            row[0]
            for row in con.sql(
                f"SELECT max({ENTITY}) FROM (SELECT {ENTITY}, ntile({parts}) OVER "
                f"(ORDER BY {ENTITY}) AS k FROM (SELECT DISTINCT {ENTITY} FROM {SPINE}_all "
                f"WHERE {ENTITY} IS NOT NULL)) GROUP BY k ORDER BY k"
            ).fetchall()
        ]
        chunks: list[tuple[str, dict]] = []
        for i, top in enumerate(tops):
            where, params = f"{ENTITY} <= $top", {"top": top}
            if i:
                where, params = f"{where} AND {ENTITY} > $low", {**params, "low": tops[i - 1]}
            chunks.append((where, params))
        last, params = chunks.pop() if chunks else ("FALSE", {})
        chunks.append((f"({last}) OR {ENTITY} IS NULL", params))  # a NULL id: last, as before
        tables = []
        for where, params in chunks:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {SPINE} AS SELECT * FROM {SPINE}_all WHERE {where}",
                params,
            )
            tables.append(fetch_arrow(con, sql))
        return pa.concat_tables(tables)

    def features_sql(self, cutoffs_per_entity: float | None = None, *, ordered: bool = True) -> str:
        """The SQL that turns table _spine(__entity, __as_of) into feature rows, ordered by
        (as_of, entity) unless ``ordered`` is False. Event groups of one source run in one pass;
        ``cutoffs_per_entity`` picks their strategy (_groups.py)."""
        blocks = group_blocks(self.groups, cutoffs_per_entity)
        parts = [f"g{i} AS ({sql})" for i, (sql, _) in enumerate(blocks)]
        if len(blocks) == 1:
            # Every block has one row per spine row (it is driven by the spine), so one block
            # needs no join back to the spine.
            select = [f"g0.{ENTITY}", f"g0.{AS_OF}"] + [f'g0."{c.name}"' for c in self.columns]
            order = f" ORDER BY g0.{AS_OF}, g0.{ENTITY}" if ordered else ""
            return f"WITH {parts[0]} SELECT {', '.join(select)} FROM g0{order}"
        home = {name: i for i, (_, names) in enumerate(blocks) for name in names}
        select = [f"s.{ENTITY}", f"s.{AS_OF}"]
        select += [f'g{home[c.name]}."{c.name}"' for c in self.columns]
        joins = []
        for i in range(len(blocks)):
            joins.append(
                f"LEFT JOIN g{i} ON g{i}.{ENTITY} = s.{ENTITY} AND g{i}.{AS_OF} = s.{AS_OF}"
            )
        order = f" ORDER BY s.{AS_OF}, s.{ENTITY}" if ordered else ""
        return (
            f"WITH {', '.join(parts)} SELECT {', '.join(select)} FROM {SPINE} s "
            f"{' '.join(joins)}{order}"
        )

    # -- training ------------------------------------------------------------------------------

    def cutoff_times(self) -> tuple[list[datetime], list[str]]:
        """The cutoffs of the problem's schedule whose label window is complete in the data
        (for a cutoff table: its distinct times). Without cutoffs: just after the data ends."""
        cutoffs = self.problem.cutoffs
        end_of_data = data_end(self.problem, self.sources)
        if isinstance(cutoffs, CutoffTable):
            spine, notes = self._table_spine(end_of_data)
            return sorted(set(spine.column(AS_OF).to_pylist())), notes
        if cutoffs is None:
            now = end_of_data + timedelta(seconds=1) if end_of_data else _utcnow()
            return [now], []
        return schedule_cutoffs(self.name, cutoffs, end_of_data, label_window(self.problem))

    def _table_spine(self, end_of_data: datetime | None) -> tuple[pa.Table, list[str]]:
        cutoffs = self.problem.cutoffs
        assert isinstance(cutoffs, CutoffTable)
        return table_spine(
            self.name, self.problem, cutoffs, self.sources, end_of_data, label_window(self.problem)
        )

    def _training_spine(self) -> tuple[pa.Table, list[datetime], list[str]]:
        """(entity, cutoff) rows of the training set: from a cutoff table, one per table row;
        from a schedule, every entity eligible at each cutoff."""
        if isinstance(self.problem.cutoffs, CutoffTable):
            spine, notes = self._table_spine(data_end(self.problem, self.sources))
            return spine, sorted(set(spine.column(AS_OF).to_pylist())), notes
        cutoffs, notes = self.cutoff_times()
        spine = self._eligible(cutoffs)
        if spine.num_rows == 0:
            raise DataError(
                f"problem {self.name!r}: no entity is eligible at any of the "
                f"{len(cutoffs)} cutoffs",
                hint="check the label's source and eligibility (`eligible.source`, `active_days`)",
            )
        return spine, cutoffs, notes

    def training_frame(self) -> TrainingFrame:
        """The training set: features as of each row's cutoff and the label after it.

        Layout: ``<entity>``, ``as_of``, then ``horizon`` (forecast) or ``<item>`` and
        ``group`` (ranking), the feature columns, and ``label`` (see docs/spec.md)."""
        notes = check_label_data(self.problem, self.sources)
        if isinstance(self.problem.label, ClickLabel):
            return self._ranking_frame(notes)
        spine, cutoffs, more = self._training_spine()
        notes += more
        features = self._features(spine)
        notes += self.engine_notes
        notes += training_notes(self, cutoffs)
        con = self.sources.con
        con.register(LABEL_SPINE, spine)
        try:
            labels = fetch_frame(con, label_sql(self.problem, self.sources, LABEL_SPINE))
        finally:
            con.unregister(LABEL_SPINE)
        labels = labels.rename(
            columns={ENTITY: self.entity, AS_OF: AS_OF_COLUMN, HORIZON: HORIZON_COLUMN}
        )
        frame = features.merge(labels, on=[self.entity, AS_OF_COLUMN], how="inner")
        missing = len(features) - frame[[self.entity, AS_OF_COLUMN]].drop_duplicates().shape[0]
        if missing:
            notes.append(f"{missing} row(s) had no label and were left out")
        keys = [self.entity, AS_OF_COLUMN]
        if HORIZON_COLUMN in labels.columns:
            keys.append(HORIZON_COLUMN)
            head = [self.entity, AS_OF_COLUMN, HORIZON_COLUMN]
            frame = frame[head + [c for c in frame.columns if c not in head]]
        frame = frame.sort_values(
            [AS_OF_COLUMN, self.entity] + keys[2:], kind="stable"
        ).reset_index(drop=True)
        return TrainingFrame(frame, cutoffs, notes)

    def _ranking_frame(self, notes: list[str]) -> TrainingFrame:
        """One row per impression: the entity, the impression time (``as_of``), the item
        (column named like the label's ``item``), ``group`` and the label; features of the
        entity as of the impression time."""
        label = self.problem.label
        assert isinstance(label, ClickLabel)
        cutoffs = self.problem.cutoffs
        ts = f'i."{self.spec.sources[label.source].time}"'
        bounds = ["TRUE"]
        if cutoffs is not None:
            assert not isinstance(cutoffs, CutoffTable)  # refused by the spec checks
            bounds.append(f"{ts} >= TIMESTAMP '{as_datetime(cutoffs.start)}'")
            if cutoffs.end:
                bounds.append(f"{ts} < TIMESTAMP '{as_datetime(cutoffs.end)}'")
        con = self.sources.con
        where = " AND ".join(bounds)
        if label.clicks is not None:
            end_of_data = data_end(self.problem, self.sources)
            window = label_window(self.problem)
            total = con.sql(impressions_sql(self.problem, self.sources, where)).to_arrow_table()
            if end_of_data is not None:
                limit = end_of_data - window
                where += f" AND {ts} <= TIMESTAMP '{limit}'"
        impressions = con.sql(impressions_sql(self.problem, self.sources, where)).df()
        if label.clicks is not None and end_of_data is not None:
            dropped = total.num_rows - len(impressions)
            if dropped and len(impressions) == 0:
                raise DataError(
                    f"problem {self.name!r}: no impression has a complete {label.within} click "
                    f"window: the clicks end {end_of_data:%Y-%m-%d %H:%M}",
                    hint="add newer click data, or move `cutoffs.start` earlier",
                )
            if dropped:
                notes.append(
                    f"left out {dropped} impression(s) after {limit:%Y-%m-%d %H:%M}: their "
                    f"{label.within} click window runs past the end of the clicks "
                    f"({end_of_data:%Y-%m-%d %H:%M})"
                )
        unlabeled = int(impressions["label"].isna().sum())
        if unlabeled:
            impressions = impressions[impressions["label"].notna()]
            notes.append(f"{unlabeled} impression(s) with no {label.column} value were left out")
        if impressions.empty:
            raise DataError(
                f"problem {self.name!r}: the source {label.source!r} has no impressions "
                "in the cutoff range",
                hint="check `cutoffs.start`/`end` and the impressions source",
            )
        spine = pa.Table.from_pandas(
            impressions[[ENTITY, AS_OF]].drop_duplicates(), preserve_index=False
        )
        features = self._features(spine)
        frame = impressions.rename(
            columns={
                ENTITY: self.entity,
                AS_OF: AS_OF_COLUMN,
                ITEM: label.item,
                GROUP: GROUP_COLUMN,
            }
        ).merge(features, on=[self.entity, AS_OF_COLUMN], how="left")
        head = [self.entity, AS_OF_COLUMN, label.item, GROUP_COLUMN]
        frame = frame[head + [c for c in frame.columns if c not in (*head, "label")] + ["label"]]
        frame["label"] = frame["label"].astype("int64")
        frame = frame.sort_values(
            [AS_OF_COLUMN, GROUP_COLUMN, self.entity, label.item], kind="stable"
        ).reset_index(drop=True)
        times = sorted(set(frame[AS_OF_COLUMN].dt.to_pydatetime()))
        return TrainingFrame(frame, times, notes)


def _as_arrow(values: object) -> pa.Array | pa.ChunkedArray | None:
    """``values`` as Arrow when it is an Arrow, pandas or NumPy column (None otherwise)."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    if isinstance(values, pd.Series | pd.Index | np.ndarray):
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            return None
    return None


def _request_spine(entities: object, as_of: object) -> pa.Table:
    """The (entity, as_of) spine of a compute() call. Arrow, pandas and NumPy columns of text or
    integer ids and of timestamps are used as they are; anything else goes through Python
    (``str`` of each id), as before."""
    ids = _as_arrow(entities)
    if (
        ids is None
        or ids.null_count
        or not (
            pa.types.is_string(ids.type)
            or pa.types.is_large_string(ids.type)
            or pa.types.is_string_view(ids.type)
            or pa.types.is_integer(ids.type)
        )
    ):
        listed = ids.to_pylist() if isinstance(entities, pa.Array | pa.ChunkedArray) else entities
        ids = pa.array([str(e) for e in listed], pa.string())  # type: ignore[union-attr]
    n = len(ids)
    if isinstance(as_of, datetime):
        one = pa.array([as_of], pa.timestamp("us"))
        times: pa.Array | pa.ChunkedArray = pa.array(
            np.full(n, one[0].value, dtype="int64"), pa.int64()
        ).cast(pa.timestamp("us"))
    else:
        column = _as_arrow(as_of)
        times = None  # type: ignore[assignment]
        if column is not None and pa.types.is_timestamp(column.type):
            try:  # a zoned time is its UTC time (as for Python datetimes)
                times = column.cast(pa.timestamp(column.type.unit)).cast(pa.timestamp("us"))
            except pa.ArrowInvalid:  # finer than microseconds: as Python datetimes do
                times = None  # type: ignore[assignment]
        if times is None:
            listed = column.to_pylist() if isinstance(as_of, pa.Array | pa.ChunkedArray) else as_of
            times = pa.array(list(listed), pa.timestamp("us"))  # type: ignore[arg-type]
    if len(times) != n:
        raise DataError(
            f"got {n} entities but {len(times)} as_of times",
            hint="pass one as_of, or one per entity",
        )
    return pa.table({ENTITY: ids, AS_OF: times})


_ARROW_SAFE = {
    "BIGINT",
    "INTEGER",
    "SMALLINT",
    "TINYINT",
    "UBIGINT",
    "UINTEGER",
    "USMALLINT",
    "UTINYINT",
    "BOOLEAN",
    "DOUBLE",
    "FLOAT",
    "VARCHAR",
    "TIMESTAMP",
    "TIMESTAMP WITH TIME ZONE",
}
"""DuckDB types whose Arrow -> pandas conversion below gives what DuckDB's ``.df()`` gives."""
_NULLABLE = {
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.uint8(): pd.UInt8Dtype(),
    pa.uint16(): pd.UInt16Dtype(),
    pa.uint32(): pd.UInt32Dtype(),
    pa.uint64(): pd.UInt64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def arrow_safe(con: duckdb.DuckDBPyConnection, sql: str) -> bool:
    """Whether every column of ``sql``'s result converts from Arrow as DuckDB's ``.df()``
    converts it (:func:`arrow_frame`)."""
    return all(str(t) in _ARROW_SAFE for t in con.sql(sql).types)


def fetch_arrow(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """The result of ``sql`` as Arrow, streamed in batches: DuckDB does not hold a second,
    materialized copy of the result."""
    reader = con.sql(sql).to_arrow_reader(1_000_000)
    return pa.Table.from_batches(list(reader), reader.schema)


def fetch_frame(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    """The result of ``sql`` as the DataFrame DuckDB's ``.df()`` gives, through Arrow when the
    types allow it (several times faster for text)."""
    if not arrow_safe(con, sql):
        return con.sql(sql).df()
    return arrow_frame(fetch_arrow(con, sql))


def arrow_frame(table: pa.Table, order_by: list[str] | None = None) -> pd.DataFrame:
    """``table`` (of :data:`_ARROW_SAFE` types) as the DataFrame DuckDB's ``.df()`` gives for
    it (integers and booleans with nulls become nullable dtypes, an all-null or empty text
    column is ``object``), sorted by the ``order_by`` columns (ascending, nulls last, as
    DuckDB's ``ORDER BY``). Numeric columns are written (sorted) straight into one 2-D block per
    dtype, so the frame is built consolidated without a second copy of its columns, and pandas
    does not consolidate (copy) it again later."""
    order = _sort_order(table, order_by).to_numpy() if order_by else None
    names = table.column_names
    rows = table.num_rows
    columns = dict(zip(names, table.columns, strict=True))
    del table
    numeric: dict[np.dtype, list[int]] = {}  # plain numeric columns by NumPy dtype: positions
    other: list[tuple[int, pd.Series]] = []
    for position, name in enumerate(names):
        kind = columns[name].type
        if _plain_numeric(columns[name]):
            numeric.setdefault(np.dtype(kind.to_pandas_dtype()), []).append(position)
            continue
        column = columns.pop(name)
        if order is not None:
            column = column.take(order)
        if (pa.types.is_string(kind) or pa.types.is_large_string(kind)) and (
            column.null_count == len(column)
        ):
            series = pd.Series([None] * len(column), dtype=object)  # as DuckDB gives it
        elif kind in _NULLABLE and column.null_count:
            series = column.to_pandas(types_mapper=_NULLABLE.get)
        else:
            series = column.to_pandas()
        other.append((position, series))
        del column
    blocks: list[tuple[object, list[int]]] = []
    for dtype, positions in numeric.items():
        block = np.empty((len(positions), rows), dtype)
        for row, position in enumerate(positions):
            values = columns.pop(names[position]).to_numpy()
            if order is not None:
                np.take(values, order, out=block[row], mode="clip")  # clip: unbuffered
            else:
                block[row] = values
            del values
        blocks.append((block, positions))
    for position, series in other:
        values = (
            series.array if isinstance(series.dtype, pd.api.extensions.ExtensionDtype) else None
        )
        blocks.append(
            (values if values is not None else series.to_numpy().reshape(1, -1), [position])
        )
    del other
    return _frame_from_blocks(blocks, names, rows)


def _plain_numeric(column: pa.ChunkedArray) -> bool:
    """Whether ``column`` converts to a NumPy integer, float or boolean array as it is (a
    float null becomes NaN, as in ``.df()``; integers and booleans must have no nulls)."""
    kind = column.type
    if pa.types.is_floating(kind):
        return True
    return (pa.types.is_integer(kind) or pa.types.is_boolean(kind)) and not column.null_count


def _frame_from_blocks(
    blocks: list[tuple[object, list[int]]], names: list[str], rows: int
) -> pd.DataFrame:
    """A DataFrame made of ``blocks`` (values: a 2-D NumPy array of shape (columns, rows) or a
    1-D extension array; the column positions they hold) without copying them."""
    index, columns = pd.RangeIndex(rows), pd.Index(names)
    internals = getattr(pd.api, "internals", None)
    create = getattr(internals, "create_dataframe_from_blocks", None)
    if create is not None:  # pandas >= 3
        return create(
            [(values, np.asarray(where, np.intp)) for values, where in blocks],
            index=index,
            columns=columns,
        )
    from pandas.core.internals.api import make_block  # pandas 2: what pyarrow does
    from pandas.core.internals.managers import BlockManager

    made = [make_block(values, placement=np.asarray(where, np.intp)) for values, where in blocks]
    manager = BlockManager(made, [columns, index])
    return pd.DataFrame._from_mgr(manager, axes=manager.axes)


_RANKABLE = (
    pa.types.is_string,
    pa.types.is_large_string,
    pa.types.is_timestamp,
    pa.types.is_integer,
)


def _sort_order(table: pa.Table, keys: list[str]) -> pa.Array:
    """Row order of ``table`` sorted by ``keys`` (ascending, nulls last, ties in table order),
    as ``pc.sort_indices`` gives it, but from one integer key: each column's values are ranked
    through their (small) dictionary of distinct values, and the ranks are combined."""
    combined: np.ndarray | None = None
    radix = 1
    for name in reversed(keys):  # least significant first
        column = table.column(name)
        if not any(test(column.type) for test in _RANKABLE):
            break
        encoded = pc.dictionary_encode(column.combine_chunks())
        distinct = len(encoded.dictionary)
        size = distinct + 2  # ranks 1..distinct, then null (last)
        if radix * size >= 2**62:
            break
        ranks = pc.rank(encoded.dictionary, sort_keys="ascending", tiebreaker="dense")
        ranks = pa.concat_arrays([ranks, pa.array([distinct + 1], ranks.type)])  # the null's
        codes = encoded.indices.fill_null(distinct)
        code = ranks.take(codes).to_numpy().astype(np.int64)
        combined = code * radix if combined is None else combined + code * radix
        radix *= size
    else:
        if combined is not None:
            return pa.array(np.argsort(combined, kind="stable"))
    return pc.sort_indices(table, sort_keys=[(c, "ascending", "at_end") for c in keys])


def _utcnow() -> datetime:
    from ..store import utcnow

    return utcnow()
