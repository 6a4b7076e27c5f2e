"""What every problem family reads: the spec, the open sources, their shapes, and helpers for
cutoffs, readiness and wording."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from ..data import SourceSet
from ..spec import Spec
from ._shapes import SourceShape

CUTOFFS = "_suggest_cutoffs"
HORIZONS = (7, 14, 30, 60, 90)


@dataclass
class Context:
    spec: Spec
    sources: SourceSet
    shapes: dict[str, SourceShape]

    def sql(self, query: str) -> list[tuple]:
        return self.sources.con.sql(query).fetchall()

    @contextmanager
    def cutoffs(self, times: list[datetime]) -> Iterator[str]:
        """Register ``times`` as table ``_suggest_cutoffs(c)`` for the duration of a block."""
        con = self.sources.con
        con.register(CUTOFFS, pa.table({"c": pa.array(times, pa.timestamp("us"))}))
        try:
            yield CUTOFFS
        finally:
            con.unregister(CUTOFFS)


def fit_horizon(wanted: int, span_days: float) -> int | None:
    """The longest horizon up to ``wanted`` whose label window and an equal history fit in the
    data (2 x horizon <= span); None when not even 7 days fit."""
    fitting = [h for h in HORIZONS if h <= wanted and 2 * h <= span_days]
    return max(fitting) if fitting else None


def history_note(what: str, wanted: int, span_days: float) -> str:
    return (
        f"{what} at a {wanted}-day horizon needs at least {2 * wanted} days of history "
        f"({wanted} days of features before a cutoff and {wanted} days of label after it); "
        f"you have {span_days:.0f}"
    )


def readiness(
    examples: int, minority: int, cutoffs: int | None, *, needs_cutoffs: bool = True
) -> tuple[str, float]:
    """A status (``ready``, ``limited``, ``not ready``) and a score in [0, 1] from the labelled
    examples, the rows of the rarer outcome, and the number of cutoffs."""
    c = cutoffs if cutoffs is not None else (8 if not needs_cutoffs else 0)
    if examples >= 500 and minority >= 50 and c >= 4:
        status = "ready"
    elif examples >= 50 and minority >= 10 and c >= 1:
        status = "limited"
    else:
        status = "not ready"
    score = (
        math.sqrt(min(1.0, examples / 2000))
        * math.sqrt(min(1.0, minority / 100))
        * math.sqrt(min(1.0, c / 8))
    )
    return status, score


def pct(part: float, whole: float) -> str:
    if not whole:
        return "0%"
    share = 100 * part / whole
    return f"{share:.1f}%" if share < 10 else f"{share:.0f}%"


def binary_metric(positive_rate: float) -> dict:
    """PR AUC for a rare positive class, ROC AUC otherwise."""
    return {"name": "pr_auc" if positive_rate < 0.1 else "roc_auc"}


def noun(entity: str, plural: bool = False) -> str:
    """``user_id`` -> ``user`` (``users``): the entity column read as a word."""
    word = re.sub(r"(_id|_key|Id)$", "", entity) or entity
    return word + "s" if plural and not word.endswith("s") else word


def entity_table_note(ctx: Context, entity: str) -> list[str]:
    """What is missing when no source holds one row per ``entity``."""
    if any(not s.error and s.entity == entity and s.is_entity_table for s in ctx.shapes.values()):
        return []
    return [
        f"no entity table for {entity} (one row per {entity}, such as a users table): "
        "features are limited to activity"
    ]
