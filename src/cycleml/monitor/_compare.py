"""A whole comparison of a current sample against a reference: drift per feature, of the
prediction and of the target, the dataset drift share, the domain classifier, data-quality
findings, and (optionally) the same per chunk of time. The result is one JSON-able dict, the
content of both the JSON output and the HTML report."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from ..errors import DataError
from ._domain import domain_classifier
from ._drift import DriftOptions, column_drift, drift_table, infer_kind
from ._quality import column_findings, schema_findings, volume_findings

CHUNKS = {"day": "D", "week": "W-SUN"}  # weekly periods ending Sunday: weeks start Monday


def compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: list | None = None,
    options: DriftOptions | None = None,
    prediction: str | None = None,
    target: str | None = None,
    time_column: str | None = None,
    chunk: str | None = None,
    exclude: list[str] | None = None,
) -> dict:
    """Compare ``current`` with ``reference``. ``columns``: ``FeatureColumn``s or names (default:
    every column of either side but ``prediction``, ``target``, ``time_column`` and
    ``exclude``). ``prediction``/``target``: a score or label column, compared on its own when
    present on both sides. ``chunk``: ``day`` or ``week`` of ``time_column`` in the current
    data, each compared with the whole reference."""
    started = time.perf_counter()
    options = options or DriftOptions()
    if len(reference) == 0:
        raise DataError(
            "the reference has no rows",
            hint="compare against a reference with data (the training dataset or another file)",
        )
    if len(current) == 0:
        raise DataError(
            "the current data has no rows", hint="check the current file, source or time window"
        )
    special = {c for c in (prediction, target, time_column) if c} | set(exclude or [])
    times: list[str] = []
    if columns is None:
        names = list(reference.columns) + [c for c in current.columns if c not in reference]
        # timestamps differ between two windows by design: not compared unless named
        times = [
            c
            for c in names
            if c not in special
            and any(
                c in side and pd.api.types.is_datetime64_any_dtype(side[c].dtype)
                for side in (reference, current)
            )
        ]
        columns = [c for c in names if c not in special and c not in times]
    names = [c if isinstance(c, str) else c.name for c in columns]
    rows = drift_table(reference, current, columns, options=options)
    tested = [r for r in rows if r.get("statistic") is not None]
    drifted = [r["feature"] for r in tested if r["drifted"]]
    share = len(drifted) / len(tested) if tested else 0.0
    result: dict[str, Any] = {
        "reference": {"rows": len(reference), "columns": len(reference.columns)},
        "current": {"rows": len(current), "columns": len(current.columns)},
        "options": options.to_dict(),
        "features": rows,
        "drifted": drifted,
        "tested": len(tested),
        "drift_share": share,
        "dataset_drift": bool(tested) and share >= options.drift_share,
        "not_compared": times,
        "prediction": _special(reference, current, prediction, options),
        "target": _special(reference, current, target, options),
    }
    if options.domain_classifier:
        usable = [
            (r["feature"], r.get("kind") or infer_kind(reference[r["feature"]]))
            for r in rows
            if "skipped" not in r or r["skipped"] == "no values on one side"
            if r["feature"] in reference and r["feature"] in current
            if r.get("reference_null_rate", 1.0) < 1.0 or r.get("current_null_rate", 1.0) < 1.0
        ]
        result["domain_classifier"] = domain_classifier(reference, current, usable, options)
    quality = schema_findings(reference, current, names) + column_findings(rows, options)
    if chunk:
        result["chunks"] = chunked(reference, current, columns, time_column, chunk, options)
        quality += volume_findings(result["chunks"])
    result["quality"] = quality
    result["seconds"] = time.perf_counter() - started
    return result


def _special(
    reference: pd.DataFrame, current: pd.DataFrame, name: str | None, options: DriftOptions
) -> dict | None:
    if not name:
        return None
    if name not in reference or name not in current:
        side = "reference" if name not in reference else "current"
        return {"feature": name, "drifted": False, "skipped": f"not known in the {side} data"}
    return column_drift(name, reference[name], current[name], options)


def chunked(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: list,
    time_column: str | None,
    chunk: str,
    options: DriftOptions,
) -> list[dict]:
    """Each ``chunk`` (day or week) of the current data against the whole reference. A chunk
    with fewer than ``options.min_chunk_rows`` rows is listed with the reason and skipped."""
    if chunk not in CHUNKS:
        raise DataError(f"unknown chunk {chunk!r}", hint="use day or week")
    if not time_column or time_column not in current:
        raise DataError(
            f"chunking by {chunk} needs a time column in the current data",
            hint="name it (--time COLUMN); it was "
            + (f"{time_column!r}, which is not there" if time_column else "not given"),
        )
    stamps = pd.to_datetime(current[time_column], errors="coerce")
    periods = stamps.dt.to_period(CHUNKS[chunk]).dt.start_time
    out = []
    no_domain = DriftOptions(**{**options.to_dict(), "domain_classifier": False})
    for start, part in current.groupby(periods, sort=True):
        entry: dict[str, Any] = {"chunk": str(pd.Timestamp(start).date()), "rows": len(part)}
        if len(part) < options.min_chunk_rows:
            entry["skipped"] = (
                f"too few rows in this chunk: {len(part)}, the tests need {options.min_chunk_rows}"
            )
            out.append(entry)
            continue
        rows = drift_table(reference, part, columns, options=no_domain)
        tested = [r for r in rows if r.get("statistic") is not None]
        entry["features"] = {
            r["feature"]: {
                "method": r.get("method"),
                "statistic": r.get("statistic"),
                "p_value": r.get("p_value"),
                "drifted": r["drifted"],
                **({"skipped": r["skipped"]} if "skipped" in r else {}),
            }
            for r in rows
        }
        entry["drifted"] = [r["feature"] for r in tested if r["drifted"]]
        entry["drift_share"] = len(entry["drifted"]) / len(tested) if tested else 0.0
        out.append(entry)
    return out
