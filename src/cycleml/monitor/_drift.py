"""Drift of current inputs against the reference (the model's training data), per feature.

Numbers: two-sample Kolmogorov-Smirnov. Categories: chi-square test of the 2 x k contingency
table (a two-sample test: the reference shares are estimates too, not exact)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..features import FeatureColumn


def ks_drift(reference: pd.Series, current: pd.Series) -> dict:
    ref = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(dtype=float)
    cur = pd.to_numeric(current, errors="coerce").dropna().to_numpy(dtype=float)
    if len(ref) == 0 or len(cur) == 0:
        return {
            "method": "ks",
            "statistic": None,
            "p_value": None,
            "skipped": "no values on one side",
        }
    result = stats.ks_2samp(ref, cur)
    return {"method": "ks", "statistic": float(result.statistic), "p_value": float(result.pvalue)}


MISSING = "__missing__"


def chi2_drift(reference: pd.Series, current: pd.Series) -> dict:
    """Chi-square test of independence on the 2 x k table (reference/current x category), no
    continuity correction; a missing value counts as its own category. A side with no values at
    all is skipped (that is a missing-rate change, not a distribution to compare)."""
    if reference.notna().sum() == 0 or current.notna().sum() == 0:
        return {
            "method": "chi2",
            "statistic": None,
            "p_value": None,
            "skipped": "no values on one side",
        }
    ref = reference.astype(object).where(reference.notna(), MISSING).astype(str)
    cur = current.astype(object).where(current.notna(), MISSING).astype(str)
    categories = sorted(set(ref.unique()) | set(cur.unique()))
    if len(categories) < 2:
        return {"method": "chi2", "statistic": 0.0, "p_value": 1.0, "new_categories": []}
    table = np.array(
        [
            ref.value_counts().reindex(categories, fill_value=0).to_numpy(),
            cur.value_counts().reindex(categories, fill_value=0).to_numpy(),
        ]
    )
    result = stats.chi2_contingency(table, correction=False)
    new = sorted(set(cur.unique()) - set(ref.unique()) - {MISSING})
    return {
        "method": "chi2",
        "statistic": float(result.statistic),
        "p_value": float(result.pvalue),
        "new_categories": new[:20],
    }


def drift_table(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[FeatureColumn], *, alpha: float
) -> list[dict]:
    rows = []
    for col in columns:
        if col.name not in reference or col.name not in current:
            rows.append(
                {"feature": col.name, "skipped": "column missing on one side", "drifted": False}
            )
            continue
        test = ks_drift if col.kind == "number" else chi2_drift
        result = test(reference[col.name], current[col.name])
        p_value = result.get("p_value")
        result.update(
            feature=col.name,
            kind=col.kind,
            threshold=alpha,
            drifted=bool(p_value is not None and p_value < alpha),
            reference_null_rate=float(reference[col.name].isna().mean()),
            current_null_rate=float(current[col.name].isna().mean()),
        )
        rows.append(result)
    return rows
