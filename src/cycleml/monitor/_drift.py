"""Per-column drift of a current sample against a reference: the column's kind, its prepared pair,
the method (chosen automatically or set per column), the statistic against its threshold, and
the facts the data-quality checks and the report need (null rates, training range, new
categories, the two distributions on shared bins)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import SpecError
from ._methods import (
    METHODS,
    CategoricalPair,
    DriftMethod,
    NumericPair,
    auto_method,
    get_method,
)

# A number column with at most this many distinct values is compared as categories (auto choice)
FEW_VALUES = 5
# Categories drawn in the report (the most common reference ones, then new ones)
TOP_CATEGORIES = 20


@dataclass
class DriftOptions:
    """How columns are compared; ``from_spec`` reads them from ``monitoring:``."""

    alpha: float = 0.05  # threshold of every p-value method unless set per column or method
    methods: Mapping[str, str] = field(default_factory=dict)  # column -> method name
    thresholds: Mapping[str, float] = field(default_factory=dict)  # column or method -> value
    small_sample: int = 1000
    drift_share: float = 0.5
    domain_classifier: bool = True
    domain_sample: int = 4000
    domain_auc: float = 0.55
    missing_rate_jump: float = 0.05
    out_of_range_share: float = 0.01
    min_chunk_rows: int = 30
    seed: int = 0
    threads: int | None = None  # columns compared in parallel; None: one per core (at most 8)

    @classmethod
    def from_spec(cls, monitoring: Any) -> DriftOptions:
        names = [f for f in cls.__dataclass_fields__ if hasattr(monitoring, f)]
        return cls(**{name: getattr(monitoring, name) for name in names})

    def __post_init__(self) -> None:
        for column, name in self.methods.items():
            if name not in METHODS:
                raise SpecError(
                    f"unknown drift method {name!r} for column {column!r}",
                    hint="use one of: " + ", ".join(sorted(METHODS)),
                )

    def threshold(self, column: str, method: DriftMethod) -> float:
        if column in self.thresholds:
            return float(self.thresholds[column])
        if method.name in self.thresholds:
            return float(self.thresholds[method.name])
        return self.alpha if method.score == "p_value" else method.threshold

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["methods"], out["thresholds"] = dict(self.methods), dict(self.thresholds)
        return out


def infer_kind(series: pd.Series) -> str:
    """``number`` for numeric and datetime columns, ``binary`` for booleans, else ``category``."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "binary"
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return "number"
    return "category"


