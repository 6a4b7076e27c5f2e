"""The profile's second DuckDB cursor (``_profile_parallel``): on a large source the independent
passes and the outlier rule run in a worker thread, and the whole profile with its cleaning
suggestions is the same as when everything runs in one thread (CYCLEML_PROFILE_PARALLEL=0)."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from cycleml.data import SourceSet
from cycleml.data import _cleaning_rules as rules_module
from cycleml.data import _profile as profile_module
from cycleml.data import _profile_parallel as parallel_module
from cycleml.data._profile import profile_view, profile_with_suggestions
from cycleml.errors import SourceError
from cycleml.spec import load_spec

N = 3000


def _frame(seed: int = 7) -> pd.DataFrame:
    """Every kind of column the passes treat apart: integers, floats with NaN and nulls, an
    outlier, text (categories, emails with invalid ones, dates as text, numbers as text, free
    text), a timestamp, a boolean, an all-null column."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(1, 400, N),
            "row_id": rng.permutation(N),
            "amount": rng.lognormal(2, 1, N).round(2),
            "score": rng.normal(size=N),
            "age": pd.array(rng.integers(18, 90, N), dtype="Int64"),
            "plan": rng.choice(["free", "Basic", "basic", "PRO"], N),
            "email": [f"u{i % 900}@example.com" if i % 40 else "not-an-email" for i in range(N)],
            "signup": [f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(N)],
            "price_text": [f"${i % 97}.50" for i in range(N)],
            "comment": [f"word{i % 1700} and more words {i % 13}" for i in range(N)],
            "event_ts": pd.Timestamp("2024-01-01")
            + pd.to_timedelta(rng.integers(0, 365 * 24, N), "h"),
            "flag": rng.random(N) < 0.2,
            "empty": pd.array([None] * N, dtype="Float64"),
        }
    )
    frame.loc[rng.choice(N, 300, replace=False), "age"] = pd.NA
    frame.loc[rng.choice(N, 200, replace=False), "score"] = np.nan
    frame.loc[rng.choice(N, 150, replace=False), "plan"] = None
    frame.loc[5, "amount"] = 1e6
    return frame


def _project(write_project, frame: pd.DataFrame) -> Path:
    root = write_project(
        "spec_version: 1\nname: par\nsources:\n"
        "  events: {path: events.parquet, entity: user_id, time: event_ts}\n"
    )
    frame.to_parquet(root / "events.parquet", index=False, row_group_size=500)
    return root


def _profile_and_suggestions(root: Path) -> dict:
    with SourceSet(load_spec(root), root) as sources:
        result = profile_with_suggestions(sources, "events")
    result.pop("seconds")
    return result


