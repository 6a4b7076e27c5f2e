"""Feature groups (``features.<name>``): entity columns, date parts, windowed aggregates."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ._base import Name, _Model
from ._durations import Duration

DatePart = Literal[
    "year",
    "quarter",
    "month",
    "day",
    "weekday",
    "week",
    "weekend",
    "days_since",
    "days_to_holiday",
    "days_since_holiday",
]
HOLIDAY_PARTS = ("days_to_holiday", "days_since_holiday")
AggOp = Literal["count", "sum", "mean", "min", "max", "count_distinct"]
Strategy = Literal["auto", "join", "running"]
AUTO_TOP = 5
"""How many values ``by: {column: auto}`` picks."""


class HolidaySpec(_Model):
    """Whose public holidays ``days_to_holiday`` / ``days_since_holiday`` count: one country
    (ISO code, as the ``holidays`` package knows it) or a column of the row holding the code."""

    country: str | None = None
    country_column: str | None = None
    subdivision: str | None = None

    @model_validator(mode="after")
    def _one(self) -> HolidaySpec:
        if (self.country is None) == (self.country_column is None):
            raise ValueError("give exactly one of `country` (e.g. US) or `country_column`")
        if self.subdivision and self.country_column:
            raise ValueError("`subdivision` goes with `country`, not with `country_column`")
        return self


class FeatureGroupSpec(_Model):
    """Columns of an entity table, or aggregations of an event source over time windows."""

    source: Name
    columns: list[str] = []
    dates: dict[str, list[DatePart]] = {}
    holidays: HolidaySpec | None = None
    sql: dict[Name, str] = {}
    windows: list[Duration] = []
    aggregate: dict[AggOp, str | list[str]] = {}
    by: dict[str, list[str] | Literal["auto"]] = {}
    recency: bool = False
    trend: bool = False
    strategy: Strategy = "auto"
    auto_top: int = Field(default=AUTO_TOP, ge=1, le=50)

    @field_validator("sql")
    @classmethod
    def _sql(cls, sql: dict[str, str]) -> dict[str, str]:
        for name, expr in sql.items():
            if not str(expr).strip():
                raise ValueError(f"the SQL of feature {name!r} is empty")
        return sql

    @model_validator(mode="after")
    def _shape(self) -> FeatureGroupSpec:
        if not (self.columns or self.dates or self.windows or self.recency or self.sql):
            raise ValueError(
                "a feature group needs `columns`/`dates`/`sql` (entity table) or `windows` + "
                "`aggregate` / `recency` (event source)"
            )
        if self.windows and not self.aggregate:
            raise ValueError("`windows` need `aggregate`, for example {count: '*', sum: value}")
        if self.aggregate and not self.windows:
            raise ValueError("`aggregate` needs `windows`, for example [7d, 30d]")
        if self.by and not self.windows:
            raise ValueError("`by` needs `windows`")
        if self.trend and len(set(self.windows)) < 2:
            raise ValueError("`trend` needs at least two `windows` (shortest over longest)")
        if self.windows and (self.dates or self.columns):
            raise ValueError(
                "`columns`/`dates` belong to an entity-table group, `windows` to an event group: "
                "make two groups"
            )
        wants_holidays = any(p in HOLIDAY_PARTS for parts in self.dates.values() for p in parts)
        if wants_holidays and self.holidays is None:
            raise ValueError(
                "`days_to_holiday`/`days_since_holiday` need `holidays: {country: US}` or "
                "`holidays: {country_column: country}`"
            )
        if self.holidays is not None and not wants_holidays:
            raise ValueError("`holidays` is only used by the date parts days_to/since_holiday")
        clash = set(self.sql) & set(self.columns)
        if clash:
            raise ValueError(f"{', '.join(sorted(clash))}: both a column and a `sql` feature")
        return self

    def aggregate_items(self) -> list[tuple[str, str]]:
        """(op, column) pairs in spec order."""
        items: list[tuple[str, str]] = []
        for op, cols in self.aggregate.items():
            for col in [cols] if isinstance(cols, str) else cols:
                items.append((op, col))
        return items
