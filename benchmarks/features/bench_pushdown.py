"""PostgreSQL pushdown against reading the tables out into DuckDB, on the demo product.

Loads the demo's users and events (N users, default 800) into a fresh database on the server at
$CYCLEML_BENCH_PG_URL (e.g. postgresql://postgres@127.0.0.1:55432/postgres; skipped without it),
points a project at those tables, and times, best of 3:
  - compute(every user, as_of): pushdown vs the same with pushdown off (every row read out through
    ADBC into DuckDB, as before pushdown existed);
  - training_frame(): the same two ways.
Checks both give the same frame (values within 1e-9).

Run: CYCLEML_BENCH_PG_URL=... .venv/bin/python benchmarks/features/bench_pushdown.py [--users N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import uuid
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import psycopg


def _load(url: str, data: Path) -> None:
    con = duckdb.connect()
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute("SET TimeZone = 'UTC'")
        pg.execute(
            "CREATE TABLE users (user_id text PRIMARY KEY, plan text, country text, age bigint, "
            "signup_at timestamp)"
        )
        pg.execute(
            "CREATE TABLE events (event_id text, user_id text, ts timestamptz, event_type text, "
            "source text, value numeric)"
        )
        for table in ("users", "events"):
            csv = (
                con.sql(f"SELECT * FROM '{data / table}.parquet'")
                .df()
                .to_csv(index=False, header=False)
            )
            with pg.cursor().copy(f"COPY {table} FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write(csv)
        pg.execute("ANALYZE")


def _best(fn, repeat: int = 3):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=800)
    args = parser.parse_args()
    server = os.environ.get("CYCLEML_BENCH_PG_URL")
    if not server:
        print("bench_pushdown: skipped, set CYCLEML_BENCH_PG_URL to a PostgreSQL server")
        return
    from cycleml import Project
    from cycleml._init import init_project
    from cycleml.features import _engine

    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(server, dbname=name)
    base = server.rsplit("/", 1)[0]
    sa_url = f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    root = Path(tempfile.mkdtemp(prefix="bench-pushdown-"))
    try:
        init_project(root, demo=True, n_users=args.users, seed=7, end=date(2026, 6, 1))
        _load(url, root / "data")
        spec = (root / "cycleml.yaml").read_text()
        for table in ("users", "events"):
            spec = spec.replace(
                f"{table}: {{path: data/{table}.parquet",
                f"{table}: {{url: '{sa_url}', table: {table}",
            )
        (root / "cycleml.yaml").write_text(spec)
        project = Project(root)
        entities = [f"u{i:06d}" for i in range(args.users)]
        as_of = datetime(2026, 3, 1)

        def compute():
            with project.features("churn") as fs:
                return fs.compute(entities, as_of)

        def training():
            with project.features("churn") as fs:
                return fs.training_frame().frame

        results = {}
        for label, off in (("pushdown", False), ("read out", True)):
            original = _engine.run_features
            if off:
                _engine.run_features = lambda fs, spine: None
            try:
                results[label] = (_best(compute), _best(training))
            finally:
                _engine.run_features = original
        print(f"demo: {args.users} users; nproc={os.cpu_count()}; DuckDB threads 2")
        for i, what in enumerate(("compute(all users, as_of)", "training_frame()")):
            (t_push, a), (t_out, b) = results["pushdown"][i], results["read out"][i]
            pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, atol=1e-9)
            print(
                f"{what:28s} pushdown {t_push:6.2f} s   read out {t_out:6.2f} s   "
                f"read out / pushdown = {t_out / t_push:.2f}  ({len(a)} rows, equal)"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
