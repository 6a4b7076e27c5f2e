"""Batch predictions: predict alone vs predict + write into SQLite, DuckDB, Parquet, PostgreSQL.

1M rows of 40 numeric features, scored by the same LightGBM model (cycleml's LightGBM
candidate pipeline, 300 trees, one thread). "predict alone" (the baseline) is the in-process call
``ModelBundle.outputs`` over the frame in chunks of 100k rows (one call on all 1M rows is slower
on this model and is printed for reference); each target runs cycleml's batch path: score in
the same chunks, build the Arrow rows, replace the partition in the target (one transaction, or
temp file + rename for Parquet). The ratio is target throughput / predict-alone throughput
(issue 6 targets: >= 0.8 for SQLite, DuckDB and Parquet, >= 0.5 for PostgreSQL), printed for
wall time and for this process's CPU time (steadier on a shared machine; it leaves out the
PostgreSQL server's share of COPY, so read PostgreSQL's wall ratio). Each target is
written three times (the first write, then reruns that replace the partition), in rounds
interleaved with predict alone; the best of each counts. Not in the ratio: the features snapshot the
store keeps for monitoring (timed on its own).

PostgreSQL: $CYCLEML_TEST_PG_URL when set, else a throwaway server from
scripts/test-services.sh (stopped at the end).

Run: bash benchmarks/run.sh batch   (or .venv/bin/python benchmarks/batch/bench_batch.py [--rows N])
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cycleml.batch._batch import DEFAULT_CHUNK_ROWS, prediction_rows, score_frame  # noqa: E402
from cycleml.batch._targets import ROW_SCHEMA, parse_target  # noqa: E402
from cycleml.features import FeatureColumn  # noqa: E402
from cycleml.registry import ModelBundle  # noqa: E402
from cycleml.train._candidates import make_pipeline_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FEATURES = 40
AS_OF = datetime(2026, 6, 1)
REPEATS = 3


def make_model(seed: int = 0) -> tuple[ModelBundle, list[FeatureColumn]]:
    rng = np.random.default_rng(seed)
    columns = [FeatureColumn(f"f{i:02d}", "bench", "number") for i in range(FEATURES)]
    x = pd.DataFrame(rng.normal(size=(50_000, FEATURES)), columns=[c.name for c in columns])
    y = (x["f00"] + x["f01"] * x["f02"] - 0.5 * x["f03"] + rng.normal(size=len(x)) > 0).astype(int)
    pipe = make_pipeline_for("lightgbm", "binary", columns, seed=seed, threads=1)
    pipe.fit(x, y)
    return ModelBundle("bench", "binary", "lightgbm", pipe, columns, 0.5, "user_id"), columns


def make_frame(rows: int, columns: list[FeatureColumn], seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        rng.normal(size=(rows, FEATURES)).astype("float64"), columns=[c.name for c in columns]
    )
    frame.insert(0, "user_id", [f"u{i:08d}" for i in range(rows)])
    return frame


def _timed(fn, *args) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process: every thread, not the PostgreSQL server)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def predict_in_chunks(bundle: ModelBundle, frame: pd.DataFrame) -> None:
    for start in range(0, len(frame), DEFAULT_CHUNK_ROWS):
        bundle.outputs(frame.iloc[start : start + DEFAULT_CHUNK_ROWS])


def batch_write(bundle: ModelBundle, frame: pd.DataFrame, to: str, workdir: Path) -> None:
    """cycleml's batch path into ``to``."""
    scored = score_frame(frame, bundle, DEFAULT_CHUNK_ROWS)
    rows = prediction_rows("bench", "user_id", frame, scored, AS_OF, 1)
    target = parse_target(to, workdir)
    target.check()

    def chunks():
        for start in range(0, rows.num_rows, DEFAULT_CHUNK_ROWS):
            yield rows.slice(start, DEFAULT_CHUNK_ROWS)

    target.write("bench", AS_OF, chunks())


def start_postgres() -> tuple[str | None, str | None]:
    url = os.environ.get("CYCLEML_TEST_PG_URL") or os.environ.get("CYCLEML_BENCH_PG_URL")
    if url:
        return url, None
    script = ROOT / "scripts" / "test-services.sh"
    try:
        out = subprocess.run(
            ["bash", str(script), "start"], check=True, capture_output=True, text=True, timeout=120
        ).stdout
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"bench_batch: no PostgreSQL ({exc}); skipping it", file=sys.stderr)
        return None, None
    env = dict(
        line.removeprefix("export ").split("=", 1)
        for line in out.splitlines()
        if line.startswith("export ")
    )
    clean = {k: v.strip("'\"") for k, v in env.items()}
    return clean.get("CYCLEML_TEST_PG_URL"), clean.get("CYCLEML_TEST_PG_DIR")


def drop_pg_table(url: str, table: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    n = args.rows
    bundle, columns = make_model()
    frame = make_frame(n, columns)
    print(
        f"batch: {n:,} rows x {FEATURES} features, LightGBM (300 trees, 1 thread), "
        f"chunks of {DEFAULT_CHUNK_ROWS:,}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    bundle.outputs(frame.iloc[:1000])  # warm-up
    workdir = Path(tempfile.mkdtemp(prefix="cycleml-bench-batch-"))
    pg_url, pg_dir = start_postgres()
    table = f"bench_preds_{os.getpid()}"
    targets = {
        "SQLite (ADBC ingest)": f"sqlite:///{workdir}/p.db#preds",
        "DuckDB (from Arrow)": f"duckdb:///{workdir}/p.duckdb#preds",
        "Parquet (temp + rename)": str(workdir / "p.parquet"),
    }
    if pg_url:
        targets["PostgreSQL (ADBC COPY)"] = f"{pg_url}#{table}"
    try:
        # Rounds interleave every measurement, so that a change of machine load hits all alike.
        alone: list[tuple[float, float]] = []
        whole: list[tuple[float, float]] = []
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
        for _ in range(REPEATS):
            alone.append(_timed(predict_in_chunks, bundle, frame))
            if not whole:  # once: for reference only
                whole.append(_timed(bundle.outputs, frame))
            for name, to in targets.items():
                times[name].append(_timed(batch_write, bundle, frame, to, workdir))
        base_wall = min(w for w, _ in alone)
        base_cpu = min(c for _, c in alone)
        print(f"  {'':32s} {'wall rows/s':>12s} {'ratio':>6s} {'CPU rows/s':>12s} {'ratio':>6s}")
        line = "  {:32s} {:>12,.0f} {:>6s} {:>12,.0f} {:>6s}"
        print(line.format("predict alone, 100k-row chunks", n / base_wall, "1", n / base_cpu, "1"))
        w, c = whole[0]
        print(line.format("predict alone, one call, all rows", n / w, "", n / c, ""))
        for name, runs in times.items():
            w, c = min(r[0] for r in runs), min(r[1] for r in runs)
            print(line.format(name, n / w, f"{base_wall / w:.2f}", n / c, f"{base_cpu / c:.2f}"))
        snapshot = workdir / "features.parquet"
        started = time.perf_counter()
        frame.to_parquet(snapshot, index=False)
        print(f"  (features snapshot for monitoring: {time.perf_counter() - started:.2f} s)")
        print(f"  rows carry {len(ROW_SCHEMA)} columns: {', '.join(ROW_SCHEMA.names)}")
    finally:
        if pg_url:
            drop_pg_table(pg_url, table)
        if pg_dir:
            subprocess.run(
                ["bash", str(ROOT / "scripts" / "test-services.sh"), "stop", pg_dir], check=False
            )
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
