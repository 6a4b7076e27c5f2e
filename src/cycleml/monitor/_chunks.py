"""The prediction log read in bulk, cut into chunks, and each chunk's drift.

The log is read with the store's ADBC driver (SQLite or PostgreSQL) as a stream of Arrow
batches that DuckDB consumes as it arrives: DuckDB unpacks the JSON inputs into typed columns
(numbers as DOUBLE, categories as text, then dictionary-encoded), so no row passes through
Python. Chunks are days or weeks (weeks start on Monday, UTC) of the time each prediction was
logged, or runs of N rows in the order they were logged. Each chunk is compared with the whole
reference by the same methods as the whole window (the statistics are exact, not
approximated); chunks run side by side in threads."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError
from ._drift import DriftOptions, column_drift

if TYPE_CHECKING:
    from ..project import Project

CHUNK_UNITS = ("day", "week")
LOGGED_AT = "__logged_at"
LOG_ID = "__log_id"
PREDICTION = "prediction"
_JSON_TYPES = {"number": "DOUBLE", "binary": "BOOLEAN"}


@dataclass
class LogFrame:
    """The log rows of one model version: ``frame`` (features, ``prediction``, ``__log_id``,
    ``__logged_at``) and, when chunked, each chunk's start, end and row positions."""

    frame: pd.DataFrame
    starts: list[datetime]
    ends: list[datetime]
    rows: list[np.ndarray]

    unit: str | int | None = None

    def label(self, index: int) -> str:
        """A day or week chunk: its first day; a chunk of N rows: its first row's time."""
        start = self.starts[index]
        if isinstance(self.unit, int):
            return start.isoformat(timespec="seconds")
        return str(start.date())


def chunk_unit(chunk: str | int | None) -> str | int | None:
    """``day``, ``week``, a number of rows (an int, or digits), or None."""
    if chunk is None or chunk in CHUNK_UNITS:
        return chunk
    if isinstance(chunk, str) and chunk.strip().isdigit():
        chunk = int(chunk)
    if isinstance(chunk, int) and not isinstance(chunk, bool) and chunk > 0:
        return chunk
    raise DataError(
        f"unknown chunk {chunk!r}", hint="use day, week, or a number of rows (e.g. 50000)"
    )


def read_log(
    project: Project,
    problem: str,
    model_version_id: int,
    columns: list,
    since: datetime | None = None,
    chunk: str | int | None = None,
) -> LogFrame | None:
    """The prediction log of ``model_version_id`` (logged since ``since``) with its inputs
    unpacked into ``columns`` (``FeatureColumn``s); None when it has no rows."""
    import duckdb

    from ..data import quote, sql_literal
    from ..data._sources import _adbc_connect

    chunk = chunk_unit(chunk)
    store = project.store
    postgres = store.dialect == "postgresql"
    where = f"problem = {sql_literal(problem)} AND model_version_id = {int(model_version_id)}"
    if since is not None:
        stamp = since.strftime("%Y-%m-%d %H:%M:%S.%f")
        where += f" AND created_at >= {'TIMESTAMP ' if postgres else ''}'{stamp}'"
    text = "inputs::text" if postgres else "CAST(inputs AS TEXT)"
    real = "score::float8" if postgres else "CAST(score AS REAL)"
    sql = (
        f"SELECT id, created_at, {real} AS score, {text} AS inputs FROM prediction_log "
        f"WHERE {where} ORDER BY id"
    )
    schema = {c.name: _JSON_TYPES.get(c.kind, "VARCHAR") for c in columns}
    conn = _adbc_connect(store.url, project.path)
    con = duckdb.connect()
    try:
        con.execute(f"SET threads = {max(os.cpu_count() or 1, 1)}")
        with conn.cursor() as cur:
            if not postgres:  # the SQLite driver's default batch is 1,024 rows
                from adbc_driver_sqlite import StatementOptions

                cur.adbc_statement.set_options(**{StatementOptions.BATCH_ROWS.value: "65536"})
            cur.execute(sql)
            reader = cur.fetch_record_batch()
            con.register("__raw_log", reader)
            unpacked = ", ".join(f"__in[{sql_literal(name)}] AS {quote(name)}" for name in schema)
            table = con.sql(
                f"SELECT id AS {LOG_ID}, CAST(created_at AS TIMESTAMP) AS {LOGGED_AT}, "
                f"score AS {PREDICTION}{', ' + unpacked if unpacked else ''} FROM "
                f"(SELECT *, json_transform(inputs, {sql_literal(json.dumps(schema))}) AS __in "
                "FROM __raw_log)"
            ).to_arrow_table()
    finally:
        con.close()
        conn.close()
    if table.num_rows == 0:
        return None
    frame = _to_frame(table)
    if chunk is None:
        return LogFrame(frame, [], [], [])
    return _cut(frame, chunk)


def _to_frame(table: pa.Table) -> pd.DataFrame:
    """Numbers as float64 NumPy columns, text dictionary-encoded (pandas categoricals), so 10M
    rows make no Python strings."""
    data: dict[str, Any] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = pc.dictionary_encode(column).combine_chunks()
        data[name] = column.to_pandas()
    return pd.DataFrame(data, copy=False)


