"""Data-quality findings of a comparison: schema changes, all-null columns, new categories,
missing-rate jumps, values out of the training range, volume anomalies. Each finding is a dict
``{check, column, severity, message}`` plus the figures behind it; none of them raises."""

from __future__ import annotations

import math

import pandas as pd
from scipy import stats

from ._drift import DriftOptions, infer_kind


def _finding(check: str, column: str | None, message: str, severity: str = "warning", **kw):
    return {"check": check, "column": column, "severity": severity, "message": message, **kw}


def schema_findings(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str]) -> list:
    out = []
    for name in columns:
        if name in reference and name not in current:
            out.append(
                _finding(
                    "schema",
                    name,
                    f"column {name!r} is in the reference but not in the current data",
                    "error",
                    side="reference",
                )
            )
        elif name in current and name not in reference:
            out.append(
                _finding(
                    "schema",
                    name,
                    f"column {name!r} is in the current data but not in the reference",
                    side="current",
                )
            )
        elif name in current and name in reference:
            ref_kind, cur_kind = infer_kind(reference[name]), infer_kind(current[name])
            all_null = current[name].isna().all() or reference[name].isna().all()
            if ref_kind != cur_kind and not all_null:
                out.append(
                    _finding(
                        "schema",
                        name,
                        f"column {name!r} changed type: {reference[name].dtype} ({ref_kind}) "
                        f"in the reference, {current[name].dtype} ({cur_kind}) now",
                        "error",
                        reference_dtype=str(reference[name].dtype),
                        current_dtype=str(current[name].dtype),
                    )
                )
    return out


def column_findings(rows: list[dict], options: DriftOptions) -> list[dict]:
    """Findings read off the drift rows (which carry null rates, ranges and new categories)."""
    out = []
    for row in rows:
        name = row["feature"]
        ref_null, cur_null = row.get("reference_null_rate"), row.get("current_null_rate")
        for side, rate in (("reference", ref_null), ("current", cur_null)):
            if rate == 1.0:
                out.append(
                    _finding(
                        "all_null",
                        name,
                        f"column {name!r} has only nulls in the {side} data",
                        "error",
                        side=side,
                    )
                )
        if ref_null is not None and cur_null is not None and 1.0 not in (ref_null, cur_null):
            jump = cur_null - ref_null
            p = _two_proportions(ref_null, row["reference_rows"], cur_null, row["current_rows"])
            if abs(jump) >= options.missing_rate_jump and p < options.alpha:
                out.append(
                    _finding(
                        "missing_rate",
                        name,
                        f"column {name!r}: missing rate {ref_null:.1%} -> {cur_null:.1%}",
                        reference_null_rate=ref_null,
                        current_null_rate=cur_null,
                        p_value=p,
                    )
                )
        if row.get("new_categories"):
            share = row.get("new_category_share", 0.0)
            shown = ", ".join(row["new_categories"][:5])
            out.append(
                _finding(
                    "new_categories",
                    name,
                    f"column {name!r}: {len(row['new_categories'])} "
                    f"{'category' if len(row['new_categories']) == 1 else 'categories'} not in "
                    f"the reference ({shown}), {share:.1%} of current rows",
                    categories=row["new_categories"],
                    share=share,
                )
            )
        share = row.get("out_of_range_share")
        if share is not None and share >= options.out_of_range_share:
            out.append(
                _finding(
                    "out_of_range",
                    name,
                    f"column {name!r}: {share:.1%} of current values outside the reference "
                    f"range [{row['reference_min']:.6g}, {row['reference_max']:.6g}]",
                    share=share,
                )
            )
    return out


def volume_findings(chunks: list[dict], *, low: float = 0.5, high: float = 2.0) -> list[dict]:
    """Chunks whose row count is below ``low`` or above ``high`` times the median chunk."""
    if len(chunks) < 3:
        return []
    median = float(pd.Series([c["rows"] for c in chunks]).median())
    out = []
    for chunk in chunks:
        ratio = chunk["rows"] / median if median else 0.0
        if ratio < low or ratio > high:
            out.append(
                _finding(
                    "volume",
                    None,
                    f"chunk {chunk['chunk']}: {chunk['rows']} rows, {ratio:.2f}x the median "
                    f"chunk ({median:.0f} rows)",
                    chunk=chunk["chunk"],
                    rows=chunk["rows"],
                    ratio=ratio,
                )
            )
    return out


def _two_proportions(p1: float, n1: int, p2: float, n2: int) -> float:
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0 if p1 == p2 else 0.0
    return float(2 * stats.norm.sf(abs(p1 - p2) / se))