def _same(a: object, b: object, path: str = "") -> bool:
    """Equal, except that floats may differ in their last bits: DuckDB's parallel sums (mean,
    std, skew) add their partial results in the order its threads finish, so a skew of ~0 can
    come out 5e-17 one run and 7e-18 the next, with or without the second cursor."""
    if isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (path, a, b)
    elif isinstance(a, dict) and isinstance(b, dict):
        assert list(a) == list(b), (path, list(a), list(b))
        for key in a:
            _same(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), (path, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    else:
        assert type(a) is type(b) and a == b, (path, a, b)
    return True


def _threads_of(monkeypatch) -> dict[str, set[str]]:
    """Record which threads run the runs-of-nulls pass and the outlier rule."""
    seen: dict[str, set[str]] = {"null_runs": set(), "remove_outliers": set()}
    runs, outliers = profile_module.null_runs, rules_module.RULES["remove_outliers"]

    def null_runs(*args, **kwargs):
        seen["null_runs"].add(threading.current_thread().name)
        return runs(*args, **kwargs)

    def remove_outliers(ctx):
        seen["remove_outliers"].add(threading.current_thread().name)
        return outliers(ctx)

    monkeypatch.setattr(profile_module, "null_runs", null_runs)
    monkeypatch.setitem(rules_module.RULES, "remove_outliers", remove_outliers)
    return seen


def test_the_parallel_profile_and_suggestions_equal_the_serial_ones(
    write_project, monkeypatch
) -> None:
    root = _project(write_project, _frame())
    monkeypatch.setattr(parallel_module, "PARALLEL_ROWS", 1000)
    monkeypatch.setattr(rules_module, "IFOREST_ESTIMATE_ROWS", 2000)  # the sampled forest too
    # Read from the file, not a copy in a connection-local temporary table (see the next test).
    monkeypatch.setattr(profile_module, "MATERIALIZE_CELLS", 0)
    seen = _threads_of(monkeypatch)

    monkeypatch.setenv(parallel_module.ENV, "0")
    serial = _profile_and_suggestions(root)
    assert seen["null_runs"] == {"MainThread"} and seen["remove_outliers"] == {"MainThread"}

    monkeypatch.delenv(parallel_module.ENV)
    for key in seen:
        seen[key].clear()
    parallel = _profile_and_suggestions(root)
    assert len(seen["null_runs"]) == 1 and len(seen["remove_outliers"]) == 1
    assert next(iter(seen["null_runs"])).startswith("cycleml-profile")
    assert next(iter(seen["remove_outliers"])).startswith("cycleml-profile")

    assert _same(parallel, serial)  # the suggestions too, in the same order
    # The comparison covers what each pass computes (not an empty profile).
    by_name = {c["name"]: c for c in parallel["columns"]}
    assert by_name["age"]["longest_null_run"] >= 1
    assert by_name["email"]["invalid"] == N // 40
    assert parallel["correlations"]["columns"]
    rules = {s["rule"] for s in parallel["cleaning_suggestions"]}
    assert {"remove_outliers", "fix_invalid", "drop_empty"} <= rules
    assert any(
        s["id"] == "events.remove_outliers_iforest" for s in parallel["cleaning_suggestions"]
    )
    # No worker thread is left behind.
    assert not any(t.name.startswith("cycleml-profile") for t in threading.enumerate())


def test_small_sources_and_connection_local_views_stay_in_one_thread(monkeypatch) -> None:
    """Below PARALLEL_ROWS, above PARALLEL_MAX_ROWS, for a frame registered on the
    connection, and for a source copied into a temporary table (neither can be read by another
    cursor), every pass runs in the calling thread, with the same answer."""
    seen = _threads_of(monkeypatch)
    con = duckdb.connect()
    try:
        con.register("t", pa.Table.from_pandas(_frame(), preserve_index=False))
        monkeypatch.setattr(parallel_module, "PARALLEL_ROWS", 1000)
        copied = profile_view(con, '"t"', source="t")  # copied into a temporary table
        monkeypatch.setattr(profile_module, "MATERIALIZE_CELLS", 0)
        registered = profile_view(con, '"t"', source="t")  # read where it is registered
        monkeypatch.setattr(parallel_module, "PARALLEL_ROWS", N + 1)
        small = profile_view(con, '"t"', source="t")
        monkeypatch.setattr(parallel_module, "PARALLEL_ROWS", 1000)
        monkeypatch.setattr(parallel_module, "PARALLEL_MAX_ROWS", N - 1)
        large = profile_view(con, '"t"', source="t")  # above the range: one thread too
    finally:
        con.close()
    assert seen["null_runs"] == {"MainThread"}
    for result in (copied, registered, small, large):
        result.pop("seconds")
    assert _same(copied, registered) and _same(registered, small) and _same(small, large)
    assert small["rows"] == N


def test_a_failure_on_the_second_cursor_is_the_profiles_error(write_project, monkeypatch) -> None:
    """A query failing in the worker thread is raised by the profile as a SourceError, and the
    worker thread is gone afterwards."""
    root = _project(write_project, _frame())
    monkeypatch.setattr(parallel_module, "PARALLEL_ROWS", 1000)
    monkeypatch.setattr(profile_module, "MATERIALIZE_CELLS", 0)

    def broken(con, view, cols, rows):
        assert threading.current_thread().name.startswith("cycleml-profile")
        con.sql(f"SELECT no_such_column FROM {view}").fetchall()

    monkeypatch.setattr(profile_module, "null_runs", broken)
    with (
        SourceSet(load_spec(root), root) as sources,
        pytest.raises(SourceError, match="no_such_column"),
    ):
        profile_with_suggestions(sources, "events")
    assert not any(t.name.startswith("cycleml-profile") for t in threading.enumerate())
