"""The exposures cache (``.cycleml/cache/exposures/``): the analysis gives the same results, bit
for bit, as reading the store directly, after new exposures arrive, after rows are deleted and
after the store is recreated; parts are appended, compacted in order, and concurrent analyses
leave a consistent cache."""

from __future__ import annotations

import io
import json
import math
import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from cycleml import Project
from cycleml.data import SourceSet
from cycleml.experiments import _exposure_cache
from cycleml.experiments._exposure_cache import (
    ExposureFiles,
    cache_folder,
    exposures_for_analysis,
)
from cycleml.experiments._exposures import read_exposures, record_exposures
from cycleml.experiments._served import served_stats
from cycleml.store import Store

T0 = datetime(2026, 6, 1)
EXPERIMENT = {
    "problem": "churn",
    "variants": {
        "control": {"weight": 0.5, "model": "baseline"},
        "treatment": {"weight": 0.5, "model": "production"},
    },
    "control": "control",
    "start": "2026-01-01",
    "events": "exp_events",
    "metrics": {
        "converted": {"type": "conversion", "event": "purchase", "days": 7},
        "revenue": {"type": "mean", "event": "purchase", "value": "value"},
        "ctr": {"type": "ratio", "event": "click", "denominator": "impression"},
    },
    "primary": "converted",
}


def _units(start: int, n: int, seed: int) -> pd.DataFrame:
    """Exposures of units ``u{start}``..: a random variant and first exposure time."""
    rng = np.random.default_rng(seed)
    minutes = rng.integers(0, 3 * 24 * 60 * 60, n)
    return pd.DataFrame(
        {
            "unit": [f"u{i:06d}" for i in range(start, start + n)],
            "variant": rng.choice(["control", "treatment"], n),
            "first_exposed_at": [T0 + timedelta(seconds=int(s), microseconds=7) for s in minutes],
        }
    )


