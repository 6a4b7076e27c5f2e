"""engine: dask against the single-process build on one large event log.

Generates N events (default 10M; 50M is the issue's target: pass --events 50000000) for N/100
users over 180 days, builds the churn training frame (features over 7/30/90 days, counts and sums
per event type, recency; weekly cutoffs) once with engine duckdb in this process and once with
engine dask on a 2-worker LocalCluster (1 thread each, started and closed inside the timing),
checks the two frames are the same rows with values within 1e-9, and prints both times.

Run: .venv/bin/python benchmarks/features/bench_dask.py [--events N] [--keep DIR]
(needs cycleml's `dask` extra: pip install 'cycleml[dask]').
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd

SPEC = """spec_version: 1
name: bench_dask
sources:
  users: {path: users.parquet, entity: user_id, time: signup_at}
  events: {path: events.parquet, entity: user_id, time: ts}
problems:
  churn:
    entity: user_id
    task: binary
    label: {kind: inactivity, source: events, days: 30}
    cutoffs: {every: 7d, start: 2025-05-01}
    features: [profile, activity]
features:
  profile: {source: users, columns: [plan]}
  activity:
    source: events
    windows: [7d, 30d, 90d]
    aggregate: {count: "*", sum: value}
    by: {event_type: [purchase, support_ticket]}
    recency: true
engine: ENGINE
dask: {n_workers: 2, threads_per_worker: 1}
"""


def generate(root: Path, events: int) -> None:
    users = max(100, events // 100)
    con = duckdb.connect()
    con.execute(
        f"""COPY (SELECT 'u' || lpad(CAST(i AS VARCHAR), 8, '0') AS user_id,
                 ['free', 'pro', 'team'][1 + i % 3] AS plan,
                 TIMESTAMP '2024-06-01' + to_seconds(CAST(hash(i, 1) % (200 * 86400) AS BIGINT))
                   AS signup_at
            FROM range({users}) t(i)) TO '{root / "users.parquet"}' (FORMAT parquet)"""
    )
    con.execute(
        f"""COPY (SELECT 'u' || lpad(CAST(hash(i, 2) % {users} AS VARCHAR), 8, '0') AS user_id,
                 TIMESTAMP '2025-01-01' + to_seconds(CAST(hash(i, 3) % (180 * 86400) AS BIGINT))
                   AS ts,
                 ['page_view', 'search', 'purchase', 'support_ticket']
                   [CAST(1 + hash(i, 4) % 4 AS BIGINT)] AS event_type,
                 CAST(hash(i, 5) % 10000 AS DOUBLE) / 100 AS value
            FROM range({events}) t(i)) TO '{root / "events.parquet"}'
            (FORMAT parquet, ROW_GROUP_SIZE 1000000)"""
    )
    con.close()


def build(root: Path, engine: str) -> tuple[pd.DataFrame, float]:
    from cycleml import Project

    (root / "cycleml.yaml").write_text(SPEC.replace("ENGINE", engine), encoding="utf-8")
    project = Project(root)
    started = time.perf_counter()
    with project.features("churn") as fs:
        frame = fs.training_frame().frame
    return frame, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--keep", type=Path, default=None, help="keep the data in this folder")
    args = parser.parse_args()
    try:
        import distributed  # noqa: F401
    except ImportError:
        print("bench_dask: skipped, Dask distributed is missing: pip install 'cycleml[dask]'")
        return
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-dask-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        if not (root / "events.parquet").exists():
            t = time.perf_counter()
            generate(root, args.events)
            print(f"generated {args.events:,} events in {time.perf_counter() - t:.1f} s")
        print(f"nproc={os.cpu_count()}; DuckDB threads: 2 in one process, 1 per dask worker")
        single, t_single = build(root, "duckdb")
        print(f"engine duckdb (one process):      {t_single:8.1f} s  {len(single):,} rows")
        sharded, t_dask = build(root, "dask")
        print(f"engine dask (2 workers x 1 thread): {t_dask:8.1f} s  {len(sharded):,} rows")
        pd.testing.assert_frame_equal(sharded, single, check_exact=False, rtol=1e-9, atol=1e-9)
        print(f"results match; dask / single = {t_dask / t_single:.2f}")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
