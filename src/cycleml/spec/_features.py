"""Feature groups (``features.<name>``): entity columns, date parts, windowed aggregates."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from ._base import Name, _Model
from ._durations import Duration

DatePart = Literal["year", "quarter", "month", "day", "weekday", "weekend", "days_since"]
AggOp = Literal["count", "sum", "mean", "min", "max", "count_distinct"]


class FeatureGroupSpec(_Model):
    """Columns of an entity table, or aggregations of an event source over time windows."""

    source: Name
    columns: list[str] = []
    dates: dict[str, list[DatePart]] = {}
    windows: list[Duration] = []
    aggregate: dict[AggOp, str | list[str]] = {}
    by: dict[str, list[str]] = {}
    recency: bool = False

    @model_validator(mode="after")
    def _shape(self) -> FeatureGroupSpec:
        if not (self.columns or self.dates or self.windows or self.recency):
            raise ValueError(
                "a feature group needs `columns`/`dates` (entity table) or `windows` + "
                "`aggregate` / `recency` (event source)"
            )
        if self.windows and not self.aggregate:
            raise ValueError("`windows` need `aggregate`, for example {count: '*', sum: value}")
        if self.aggregate and not self.windows:
            raise ValueError("`aggregate` needs `windows`, for example [7d, 30d]")
        if self.by and not self.windows:
            raise ValueError("`by` needs `windows`")
        return self

    def aggregate_items(self) -> list[tuple[str, str]]:
        """(op, column) pairs in spec order."""
        items: list[tuple[str, str]] = []
        for op, cols in self.aggregate.items():
            for col in [cols] if isinstance(cols, str) else cols:
                items.append((op, col))
        return items
