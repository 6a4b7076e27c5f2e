"""`experiment analyze` of a served experiment: exposures in the store (SQLite), events in a
Parquet file, against an anchor that reads both into pandas and does the same join and
group-bys (no statistics).

Timed: the first analysis (cold: the exposures cache in .cycleml/cache/exposures/ is built),
the second (warm: 1% new exposures were added to the store since, the cache appends them), and
the same analysis reading the store directly (``cache=False``).

Usage: python benchmarks/experiments/bench_served_analysis.py [--units N] [--events-per-unit K]
       [--no-anchor] [--no-direct]
The data is written once under benchmarks/data/experiments_served/ (DuckDB and sqlite3)."""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import duckdb
import yaml

from cycleml import Project
from cycleml._init import init_project

ROOT = Path(__file__).resolve().parents[1]


def make_data(folder: Path, units: int, per_unit: int) -> tuple[Path, Path]:
    events, exposures = folder / "events.parquet", folder / "exposures.parquet"
    if events.exists() and exposures.exists():
        return events, exposures
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SELECT setseed(0.42)")
    con.execute(
        f"""
        COPY (
          SELECT 'u' || i AS unit,
                 CASE WHEN hash('u' || i) % 2 = 0 THEN 'control' ELSE 'treatment' END AS variant,
                 TIMESTAMP '2026-06-01' + to_seconds(CAST(random() * 86400 * 3 AS BIGINT))
                   AS first_exposed_at
          FROM range({units}) t(i)
        ) TO '{exposures}' (FORMAT parquet)
        """
    )
    # events from two days before to five days after the first exposure
    con.execute(
        f"""
        COPY (
          SELECT x.unit AS user_id,
                 x.first_exposed_at + to_seconds(CAST((random() * 7 - 2) * 86400 AS BIGINT))
                   AS ts,
                 CASE WHEN r < 0.70 THEN 'impression' WHEN r < 0.78 THEN 'click'
                      WHEN r < 0.80 THEN 'purchase' ELSE 'page_view' END AS event_type,
                 round(random() * 50, 2) AS value
          FROM (SELECT *, random() AS r FROM read_parquet('{exposures}') x,
                range({per_unit}) k(j)) x
        ) TO '{events}' (FORMAT parquet)
        """
    )
    return events, exposures


def make_project(root: Path, events: Path, exposures: Path) -> Project:
    init_project(root, demo=True, n_users=50, seed=1)
    spec = yaml.safe_load((root / "cycleml.yaml").read_text())
    spec["training"]["threads"] = 2
    spec["sources"]["exp_events"] = {
        "path": str(events),
        "entity": "user_id",
        "time": "ts",
        "collect": True,
    }
    spec["experiments"] = {
        "ranker": {
            "problem": "churn",
            "variants": {
                "control": {"weight": 0.5, "model": "baseline"},
                "treatment": {"weight": 0.5, "model": "production"},
            },
            "control": "control",
            "events": "exp_events",
            "metrics": {
                "ctr": {"type": "ratio", "event": "click", "denominator": "impression"},
                "purchased": {"type": "conversion", "event": "purchase", "days": 7},
                "revenue": {"type": "mean", "event": "purchase", "value": "value"},
            },
            "primary": "ctr",
        }
    }
    (root / "cycleml.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    project = Project(root)
    project.store.open()
    database = root / ".cycleml" / "store.db"
    rows = duckdb.sql(
        f"SELECT 'ranker', unit, variant, strftime(first_exposed_at, '%Y-%m-%d %H:%M:%S.%f') "
        f"FROM read_parquet('{exposures}')"
    ).fetchall()
    with sqlite3.connect(database) as conn:  # bulk load (the server writes small batches)
        conn.executemany(
            "INSERT INTO exposures (experiment, unit, variant, first_exposed_at) "
            "VALUES (?, ?, ?, ?)",
            rows,
        )
    return project


def add_exposures(project: Project, n: int) -> None:
    """``n`` new units exposed after the first analysis (new rowids, as the server would)."""
    database = project.path / ".cycleml" / "store.db"
    rows = [
        ("ranker", f"new{i}", "control" if i % 2 else "treatment", "2026-06-04 00:00:00.000000")
        for i in range(n)
    ]
    with sqlite3.connect(database) as conn:
        conn.executemany(
            "INSERT INTO exposures (experiment, unit, variant, first_exposed_at) "
            "VALUES (?, ?, ?, ?)",
            rows,
        )


def timed(project: Project, label: str, events: int, *, cache: bool = True) -> float:
    started, cpu = time.perf_counter(), time.process_time()
    result = project.analyze_experiment("ranker", cache=cache)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    units = sum(v["units"] for v in result["variants"])
    print(
        f"cycleml {label}: {units:,} exposed units, {events:,} events: {wall:.2f} s wall, "
        f"{cpu:.2f} s CPU (load average {os.getloadavg()[0]:.1f})",
        flush=True,
    )
    return wall


def anchor(project: Project, events: Path) -> float:
    """Read exposures and events into pandas; join and group per unit, then per variant."""
    import pandas as pd

    started = time.perf_counter()
    database = project.path / ".cycleml" / "store.db"
    with sqlite3.connect(database) as conn:
        x = pd.read_sql("SELECT unit, variant, first_exposed_at FROM exposures", conn)
    x["first_exposed_at"] = pd.to_datetime(x["first_exposed_at"])
    ev = pd.read_parquet(events)
    ev = ev[ev.event_type.isin(["click", "impression", "purchase"])]
    joined = ev.merge(x, left_on="user_id", right_on="unit")
    joined = joined[joined.ts >= joined.first_exposed_at]
    joined["click"] = joined.event_type == "click"
    joined["impression"] = joined.event_type == "impression"
    joined["purchase"] = joined.event_type == "purchase"
    joined["revenue"] = joined.value.where(joined.purchase, 0.0)
    per = joined.groupby("unit")[["click", "impression", "purchase", "revenue"]].sum()
    per = x.set_index("unit").join(per).fillna(0.0)
    per.groupby("variant")[["click", "impression", "purchase", "revenue"]].agg(
        ["count", "sum", "var"]
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=1_000_000)
    parser.add_argument("--events-per-unit", type=int, default=5)
    parser.add_argument("--no-anchor", action="store_true")
    parser.add_argument("--no-direct", action="store_true", help="skip the cache=False run")
    args = parser.parse_args()
    folder = ROOT / "data" / "experiments_served" / f"{args.units}x{args.events_per_unit}"
    events, exposures = make_data(folder, args.units, args.events_per_unit)
    tmp = Path(tempfile.mkdtemp())
    try:
        project = make_project(tmp / "p", events, exposures)
        n_events = args.units * args.events_per_unit
        print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
        timed(project, "cold (cache built)", n_events)
        add_exposures(project, max(1, args.units // 100))
        wall = timed(project, "warm (+1% new exposures)", n_events)
        if not args.no_direct:
            timed(project, "store read directly (cache=False)", n_events, cache=False)
        if not args.no_anchor:
            seconds = anchor(project, events)
            print(
                f"pandas anchor: {seconds:.2f} s wall; anchor / cycleml warm {seconds / wall:.2f}x"
            )
        project.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
