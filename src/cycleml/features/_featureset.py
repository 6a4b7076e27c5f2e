"""One feature definition for training, batch scoring and online requests.

:meth:`FeatureSet.compute` is the single function that batch scoring, online serving and
monitoring call; :meth:`FeatureSet.training_frame` runs the same SQL at every cutoff and adds the
label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import pandas as pd
import pyarrow as pa

from ..data import SourceSet
from ..errors import DataError, NotFoundError, SpecError, SpecIssue
from ..spec import ColumnLabel, ProblemSpec, Spec, parse_duration
from ._groups import AS_OF, ENTITY, SPINE, CompiledGroup, FeatureColumn, compile_group
from ._labels import CUTOFFS, data_end, eligible_sql, label_horizon_days, label_sql

AS_OF_COLUMN = "as_of"
LABEL_COLUMN = "label"


@dataclass
class TrainingFrame:
    frame: pd.DataFrame
    cutoffs: list[datetime]
    notes: list[str] = field(default_factory=list)


class FeatureSet:
    """The features (and label) of one problem, compiled to SQL over the project's sources."""

    def __init__(self, spec: Spec, problem: str, sources: SourceSet) -> None:
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
                    compiled = compile_group(name, group, self.spec.sources[group.source], columns)
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
        self, entities: Sequence[str] | None, as_of: datetime | date | Sequence[datetime]
    ) -> pd.DataFrame:
        """Feature rows for ``entities`` as of ``as_of`` (one time, or one per entity).

        ``entities=None`` means every entity eligible at ``as_of`` under the problem's label.
        A date means its midnight."""
        if isinstance(as_of, date) and not isinstance(as_of, datetime):
            as_of = datetime(as_of.year, as_of.month, as_of.day)
        if entities is None:
            if not isinstance(as_of, datetime):
                raise DataError("as_of must be one time when entities are not given")
            spine = self._eligible([as_of])
        else:
            entity_list = [str(e) for e in entities]
            times = [as_of] * len(entity_list) if isinstance(as_of, datetime) else list(as_of)
            if len(times) != len(entity_list):
                raise DataError(
                    f"got {len(entity_list)} entities but {len(times)} as_of times",
                    hint="pass one as_of, or one per entity",
                )
            spine = pa.table(
                {
                    ENTITY: pa.array(entity_list, pa.string()),
                    AS_OF: pa.array(times, pa.timestamp("us")),
                }
            )
        return self._features(spine)

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
        con = self.sources.con
        con.register("_spine_in", spine)
        try:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {SPINE} AS SELECT DISTINCT "
                f"CAST({ENTITY} AS VARCHAR) AS {ENTITY}, CAST({AS_OF} AS TIMESTAMP) AS {AS_OF} "
                "FROM _spine_in"
            )
            sql = self.features_sql()
            frame = con.sql(sql).df()
        finally:
            con.unregister("_spine_in")
        return frame.rename(columns={ENTITY: self.entity, AS_OF: AS_OF_COLUMN})

    def features_sql(self) -> str:
        """The SQL that turns table _spine(__entity, __as_of) into feature rows."""
        parts = [f"g{i} AS ({group.sql})" for i, group in enumerate(self.groups)]
        select = [f"s.{ENTITY}", f"s.{AS_OF}"]
        joins = []
        for i, group in enumerate(self.groups):
            select += [f'g{i}."{col.name}"' for col in group.columns]
            joins.append(
                f"LEFT JOIN g{i} ON g{i}.{ENTITY} = s.{ENTITY} AND g{i}.{AS_OF} = s.{AS_OF}"
            )
        return (
            f"WITH {', '.join(parts)} SELECT {', '.join(select)} FROM {SPINE} s "
            f"{' '.join(joins)} ORDER BY s.{AS_OF}, s.{ENTITY}"
        )

    # -- training ------------------------------------------------------------------------------

    def cutoff_times(self) -> tuple[list[datetime], list[str]]:
        """The cutoffs of the problem's schedule whose label window is complete in the data."""
        notes: list[str] = []
        schedule = self.problem.cutoffs
        end_of_data = data_end(self.problem, self.sources)
        if schedule is None:
            now = end_of_data + timedelta(seconds=1) if end_of_data else _utcnow()
            return [now], notes
        step = parse_duration(schedule.every)
        start = _as_datetime(schedule.start)
        horizon = timedelta(days=label_horizon_days(self.problem))
        last = _as_datetime(schedule.end) if schedule.end else None
        if end_of_data is None:
            raise DataError(
                f"problem {self.name!r}: the label source {self.problem.label.source!r} has no "
                "rows with a time, so no cutoff can be checked for a complete label window",
                hint=f"check sources.{self.problem.label.source}: it needs rows and a `time`",
            )
        limit = end_of_data - horizon
        stop = min(last, limit) if last else limit
        # Without an `end`, the schedule runs to the end of the data: the cutoffs in its last
        # label horizon are left out (and counted), just as those past an explicit `end` are.
        final = last or end_of_data
        cutoffs, dropped = [], 0
        current = start
        while current <= final:
            if current <= stop:
                cutoffs.append(current)
            else:
                dropped += 1
            current += step
        if dropped:
            notes.append(
                f"left out {dropped} cutoff(s) after {stop:%Y-%m-%d}: their {horizon.days}-day "
                f"label window runs past the end of the data ({end_of_data:%Y-%m-%d %H:%M})"
            )
        if not cutoffs:
            raise DataError(
                f"problem {self.name!r}: no cutoff between {start:%Y-%m-%d} and "
                f"{stop:%Y-%m-%d} has a complete {horizon.days}-day label window",
                hint="move `cutoffs.start` earlier or shorten the label horizon",
            )
        return cutoffs, notes

    def training_frame(self) -> TrainingFrame:
        cutoffs, notes = self.cutoff_times()
        spine = self._eligible(cutoffs)
        if spine.num_rows == 0:
            raise DataError(
                f"problem {self.name!r}: no entity is eligible at any of the "
                f"{len(cutoffs)} cutoffs",
                hint="check the label's source and eligibility (for churn: `active_days`)",
            )
        features = self._features(spine)
        con = self.sources.con
        labels = con.sql(label_sql(self.problem, self.sources, SPINE)).df()
        labels = labels.rename(columns={ENTITY: self.entity, AS_OF: AS_OF_COLUMN})
        frame = features.merge(labels, on=[self.entity, AS_OF_COLUMN], how="inner")
        missing = len(features) - len(frame)
        if missing:
            notes.append(f"{missing} row(s) had no label and were left out")
        frame = frame.sort_values([AS_OF_COLUMN, self.entity], kind="stable").reset_index(drop=True)
        return TrainingFrame(frame, cutoffs, notes)


def _as_datetime(value) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    return datetime(value.year, value.month, value.day)


def _utcnow() -> datetime:
    from ..store import utcnow

    return utcnow()