def _cut(frame: pd.DataFrame, chunk: str | int) -> LogFrame:
    stamps = frame[LOGGED_AT].to_numpy(dtype="datetime64[us]")
    if isinstance(chunk, int):  # every N rows, in the order they were logged
        order = np.argsort(frame[LOG_ID].to_numpy(), kind="stable")
        parts = [order[at : at + chunk] for at in range(0, len(order), chunk)]
        times = [stamps[p] for p in parts]
        return LogFrame(
            frame,
            [pd.Timestamp(t.min()).to_pydatetime() for t in times],
            [pd.Timestamp(t.max()).to_pydatetime() for t in times],
            parts,
            chunk,
        )
    days = stamps.astype("datetime64[D]").astype(np.int64)
    # 1970-01-01 was a Thursday: shifted by 3 days, weeks start on Monday
    keys = (days + 3) // 7 if chunk == "week" else days
    lowest = int(keys.min())
    codes = keys - lowest
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    starts, ends, rows = [], [], []
    step = 7 if chunk == "week" else 1
    for code, count in enumerate(counts):
        if not count:
            continue
        day = (lowest + code) * 7 - 3 if chunk == "week" else lowest + code
        start = datetime(1970, 1, 1) + timedelta(days=int(day))
        starts.append(start)
        ends.append(start + timedelta(days=step))
        rows.append(order[bounds[code] : bounds[code + 1]])
    return LogFrame(frame, starts, ends, rows, chunk)


def chunk_drift(
    reference: pd.DataFrame,
    log: LogFrame,
    columns: list,
    options: DriftOptions,
    prediction: str | None = PREDICTION,
) -> tuple[list[dict], dict]:
    """Each chunk of ``log`` against the whole reference: the ``chunks`` entries (as
    ``compare`` makes them) and ``drift_over_time`` (features x chunks)."""
    no_domain = DriftOptions(**{**options.to_dict(), "domain_classifier": False})
    names = [c if isinstance(c, str) else c.name for c in columns]
    kinds = {(c if isinstance(c, str) else c.name): getattr(c, "kind", None) for c in columns}
    both = prediction and prediction in reference and prediction in log.frame
    extra = [prediction] if both else []

    def one(index: int) -> dict:
        rows = log.rows[index]
        entry: dict[str, Any] = {
            "chunk": log.label(index),
            "start": log.starts[index].isoformat(),
            "end": log.ends[index].isoformat(),
            "rows": len(rows),
        }
        if len(rows) < options.min_chunk_rows:
            entry["skipped"] = (
                f"too few rows in this chunk: {len(rows)}, the tests need {options.min_chunk_rows}"
            )
            return entry
        part = log.frame.iloc[rows]
        found = {}
        for name in names + extra:
            if name not in reference or name not in part:
                found[name] = {
                    "method": None,
                    "statistic": None,
                    "p_value": None,
                    "drifted": False,
                    "skipped": "column missing on the "
                    + ("current" if name in reference else "reference")
                    + " side",
                }
                continue
            row = column_drift(name, reference[name], part[name], no_domain, kinds.get(name))
            found[name] = {
                "method": row.get("method"),
                "statistic": row.get("statistic"),
                "p_value": row.get("p_value"),
                "score": row.get("score"),
                "drifted": row["drifted"],
                **({"skipped": row["skipped"]} if "skipped" in row else {}),
            }
        features = {n: found[n] for n in names}
        tested = [n for n, r in features.items() if r.get("statistic") is not None]
        entry["features"] = features
        if extra:
            entry["prediction"] = found[extra[0]]
        entry["drifted"] = [n for n in tested if features[n]["drifted"]]
        entry["drift_share"] = len(entry["drifted"]) / len(tested) if tested else 0.0
        return entry

    threads = options.threads or min(os.cpu_count() or 1, 8)
    indices = range(len(log.rows))
    if threads <= 1 or len(log.rows) <= 1:
        chunks = [one(i) for i in indices]
    else:
        with ThreadPoolExecutor(min(threads, len(log.rows))) as pool:
            chunks = list(pool.map(one, indices))
    return chunks, drift_over_time(chunks, names + extra)


def drift_over_time(chunks: list[dict], names: list[str]) -> dict:
    """Features x chunks: ``values`` the score each feature's threshold bounds (the p-value of
    a test, the distance of a distance method), ``drifted`` the verdicts (None: skipped)."""
    values: list[list[float | None]] = []
    drifted: list[list[bool | None]] = []
    methods: list[list[str | None]] = []
    for name in names:
        row_v, row_d, row_m = [], [], []
        for chunk in chunks:
            cell = (chunk.get("features") or {}).get(name)
            if cell is None and name == PREDICTION:
                cell = chunk.get("prediction")
            if not cell or cell.get("statistic") is None:
                row_v.append(None)
                row_d.append(None)
                row_m.append(cell.get("method") if cell else None)
                continue
            score = cell["p_value"] if cell.get("score") == "p_value" else cell["statistic"]
            row_v.append(score)
            row_d.append(bool(cell["drifted"]))
            row_m.append(cell.get("method"))
        values.append(row_v)
        drifted.append(row_d)
        methods.append(row_m)
    return {
        "chunks": [c["chunk"] for c in chunks],
        "starts": [c.get("start") for c in chunks],
        "ends": [c.get("end") for c in chunks],
        "rows": [c["rows"] for c in chunks],
        "features": list(names),
        "values": values,
        "drifted": drifted,
        "methods": methods,
        "drift_share": [c.get("drift_share") for c in chunks],
        "skipped": [c.get("skipped") for c in chunks],
    }