def _events(units: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Events around each unit's exposure (some before it: they must not count), with
    non-integer values so that sums and variances depend on every bit."""
    rng = np.random.default_rng(seed)
    rows = []
    for unit, t0 in zip(units.unit, units.first_exposed_at, strict=True):
        for _ in range(int(rng.poisson(3))):
            kind = rng.choice(["impression", "impression", "click", "purchase"])
            at = t0 + timedelta(hours=float(rng.uniform(-48, 200)))
            rows.append((unit, at, kind, float(rng.gamma(2, 13.7))))
    return pd.DataFrame(rows, columns=["user_id", "ts", "event_type", "value"])


def _setup(root: Path, events: pd.DataFrame) -> None:
    path = root / "cycleml.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["sources"]["exp_events"] = {
        "path": "data/exp_events.parquet",
        "entity": "user_id",
        "time": "ts",
        "collect": True,
    }
    spec["experiments"] = {"ranker": EXPERIMENT}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    buffer = io.BytesIO()
    events.to_parquet(buffer, index=False)
    (root / "data" / "exp_events.parquet").write_bytes(buffer.getvalue())


def _store(project: Project, exposed: pd.DataFrame, experiment: str = "ranker") -> None:
    record_exposures(
        project.store,
        [
            {
                "experiment": experiment,
                "unit": r.unit,
                "variant": r.variant,
                "model_version_id": None,
                "request_id": None,
                "first_exposed_at": r.first_exposed_at.to_pydatetime(),
            }
            for r in exposed.itertuples()
        ],
    )


def _manifest(root: Path) -> dict:
    return json.loads((cache_folder(root / ".cycleml", "ranker") / "manifest.json").read_text())


def _cached_rows(root: Path) -> list[tuple]:
    """The cached rows in part order, as (unit, variant, first_exposed_at)."""
    folder = cache_folder(root / ".cycleml", "ranker")
    rows: list[tuple] = []
    for part in _manifest(root)["parts"]:
        table = pq.read_table(folder / part)
        rows += list(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True))
    return rows


def _store_rows(project: Project) -> list[tuple]:
    """The store's rows of "ranker" in rowid order, first_exposed_at cast as the analysis does."""
    stored = read_exposures(project.store, "ranker")  # noqa: F841 - read by DuckDB below
    return duckdb.sql(
        "SELECT unit, variant, CAST(first_exposed_at AS TIMESTAMP) FROM stored"
    ).fetchall()


def _both(project: Project) -> tuple[dict, dict]:
    """The per-variant sufficient statistics (everything the analysis reads from DuckDB) through
    the cache and straight from the store, each on one DuckDB thread: with several threads
    DuckDB's float sums depend on how work was split, from one run to the next, with or without
    the cache."""
    exp = project.spec.experiments["ranker"]

    def stats(cache: bool) -> dict:
        with (
            exposures_for_analysis(project.store, "ranker", project.state_dir, cache=cache) as x,
            SourceSet(project.spec, project.path, threads=1) as sources,
        ):
            return served_stats(sources, exp, "ranker", x)

    return stats(True), stats(False)


def _close(a, b, path: str = "") -> None:
    """Equal structure, equal text and integers, floats equal to 1e-12."""
    assert type(a) is type(b), path
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _close(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15) or a == b, (path, a, b)
    else:
        assert a == b, (path, a, b)


def _same_analysis(project: Project) -> dict:
    """``analyze_experiment`` through the cache and without it (default threads): the same
    counts, and every figure equal to 1e-12."""
    cached = project.analyze_experiment("ranker")
    direct = project.analyze_experiment("ranker", cache=False)
    _close(cached, direct)
    for a, b in zip(cached["variants"], direct["variants"], strict=True):
        assert (a["units"], a["exposures"], a["units_with_outcome"]) == (
            b["units"],
            b["exposures"],
            b["units_with_outcome"],
        )
    return cached


@pytest.fixture
def exp_project(demo_project: Path):
    first, later = _units(0, 1500, seed=1), _units(1500, 300, seed=2)
    _setup(demo_project, _events(pd.concat([first, later], ignore_index=True), seed=3))
    project = Project(demo_project)
    project.store.open()
    _store(project, first)
    yield demo_project, project, later
    project.close()


def test_cache_gives_the_store_results_bit_for_bit_as_exposures_arrive(exp_project) -> None:
    root, project, later = exp_project
    cached, direct = _both(project)
    assert cached == direct  # exact equality of every float
    manifest = _manifest(root)
    assert manifest["rows"] == 1500 and len(manifest["parts"]) == 1
    assert _cached_rows(root) == _store_rows(project)

    _store(project, later.iloc[:200])  # new exposures between two analyses
    cached, direct = _both(project)
    assert cached == direct
    assert sum(v["units"] for v in cached.values()) == 1700
    manifest = _manifest(root)
    assert manifest["rows"] == 1700 and len(manifest["parts"]) == 2  # appended, not rebuilt
    assert _cached_rows(root) == _store_rows(project)

    # A unit exposed again keeps its first row: nothing new to cache.
    _store(project, later.iloc[:5].assign(variant="control", first_exposed_at=T0))
    cached, direct = _both(project)
    assert cached == direct and len(_manifest(root)["parts"]) == 2
    result = _same_analysis(project)
    assert sum(v["units"] for v in result["variants"]) == 1700


def test_a_recreated_store_rebuilds_the_cache(exp_project) -> None:
    root, project, later = exp_project
    project.analyze_experiment("ranker")
    before = _manifest(root)
    project.store.dispose()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{root}/.cycleml/store.db{suffix}").unlink(missing_ok=True)
    fresh = Project(root)
    try:
        fresh.store.open()
        # The same number of exposures as before, but other units and times: the count alone
        # would not tell the stores apart.
        _store(fresh, pd.concat([_units(0, 1200, seed=9), later], ignore_index=True))
        cached, direct = _both(fresh)
        assert cached == direct
        assert sum(v["units"] for v in cached.values()) == 1500
        _same_analysis(fresh)
        after = _manifest(root)
        assert after["rows"] == 1500 and after["parts"] != before["parts"]
        assert _cached_rows(root) == _store_rows(fresh)
    finally:
        fresh.close()


def test_deleted_rows_rebuild_the_cache(exp_project) -> None:
    root, project, later = exp_project
    project.analyze_experiment("ranker")
    database = root / ".cycleml" / "store.db"
    with sqlite3.connect(database) as conn:  # outside cycleml: delete the newest row...
        conn.execute("DELETE FROM exposures WHERE rowid = (SELECT max(rowid) FROM exposures)")
    _store(project, later.iloc[:1])  # ...and insert one: same count, the rowid is reused
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM exposures").fetchone()[0] == 1500
    cached, direct = _both(project)
    assert cached == direct
    assert _cached_rows(root) == _store_rows(project)

    with sqlite3.connect(database) as conn:  # a row in the middle goes, a new one comes
        conn.execute("DELETE FROM exposures WHERE unit = 'u000100'")
    _store(project, later.iloc[1:2])
    cached, direct = _both(project)
    assert cached == direct
    assert _cached_rows(root) == _store_rows(project)
    assert _manifest(root)["rows"] == 1500


def test_a_damaged_cache_is_rebuilt(exp_project) -> None:
    root, project, _ = exp_project
    project.analyze_experiment("ranker")
    folder = cache_folder(root / ".cycleml", "ranker")
    (folder / "manifest.json").write_text("{not json")
    (folder / ".part-000099.parquet.1.tmp").write_bytes(b"left by a crash")
    cached, direct = _both(project)
    assert cached == direct
    assert sorted(p.name for p in folder.iterdir()) == [
        ".lock",
        "manifest.json",
        "part-000002.parquet",
    ]
    assert _cached_rows(root) == _store_rows(project)


def test_many_parts_are_compacted_in_order(exp_project) -> None:
    root, project, later = exp_project
    state = root / ".cycleml"
    for i in range(_exposure_cache.MAX_PARTS + 3):
        _store(project, later.iloc[i : i + 1])
        with exposures_for_analysis(project.store, "ranker", state) as files:
            assert isinstance(files, ExposureFiles)
            assert len(files.paths) <= _exposure_cache.MAX_PARTS
            assert files.num_rows == 1501 + i
            assert all(Path(p).is_file() for p in files.paths)
    manifest = _manifest(root)
    assert len(manifest["parts"]) < _exposure_cache.MAX_PARTS
    assert _cached_rows(root) == _store_rows(project)  # the store's rowid order, kept
    folder = cache_folder(state, "ranker")
    assert {p.name for p in folder.glob("part-*")} == set(manifest["parts"])  # old parts gone


def test_other_experiments_and_the_store_direct_path(exp_project) -> None:
    root, project, later = exp_project
    _store(project, later, experiment="other")  # rows of another experiment in between
    _store(project, _units(5000, 10, seed=4))
    with exposures_for_analysis(project.store, "ranker", root / ".cycleml") as files:
        assert isinstance(files, ExposureFiles) and files.num_rows == 1510
    with exposures_for_analysis(project.store, "ranker", root / ".cycleml", cache=False) as t:
        assert not isinstance(t, ExposureFiles) and t.num_rows == 1510
    assert _cached_rows(root) == _store_rows(project)


_WORKER = """
import sys
from cycleml import Project
from cycleml.data import SourceSet
from cycleml.experiments._exposure_cache import exposures_for_analysis
import duckdb
project = Project(sys.argv[1])
for _ in range(int(sys.argv[2])):
    with exposures_for_analysis(project.store, "ranker", project.state_dir) as files:
        n = duckdb.read_parquet(list(files.paths)).count("*").fetchall()[0][0]
        assert n == files.num_rows, (n, files.num_rows)
project.close()
"""


def test_concurrent_analyses_keep_the_cache_consistent(exp_project, tmp_path: Path) -> None:
    root, project, later = exp_project
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen([sys.executable, str(script), str(root), "12"], env=env) for _ in range(3)
    ]
    try:
        for i in range(0, 240, 20):  # exposures keep arriving while they read
            _store(project, later.iloc[i : i + 20])
        codes = [w.wait(timeout=240) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    assert codes == [0, 0, 0]
    with exposures_for_analysis(project.store, "ranker", root / ".cycleml") as files:
        assert files.num_rows == 1740
    assert _cached_rows(root) == _store_rows(project)


def test_a_postgresql_store_is_read_directly(exp_project, pg_database: str) -> None:
    """No cache on PostgreSQL (no key in commit order): the store is read each time, and the
    statistics equal those of the SQLite store holding the same rows, bit for bit."""
    root, project, later = exp_project
    exp = project.spec.experiments["ranker"]
    sqlite_rows = read_exposures(project.store, "ranker")
    pg = Store(pg_database).open()
    try:
        record_exposures(
            pg,
            [
                {"experiment": "ranker", **row, "first_exposed_at": datetime.fromisoformat(t)}
                for row, t in zip(
                    sqlite_rows.select(["unit", "variant"]).to_pylist(),
                    sqlite_rows.column("first_exposed_at").to_pylist(),
                    strict=True,
                )
            ],
        )
        state = root / ".cycleml"
        with exposures_for_analysis(pg, "ranker", state) as exposed:
            assert not isinstance(exposed, ExposureFiles) and exposed.num_rows == 1500
            with SourceSet(project.spec, project.path, threads=1) as sources:
                from_pg = served_stats(sources, exp, "ranker", exposed)
        assert not cache_folder(state, "ranker").exists()
    finally:
        pg.dispose()
    assert from_pg == _both(project)[0]


def test_an_unusable_cache_folder_falls_back_to_the_store(exp_project) -> None:
    root, project, _ = exp_project
    (root / ".cycleml" / "cache").mkdir(parents=True, exist_ok=True)
    (root / ".cycleml" / "cache" / "exposures").write_text("a file where the folder goes")
    with exposures_for_analysis(project.store, "ranker", root / ".cycleml") as exposed:
        assert not isinstance(exposed, ExposureFiles) and exposed.num_rows == 1500
    cached, direct = _both(project)
    assert cached == direct


def test_the_cli_no_cache_flag_reads_the_store(exp_project) -> None:
    from typer.testing import CliRunner

    from cycleml.cli import app

    root, project, _ = exp_project
    project.close()
    folder = cache_folder(root / ".cycleml", "ranker")
    said = CliRunner().invoke(
        app, ["experiment", "analyze", "ranker", "-p", str(root), "--json", "--no-cache"]
    )
    assert said.exit_code == 0, said.stderr
    assert not folder.exists()  # --no-cache: nothing cached
    said = CliRunner().invoke(app, ["experiment", "analyze", "ranker", "-p", str(root), "--json"])
    assert said.exit_code == 0, said.stderr
    assert (folder / "manifest.json").exists()