def as_numbers(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        series = series.dt.tz_localize(None) if getattr(series.dt, "tz", None) else series
        values = series.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(float)
        values[series.isna().to_numpy()] = np.nan
        return values
    if pd.api.types.is_bool_dtype(series.dtype) or not pd.api.types.is_numeric_dtype(series.dtype):
        series = pd.to_numeric(series, errors="coerce")
    return series.to_numpy(dtype=float, na_value=np.nan)


def _value_counts(series: pd.Series) -> pd.Series:
    counts = series.value_counts(dropna=True, sort=False)
    if isinstance(series.dtype, pd.CategoricalDtype):
        counts = counts[counts > 0]  # a slice of a categorical lists absent categories too
    if len(counts) and not all(isinstance(k, str) for k in counts.index[:50]):
        counts.index = counts.index.map(str)
        counts = counts.groupby(level=0, sort=False).sum()
    return counts


def categorical_pair(reference: pd.Series, current: pd.Series) -> CategoricalPair:
    """Counts over the union of categories: reference ones by frequency, then new ones."""
    ref, cur = _value_counts(reference), _value_counts(current)
    ref = ref.sort_values(ascending=False, kind="stable")
    new = [c for c in cur.index if c not in ref.index]
    categories = list(ref.index) + sorted(new, key=lambda c: -int(cur[c]))
    return CategoricalPair(
        categories,
        ref.reindex(categories, fill_value=0).to_numpy(),
        cur.reindex(categories, fill_value=0).to_numpy(),
    )


def column_drift(
    name: str,
    reference: pd.Series,
    current: pd.Series,
    options: DriftOptions,
    kind: str | None = None,
) -> dict:
    """The drift row of one column (see the module docstring)."""
    kind = kind or infer_kind(reference)
    row: dict[str, Any] = {
        "feature": name,
        "kind": kind,
        "method": None,
        "statistic": None,
        "p_value": None,
        "threshold": None,
        "score": None,
        "drifted": False,
        "reference_rows": len(reference),
        "current_rows": len(current),
        "reference_null_rate": float(reference.isna().mean()) if len(reference) else None,
        "current_null_rate": float(current.isna().mean()) if len(current) else None,
    }
    chosen = options.methods.get(name)
    pair: NumericPair | CategoricalPair
    if kind == "number":
        numbers = NumericPair(as_numbers(reference), as_numbers(current))
        pair = numbers
        row["reference_min"] = float(numbers.reference[0]) if len(numbers.reference) else None
        row["reference_max"] = float(numbers.reference[-1]) if len(numbers.reference) else None
        if len(numbers.reference) and len(numbers.current):
            below = np.searchsorted(numbers.current, numbers.reference[0], side="left")
            above = len(numbers.current) - np.searchsorted(
                numbers.current, numbers.reference[-1], side="right"
            )
            row["out_of_range_share"] = float((below + above) / len(numbers.current))
            distinct = _distinct(numbers.reference, numbers.current)
            if chosen is None and distinct <= FEW_VALUES:
                # few distinct numbers: compared as categories (as Evidently does)
                pair = categorical_pair(reference.dropna(), current.dropna())
                row["compared_as"] = "binary" if distinct <= 2 else "category"
    else:
        pair = categorical_pair(reference, current)
        if kind == "category" and len(pair.categories) <= 2:
            row["compared_as"] = "binary"
        new = [c for c, n in zip(pair.categories, pair.reference_counts, strict=True) if n == 0]
        if new:
            cur_total = max(int(pair.current_counts.sum()), 1)
            new_rows = int(pair.current_counts[pair.reference_counts == 0].sum())
            row["new_categories"] = [str(c) for c in new[:20]]
            row["new_category_share"] = new_rows / cur_total
        else:
            row["new_categories"] = []
    n_ref, n_cur = pair.sizes
    effective = row.get("compared_as", kind)
    if chosen:
        method = get_method(chosen)
        if effective not in method.kinds and kind not in method.kinds:
            raise SpecError(
                f"drift method {method.name!r} does not apply to {kind} column {name!r}",
                hint=f"{method.name} applies to {', '.join(sorted(method.kinds))} columns",
            )
    else:
        method = auto_method(effective, min(n_ref, n_cur), options.small_sample)
    row.update(
        method=method.name,
        score=method.score,
        threshold=options.threshold(name, method),
        distribution=_distribution(pair),
    )
    if min(n_ref, n_cur) == 0:
        row["skipped"] = "no values on one side"
        return row
    if min(n_ref, n_cur) < method.min_rows:
        row["skipped"] = (
            f"too few values for {method.title}: {min(n_ref, n_cur)} on the smaller side, "
            f"it needs {method.min_rows}"
        )
        return row
    result = method.compute(pair)
    row.update(
        statistic=result.statistic,
        p_value=result.p_value,
        drifted=method.drifted(result, row["threshold"]),
    )
    return row


def _distinct(reference: np.ndarray, current: np.ndarray) -> int:
    """Distinct values over both sorted samples, counted up to ``FEW_VALUES + 1`` (a jump per
    value with ``searchsorted``, not a pass over the data)."""
    seen: set[float] = set()
    for side in (reference, current):
        at = 0
        while at < len(side) and len(seen) <= FEW_VALUES:
            seen.add(float(side[at]))
            at = int(np.searchsorted(side, side[at], side="right"))
    return len(seen)


def _distribution(pair: NumericPair | CategoricalPair) -> dict:
    """Both sides' shares on shared bins (numbers) or the top categories, for the report."""
    n_ref, n_cur = pair.sizes
    if n_ref == 0 and n_cur == 0:
        return {}
    if isinstance(pair, NumericPair):
        if n_ref == 0 or n_cur == 0:
            return {}
        ref, cur = pair.counts
        return {
            "bins": [float(x) for x in pair.edges],
            "reference": [float(x) for x in ref / n_ref],
            "current": [float(x) for x in cur / n_cur],
        }
    ref, cur = pair.reference_counts, pair.current_counts
    top = min(len(pair.categories), TOP_CATEGORIES)
    return {
        "categories": [str(c) for c in pair.categories[:top]],
        "reference": [float(x) for x in ref[:top] / max(n_ref, 1)],
        "current": [float(x) for x in cur[:top] / max(n_cur, 1)],
        "other_categories": max(len(pair.categories) - top, 0),
    }


def drift_table(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Any = None,
    *,
    alpha: float | None = None,
    options: DriftOptions | None = None,
) -> list[dict]:
    """One drift row per column. ``columns``: ``FeatureColumn``s (name and kind), names, or
    None for every column of the reference; a column missing on one side is skipped with a
    reason."""
    options = options or DriftOptions(**({} if alpha is None else {"alpha": alpha}))
    if columns is None:
        columns = list(reference.columns)

    def one(col: Any) -> dict:
        name, kind = (col, None) if isinstance(col, str) else (col.name, col.kind)
        if name not in reference or name not in current:
            side = "current" if name in reference else "reference"
            return {
                "feature": name,
                "kind": kind,
                "method": None,
                "statistic": None,
                "p_value": None,
                "drifted": False,
                "skipped": f"column missing on the {side} side",
            }
        return column_drift(name, reference[name], current[name], options, kind)

    threads = options.threads or min(os.cpu_count() or 1, 8)
    if threads <= 1 or len(columns) <= 1:
        return [one(col) for col in columns]
    # NumPy's sorts and searches release the GIL: columns run side by side
    with ThreadPoolExecutor(min(threads, len(columns))) as pool:
        return list(pool.map(one, columns))
