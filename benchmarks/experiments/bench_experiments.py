"""`Project.analyze_experiment` on 10M units / 50M events (one Parquet file, `rows: event`),
against an anchor that fetches the rows and aggregates them in pandas.

Usage: python benchmarks/experiments/bench_experiments.py [--units N] [--events-per-unit K]
       [--threads T] [--no-anchor]
The data is written once under benchmarks/data/experiments/ (DuckDB generates it)."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from cycleml import Project

ROOT = Path(__file__).resolve().parents[1]
SPEC = """\
spec_version: 1
name: bench_experiments
training: {{threads: {threads}}}
sources:
  events: {{path: {path}, entity: user_id}}
experiments:
  ranker:
    source: events
    unit: user_id
    variant: variant
    control: control
    weights: {{control: 0.5, treatment: 0.5}}
    rows: event
    metrics:
      ctr: {{type: ratio, column: click, denominator: impression}}
      purchased: {{type: proportion, column: purchase}}
      revenue: {{type: mean, column: revenue, covariate: pre_revenue}}
    primary: ctr
"""


def make_data(path: Path, units: int, per_unit: int) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    con = duckdb.connect()
    con.execute("SELECT setseed(0.42)")
    # unit i has events i, i + units, ...; variant and pre-period revenue fixed by the unit
    con.execute(
        f"""
        COPY (
          SELECT user_id,
                 CASE WHEN hash(user_id) % 2 = 0 THEN 'control' ELSE 'treatment' END AS variant,
                 1 AS impression,
                 CAST(random() < CASE WHEN hash(user_id) % 2 = 0 THEN 0.100 ELSE 0.102 END
                      AS INTEGER) AS click,
                 CAST(random() < 0.01 AS INTEGER) AS purchase,
                 round(random() * 4 + (hash(user_id) % 1000) / 250.0, 2) AS revenue,
                 (hash(user_id) % 1000) / 50.0 AS pre_revenue
          FROM (SELECT i % {units} AS user_id FROM range({units * per_unit}) t(i))
        ) TO '{tmp}' (FORMAT parquet, ROW_GROUP_SIZE 1000000)
        """
    )
    con.close()
    tmp.replace(path)


def anchor(path: Path) -> float:
    """Fetch the rows, sum per unit and per variant in pandas (the way without SQL pushdown)."""
    import pandas as pd

    start = time.perf_counter()
    frame = pd.read_parquet(path)
    per_unit = frame.groupby("user_id").agg(
        variant=("variant", "first"),
        click=("click", "sum"),
        impression=("impression", "sum"),
        purchase=("purchase", "max"),
        revenue=("revenue", "sum"),
        pre_revenue=("pre_revenue", "max"),
    )
    per_unit["click_impression"] = per_unit.click * per_unit.impression
    per_unit["revenue_pre"] = per_unit.revenue * per_unit.pre_revenue
    per_unit.groupby("variant").agg(["count", "sum", "var"])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=10_000_000)
    parser.add_argument("--events-per-unit", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-anchor", action="store_true")
    args = parser.parse_args()
    events = args.units * args.events_per_unit
    path = ROOT / "data" / "experiments" / f"events_{args.units}_{events}.parquet"
    start = time.perf_counter()
    make_data(path, args.units, args.events_per_unit)
    print(
        f"data: {path} ({events:,} events, {args.units:,} units) in "
        f"{time.perf_counter() - start:.1f} s"
    )
    folder = Path(tempfile.mkdtemp(prefix="bench_experiments_"))
    try:
        (folder / "cycleml.yaml").write_text(SPEC.format(threads=args.threads, path=path))
        times, cpu = [], []
        for _ in range(args.repeat):
            project = Project(folder)
            try:
                start, start_cpu = time.perf_counter(), time.process_time()
                result = project.analyze_experiment("ranker")
                times.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)  # all threads of this process
            finally:
                project.close()
        units = sum(v["units"] for v in result["variants"])
        assert units == args.units, units
        ours = min(times)
        print(
            f"cycleml analyze: best {ours:.2f} s of {[round(t, 2) for t in times]} "
            f"({args.threads} threads; CPU {[round(c, 1) for c in cpu]} s; load average "
            f"{os.getloadavg()[0]:.1f}); decision: {result['decision']}"
        )
        if not args.no_anchor:
            start_cpu = time.process_time()
            theirs = anchor(path)
            print(
                f"anchor (pandas rows + groupby): {theirs:.2f} s (CPU "
                f"{time.process_time() - start_cpu:.1f} s); anchor / cycleml {theirs / ours:.1f}x"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
