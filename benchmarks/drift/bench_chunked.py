"""Chunked monitoring benchmark (issue 8, "Speed"): a 30-day chunked run of ``cycleml monitor
PROBLEM --from log --chunk day`` over a 10M-row prediction log in a SQLite store.

Setup (not timed, reused from ``--workdir`` when it is there): the demo product (400 users) with
the churn problem on the ``profile`` and ``channels`` feature groups (11 features: 2 categories,
9 numbers), a logistic model trained on it, then ``--rows`` prediction-log rows over 30 days:
inputs drawn from a pool of 50,000 jittered training rows (scored by the model), written as JSON
by DuckDB and ingested into the store's ``prediction_log`` through ADBC, 1M rows at a time. From
day 21 on the users are 25 years older (``age`` shifts), so the run must find that date.

Timed: ``Project.monitor("churn", current="log", chunk="day")``, in this process, wall and CPU
time, and the process's peak RSS (which includes the setup when it ran in the same process).
The anchor is the way the log was read before (SQLAlchemy rows, one Python dict per row's
inputs, a pandas frame from the records, pandas groupby chunks) on a log of ``--anchor-rows``
rows (default 1M; it is too slow and large for 10M), against cycleml on that same log, in the
same run; the ratio is printed.

Target: the 10M-row run in under 60 s on 2 cores.
Run: bash benchmarks/run.sh drift   (or, with that venv, python bench_chunked.py [--rows N])
Exits 0 whether or not the target is met; a missed target is printed as MISSED.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

START = datetime(2026, 6, 2)
DAYS = 30
SHIFT_DAY = 20  # 0-based: the 21st day, 2026-06-22
POOL = 50_000
BATCH = 1_000_000
TARGET_SECONDS = 60.0


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(workdir: Path, rows: int) -> Path:
    """The trained project with a ``rows``-row prediction log (reused when it is there)."""
    from cycleml import Project
    from cycleml._init import init_project

    root = workdir / f"project-{rows}"
    done = root / ".bench-ready"
    if done.exists():
        return root
    if root.exists():
        shutil.rmtree(root)
    init_project(root, demo=True, n_users=400, seed=7, end=date(2026, 6, 1))
    spec = root / "cycleml.yaml"
    text = spec.read_text()
    text = text.replace("features: [profile, activity, channels]", "features: [profile, channels]")
    text = text.replace(
        "algorithms: [baseline, logistic, lightgbm]", "algorithms: [logistic]\n  tune: {trials: 5}"
    )
    spec.write_text(text)
    started = time.perf_counter()
    project = Project(root)
    try:
        project.train("churn")
        _write_log(project, rows)
    finally:
        project.close()
    done.write_text(datetime.now().isoformat())
    print(f"setup: {rows:,} log rows written in {time.perf_counter() - started:.0f} s")
    return root


def _write_log(project, rows: int) -> None:
    import adbc_driver_sqlite.dbapi as sqlite_dbapi
    import duckdb
    from sqlalchemy.engine import make_url

    from cycleml.features import get_dataset, load_dataset

    mv, bundle = project.load_model("churn")
    names = bundle.feature_names
    reference = load_dataset(get_dataset(project.store, mv.dataset_version_id), project.artifacts)
    rng = np.random.default_rng(0)
    pool = reference[names].sample(POOL, replace=True, random_state=0).reset_index(drop=True)
    for column in bundle.columns:
        if column.kind == "number":
            values = pool[column.name].astype(float)
            pool[column.name] = values + rng.normal(0, 0.05 * (values.std() or 1.0), POOL)
    shifted = pool.assign(age=pool["age"] + 25)
    pool["__score"] = bundle.outputs(pool[names])[0]
    shifted["__score"] = bundle.outputs(shifted[names])[0]
    pool["__k"] = np.arange(POOL)
    shifted["__k"] = np.arange(POOL)
    con = duckdb.connect()
    con.register("pool", pool)
    con.register("shifted", shifted)
    fields = ", ".join(f'"{n}" := p."{n}"' for n in names)
    step = int(DAYS * 86_400_000_000 // rows)  # microseconds between rows
    database = make_url(project.store.url).database
    adbc = sqlite_dbapi.connect(database)
    try:
        for offset in range(0, rows, BATCH):
            stop = min(offset + BATCH, rows)
            batch = con.sql(
                f"""
                WITH ids AS (
                    SELECT i, TIMESTAMP '{START:%Y-%m-%d}' + to_microseconds(i * {step}) AS ts,
                           CAST(hash(i) % {POOL} AS BIGINT) AS k
                    FROM range({offset}, {stop}) t(i)
                ), chosen AS (
                    SELECT ids.*, p.* FROM ids JOIN pool p ON p.__k = ids.k
                    WHERE ids.ts < TIMESTAMP '{START + timedelta(days=SHIFT_DAY):%Y-%m-%d}'
                    UNION ALL
                    SELECT ids.*, p.* FROM ids JOIN shifted p ON p.__k = ids.k
                    WHERE ids.ts >= TIMESTAMP '{START + timedelta(days=SHIFT_DAY):%Y-%m-%d}'
                )
                SELECT 'r' || lpad(CAST(i AS VARCHAR), 12, '0') AS request_id,
                       'churn' AS problem, {mv.id} AS model_version_id,
                       'u' || CAST(k % 5000 AS VARCHAR) AS entity,
                       CAST(to_json(struct_pack({fields})) AS VARCHAR) AS inputs,
                       __score AS score,
                       strftime(ts, '%Y-%m-%d %H:%M:%S.%f') AS created_at
                FROM chosen p ORDER BY i
                """
            ).to_arrow_table()
            with adbc.cursor() as cur:
                cur.adbc_ingest("prediction_log", batch, mode="append")
            adbc.commit()
    finally:
        adbc.close()
        con.close()


def run_cycleml(root: Path, since: datetime | None = None) -> dict:
    from cycleml import Project

    project = Project(root)
    try:
        project.load_model("churn")  # open the store and load the model before timing
        wall, cpu = time.perf_counter(), time.process_time()
        result = project.monitor("churn", current="log", chunk="day", since=since)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        project.close()
    over = result["drift_over_time"]
    age = over["drifted"][over["features"].index("age")]
    first = next((c for c, d in zip(over["chunks"], age, strict=True) if d), None)
    return {"seconds": wall, "cpu_seconds": cpu, "rows": result["current"]["rows"],
            "chunks": len(over["chunks"]), "age_drift_from": first}  # fmt: skip


def run_anchor(root: Path) -> dict:
    """The earlier read path: SQLAlchemy rows, a dict per row, pandas from the records, then
    the comparison with pandas-groupby day chunks."""
    import sqlalchemy as sa

    from cycleml import Project
    from cycleml.features import LABEL_COLUMN, get_dataset, load_dataset
    from cycleml.monitor import DriftOptions, compare
    from cycleml.store.tables import prediction_log

    project = Project(root)
    try:
        mv, bundle = project.load_model("churn")
        reference = load_dataset(
            get_dataset(project.store, mv.dataset_version_id), project.artifacts
        )
        reference["prediction"] = bundle.outputs(reference[bundle.feature_names])[0]
        options = DriftOptions.from_spec(project.spec.monitoring)
        log = prediction_log.c
        wall = time.perf_counter()
        query = sa.select(log.inputs, log.score, log.created_at).where(
            log.problem == "churn", log.model_version_id == mv.id
        )
        with project.store.connect() as conn:
            found = conn.execute(query.order_by(log.id)).all()
        frame = pd.DataFrame.from_records([r.inputs or {} for r in found])
        frame["prediction"] = [r.score for r in found]
        frame["__logged_at"] = pd.to_datetime([r.created_at for r in found])
        compare(reference, frame, columns=bundle.columns, options=options,
                prediction="prediction", target=LABEL_COLUMN, time_column="__logged_at",
                chunk="day")  # fmt: skip
        wall = time.perf_counter() - wall
    finally:
        project.close()
    return {"seconds": wall, "rows": len(found)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--anchor-rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cycleml-bench-chunked"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    root = build(args.workdir, args.rows)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    ours = run_cycleml(root)
    ok = ours["seconds"] < TARGET_SECONDS
    print(
        f"cycleml: {ours['rows']:,} rows, {ours['chunks']} daily chunks in {ours['seconds']:.1f} s "
        f"(CPU {ours['cpu_seconds']:.1f} s, peak RSS {_peak_rss_mb():.0f} MB); "
        f"age drifts from {ours['age_drift_from']} (shift injected on "
        f"{START + timedelta(days=SHIFT_DAY):%Y-%m-%d}); target < {TARGET_SECONDS:.0f} s: "
        + ("met" if ok else "MISSED")
    )
    if args.anchor_rows:
        small = build(args.workdir, args.anchor_rows)
        same = run_cycleml(small)
        anchor = run_anchor(small)
        print(
            f"anchor (row-by-row read, pandas-groupby chunks) on {anchor['rows']:,} rows: "
            f"{anchor['seconds']:.1f} s; cycleml on the same log: {same['seconds']:.1f} s; "
            f"ratio {anchor['seconds'] / same['seconds']:.1f}x"
        )
    print(json.dumps({"cycleml": ours, "load": os.getloadavg()[0]}, default=str))


if __name__ == "__main__":
    main()
