"""Label kinds, eligibility and cutoffs of a problem (``problems.<name>.label`` / ``cutoffs``).

Windows are half-open: features see [as_of - W, as_of), a label sees [as_of, as_of + days).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal, get_args

from pydantic import Discriminator, Field, PositiveInt, Tag, model_validator

from ._base import Name, _Model, as_datetime
from ._durations import Duration, parse_duration


class Eligibility(_Model):
    """Which entities get a row at a cutoff.

    ``source``: an entity table; an entity exists at a cutoff when it has a row there with time
    before the cutoff (default: the label's source). ``active_days``: also require a row of the
    label's source in the N days before the cutoff."""

    source: Name | None = None
    active_days: PositiveInt | None = None


class InactivityLabel(_Model):
    """Churn: 1 when the entity has no event (of ``event_types``) in [cutoff, cutoff + days)."""

    kind: Literal["inactivity"]
    source: Name
    days: PositiveInt
    event_types: list[str] | None = None
    type_column: str = "event_type"
    active_days: PositiveInt | None = Field(
        default=None,
        description="Only entities with an event in the N days before the cutoff get a row "
        "(default: `days`).",
    )
    eligible: Eligibility | None = None


class EventWithinLabel(_Model):
    """Conversion: 1 when an event of ``event_types`` happens in [cutoff, cutoff + days)."""

    kind: Literal["event_within"]
    source: Name
    days: PositiveInt
    event_types: list[str] = Field(min_length=1)
    type_column: str = "event_type"
    eligible: Eligibility | None = None


class SumWithinLabel(_Model):
    """Value: the sum of ``column`` over [cutoff, cutoff + days) (0 when nothing happens)."""

    kind: Literal["sum_within"]
    source: Name
    days: PositiveInt
    column: str
    event_types: list[str] | None = None
    type_column: str = "event_type"
    eligible: Eligibility | None = None


class CountWithinLabel(_Model):
    """Demand / activity: the number of rows (of ``event_types``) in [cutoff, cutoff + days)."""

    kind: Literal["count_within"]
    source: Name
    days: PositiveInt
    event_types: list[str] | None = None
    type_column: str = "event_type"
    eligible: Eligibility | None = None


class ColumnLabel(_Model):
    """An existing column of an entity table. With cutoffs, the value of the entity's row valid
    at the cutoff (for a table with `time`: the latest row with time <= cutoff)."""

    kind: Literal["column"]
    source: Name
    column: str
    eligible: Eligibility | None = None


class ClickLabel(_Model):
    """Ranking: one row per impression (of ``item`` to the entity); 1 when it was clicked.

    Either ``column`` names a boolean column of the impressions source, or ``clicks`` names a
    source of click rows (entity, item, time) and a click on the same item within ``within``
    after the impression counts. ``group``: a column of the impressions naming the list the
    impression was shown in (default: the entity and the impression time)."""

    kind: Literal["click"]
    source: Name
    item: str
    column: str | None = None
    clicks: Name | None = None
    within: Duration = "1h"
    group: str | None = None

    @model_validator(mode="after")
    def _one_way(self) -> ClickLabel:
        if (self.column is None) == (self.clicks is None):
            raise ValueError(
                "give `column` (a clicked flag on each impression) or `clicks` (a source of "
                "click rows), not both"
            )
        return self


class ForecastLabel(_Model):
    """Demand per item per day: the target on day cutoff + h for h in 1..horizon (direct
    multi-horizon; h is a feature). ``column`` is summed per day, or rows are counted when it
    is omitted. The item is the source's ``entity`` (declare the source with the item column as
    its entity)."""

    kind: Literal["forecast"]
    source: Name
    horizon: PositiveInt
    column: str | None = None
    eligible: Eligibility | None = None


LABEL_MODELS = (
    InactivityLabel,
    EventWithinLabel,
    SumWithinLabel,
    CountWithinLabel,
    ColumnLabel,
    ClickLabel,
    ForecastLabel,
)
Label = Annotated[
    InactivityLabel
    | EventWithinLabel
    | SumWithinLabel
    | CountWithinLabel
    | ColumnLabel
    | ClickLabel
    | ForecastLabel,
    Field(discriminator="kind"),
]
LABEL_KINDS: tuple[str, ...] = tuple(
    get_args(model.model_fields["kind"].annotation)[0] for model in LABEL_MODELS
)
"""The values `kind` takes in a problem's label (for error hints)."""


class CutoffSchedule(_Model):
    """Cutoffs every ``every`` from ``start`` up to and including ``end``."""

    every: Duration
    start: date | datetime
    end: date | datetime | None = None

    @model_validator(mode="after")
    def _ordered(self) -> CutoffSchedule:
        if self.end is not None and as_datetime(self.end) <= as_datetime(self.start):
            raise ValueError("`end` must be after `start`")
        parse_duration(self.every)
        return self


class CutoffTable(_Model):
    """Cutoffs given as rows (entity, time) of a source: one training row per source row."""

    source: Name
    time: str
    entity: str | None = None


def _cutoff_kind(value: object) -> str:
    if isinstance(value, dict):
        return "table" if "source" in value else "schedule"
    return "table" if isinstance(value, CutoffTable) else "schedule"


Cutoffs = Annotated[
    Annotated[CutoffSchedule, Tag("schedule")] | Annotated[CutoffTable, Tag("table")],
    Discriminator(_cutoff_kind),
]
"""A schedule (``every``/``start``/``end``) or a table of rows (``source``/``time``)."""
