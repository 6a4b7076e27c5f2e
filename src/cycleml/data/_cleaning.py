"""Cleaning suggestions: rules over a source's profile (and a few SQL queries of its view)
that propose steps for ``cleaning:``.

Each suggestion has a stable id (``<source>.<rule>[.<column>]``), a title, the evidence
(counts, rates), the action (the exact step `cycleml clean apply` records, or ``None`` for an
informational note), and a preview of the affected rows or values.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..errors import DataError, SourceError
from ._profile_parallel import Lane, parallel_enabled
from ._sources import SourceSet


@dataclass
class Suggestion:
    id: str
    source: str
    rule: str
    title: str
    evidence: dict[str, Any]
    action: dict[str, Any] | None = None
    preview: list[Any] = field(default_factory=list)
    note: str | None = None
    # The data the suggestion was made for (``source_fingerprint``): `clean apply` refuses it
    # when the data differ now.
    fingerprint: str | None = None

    @property
    def where(self) -> str:
        """``view`` (row/value fix), ``pipeline`` (learned in training) or ``info``."""
        if self.action is None:
            return "info"
        from ..spec._cleaning import VIEW_ACTIONS

        return "view" if self.action["action"] in VIEW_ACTIONS else "pipeline"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "rule": self.rule,
            "title": self.title,
            "evidence": self.evidence,
            "action": self.action,
            "applies_in": self.where,
            "preview": self.preview,
            "note": self.note,
            "fingerprint": self.fingerprint,
        }


def suggest_cleaning(
    profile: dict[str, Any],
    sources: SourceSet,
    *,
    rules: list[str] | None = None,
    sampled: list[dict[str, Any]] | None = None,
) -> list[Suggestion]:
    """Suggestions for the source ``profile["source"]`` (a profile as made by
    :func:`cycleml.data.profile_source`), reading facts the profile lacks from ``sources``.
    Steps already recorded in the spec are left out. ``rules`` limits the rules run; what a
    rule decided on a sample is appended to ``sampled`` (the profile's list of sampled
    statistics) when given."""
    from ._cleaning_rules import RULES, Context

    name = profile["source"]
    if profile.get("truncated"):
        raise DataError(
            f"source {name!r} has {profile.get('columns_total', 0):,} columns: cleaning "
            f"suggestions are made for sources of at most {len(profile['columns']):,} columns",
            hint=f"`cycleml profile {name}` profiles its first columns; for suggestions, keep "
            "the columns you need in a narrower file (or a long format: one row per entity, "
            "column and value)",
        )
    view = sources.view(name)
    ctx = Context(sources, name, view, profile)
    recorded = {step.id for step in sources.spec.cleaning}
    chosen = [(n, r) for n, r in RULES.items() if rules is None or n in rules]
    on_lane = [n for n, _ in chosen if n in LANE_RULES] if parallel_enabled(ctx.rows) else []
    found_by_rule: dict[str, tuple[list[Suggestion], list[dict[str, Any]]]] = {}
    try:
        with Lane(sources.con, view, bool(on_lane)) as lane:
            waiting: dict[str, Future] = {}
            side: Context | None = None
            if lane.parallel:  # the lane's rules start first, on a context of their own
                side = Context(sources, name, view, profile)
                side.con = lane.cursor  # type: ignore[assignment]
                waiting = {
                    n: lane.submit(_lane_rule, side, n, r) for n, r in chosen if n in on_lane
                }
            for rule_name, rule in chosen:
                if rule_name not in waiting:
                    found_by_rule[rule_name] = _run_rule(ctx, rule_name, rule)
            for rule_name, future in waiting.items():
                found_by_rule[rule_name] = future.result()
            if side is not None:
                side.close()  # on the lane's cursor, before the lane closes it
    finally:
        ctx.close()
    out: list[Suggestion] = []
    for rule_name, _ in chosen:  # in the rules' order, wherever each ran
        found, noted = found_by_rule[rule_name]
        for s in found:
            s.fingerprint = profile.get("fingerprint")
        out.extend(s for s in found if s.id not in recorded)
        if sampled is not None:
            sampled.extend(noted)
    return out


# On a large source these rules run on a second DuckDB cursor in a worker thread while the
# others run on the source's connection (see ``_profile_parallel``): the outlier rule's
# isolation forest (scikit-learn fit and scoring, which release the GIL for much of their work)
# needs nothing the other rules compute.
LANE_RULES = ("remove_outliers",)


def _run_rule(ctx: Any, rule_name: str, rule: Any) -> tuple[list[Suggestion], list[dict]]:
    """One rule's suggestions and the sample notes it added to ``ctx.sampled``."""
    import duckdb

    start = len(ctx.sampled)
    try:
        found = rule(ctx)
    except duckdb.Error as exc:
        raise SourceError(
            f"source {ctx.name!r}: the {rule_name} check cannot read the data: "
            f"{str(exc).strip().splitlines()[0]}",
            hint="check the source is complete and readable (`cycleml sources`)",
        ) from None
    return list(found), ctx.sampled[start:]


def _lane_rule(
    _con: Any, ctx: Any, rule_name: str, rule: Any
) -> tuple[list[Suggestion], list[dict]]:
    return _run_rule(ctx, rule_name, rule)
