"""Profile statistics checked against pandas/SciPy and by hand; shapes of the demo sources."""

from __future__ import annotations

import io
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import scipy.stats

from cycleml import Project
from cycleml.data._profile import profile_view
from cycleml.data._profile_columns import longest_true_run


def _profile(frame: pd.DataFrame, **kw) -> dict:
    con = duckdb.connect()
    try:
        con.register("t", pa.Table.from_pandas(frame, preserve_index=False))
        return profile_view(con, '"t"', source="t", **kw)
    finally:
        con.close()


def _col(result: dict, name: str) -> dict:
    return next(c for c in result["columns"] if c["name"] == name)


def test_numeric_statistics_match_pandas_and_scipy() -> None:
    rng = np.random.default_rng(3)
    x = rng.lognormal(size=500)
    x[rng.choice(500, 40, replace=False)] = np.nan
    frame = pd.DataFrame({"x": x, "k": rng.integers(0, 7, 500)})
    result = _profile(frame)
    col, values = _col(result, "x"), frame["x"].dropna()
    assert col["semantic"] == "number"
    assert col["nulls"] == 40 and col["null_rate"] == pytest.approx(40 / 500)
    assert col["min"] == pytest.approx(values.min()) and col["max"] == pytest.approx(values.max())
    assert col["mean"] == pytest.approx(values.mean(), rel=1e-6)
    assert col["std"] == pytest.approx(values.std(ddof=1), rel=1e-5)
    # DuckDB's skewness is the adjusted Fisher-Pearson G1: scipy's skew with bias=False.
    assert col["skew"] == pytest.approx(scipy.stats.skew(values, bias=False), rel=1e-5)
    expected_q = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])  # linear, as quantile_cont
    assert list(col["quantiles"].values()) == pytest.approx(list(expected_q), rel=1e-6)
    assert col["median"] == pytest.approx(values.median(), rel=1e-6)
    assert col["quantiles_exact"] is True and col["distinct_exact"] is True
    assert col["distinct"] == values.nunique()
    counts, edges = np.histogram(values, bins=20, range=(values.min(), values.max()))
    assert col["histogram"]["counts"] == counts.tolist()
    assert col["histogram"]["edges"] == pytest.approx(edges.tolist())
    k = _col(result, "k")
    expected_top = frame["k"].value_counts()
    assert k["top"][0] == {"value": int(expected_top.index[0]), "count": int(expected_top.iloc[0])}
    assert [t["count"] for t in k["top"]] == sorted(expected_top.tolist(), reverse=True)


def test_correlations_match_pandas() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=300)
    frame = pd.DataFrame({"a": a, "b": 2 * a + rng.normal(size=300), "c": rng.normal(size=300)})
    result = _profile(frame)
    corr = result["correlations"]
    assert corr["columns"] == ["a", "b", "c"] and corr["sampled"] is False
    assert np.array(corr["matrix"]) == pytest.approx(frame.corr().to_numpy(), abs=1e-6)
    assert result["sampled"] == []


def test_longest_null_run_and_duplicates_by_hand() -> None:
    x = [1.0, None, None, 2.0, None, None, None, 3.0, None, 4.0]
    frame = pd.DataFrame({"x": x, "y": ["a", "a", "a", "b", "b", "a", "b", "c", "a", "a"]})
    # (None, a) at rows 1, 2, 5, 8 repeats 3 times; (None, b) at rows 4, 6 once.
    result = _profile(frame)
    assert _col(result, "x")["longest_null_run"] == 3
    assert _col(result, "y")["longest_null_run"] == 0
    assert result["duplicate_rows"] == 4 == len(frame) - len(frame.drop_duplicates())
    assert result["duplicate_method"] == "exact"
    assert longest_true_run(np.array([True, True, False, True])) == 2
    assert longest_true_run(np.array([], dtype=bool)) == 0


def test_a_column_of_numbers_and_words_is_text_with_a_numeric_invalid_rate() -> None:
    values = ["1", "2", "3.5", "7", "x", "n/a", "9", "12", "unknown", "4"]
    result = _profile(pd.DataFrame({"amount": values * 3}))
    col = _col(result, "amount")
    assert col["semantic"] == "category"
    assert col["mixed"] == {"type": "number", "valid": 21, "invalid": 9, "invalid_rate": 0.3}
    assert col["patterns"]["number"] == pytest.approx(0.7)


def test_mostly_numeric_text_is_a_number_with_invalid_values_and_numeric_stats() -> None:
    values = [str(i) for i in range(1, 20)] + ["oops"]
    col = _col(_profile(pd.DataFrame({"n": values})), "n")
    assert col["semantic"] == "number"
    assert (col["invalid"], col["invalid_rate"]) == (1, 0.05)
    assert col["mean"] == pytest.approx(10.0) and col["max"] == 19
    assert col["histogram"]["unit"] == "bin"


def test_invalid_emails_are_counted() -> None:
    values = [f"user{i}@example.com" for i in range(18)] + ["broken@", "nobody"]
    col = _col(_profile(pd.DataFrame({"email": values})), "email")
    assert col["semantic"] == "email" and col["invalid"] == 2


def test_text_dates_are_datetimes_with_a_histogram_by_day() -> None:
    days = pd.date_range("2024-01-01", periods=30).strftime("%Y-%m-%d").tolist()
    result = _profile(pd.DataFrame({"day": days}))
    col = _col(result, "day")
    assert col["semantic"] == "datetime"
    assert col["min"].startswith("2024-01-01") and col["max"].startswith("2024-01-30")
    assert col["histogram"]["unit"] == "day" and sum(col["histogram"]["counts"]) == 30
    assert result["time_candidates"][0] == {
        "column": "day",
        "min": col["min"],
        "max": col["max"],
        "distinct": 30,
        "parsed": True,
        "declared": False,
    }


def test_time_series_shape_one_row_per_item_and_day() -> None:
    days = pd.date_range("2024-01-01", periods=60)
    frame = pd.DataFrame(
        [(f"item{i}", d, float(i)) for i in range(5) for d in days],
        columns=["item_id", "day", "qty"],
    )
    assert _profile(frame)["shape"] == "time_series"


def test_demo_sources_have_the_expected_shapes(demo_template: Path) -> None:
    project = Project(demo_template)
    from cycleml.data import profile_source

    with project.open_sources() as sources:
        shapes = {n: profile_source(sources, n)["shape"] for n in project.spec.sources}
    assert shapes["events"] == "event_log"
    assert shapes["users"] == "entity_table"
    assert shapes["products"] == "entity_table"
    assert shapes["impressions"] == "event_log"


def _parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def test_an_empty_source_profiles_cleanly_without_nan(write_project) -> None:
    root = write_project(
        "spec_version: 1\nname: e\nsources:\n  empty: {path: empty.csv}\n",
        {"empty.csv": "id,x,when\n"},
    )
    project = Project(root)
    try:
        (result,) = project.profile()
    finally:
        project.close()
    assert result["rows"] == 0 and result["empty"] is True
    assert result["notes"] == ["the source has no rows: every statistic is empty"]
    assert result["duplicate_rows"] == 0 and result["shape"] == "table"
    assert all(c["null_rate"] == 0.0 and c["invalid_rate"] == 0.0 for c in result["columns"])
    json.dumps(result, allow_nan=False)


def test_a_source_with_no_rows_after_filtering_is_empty(write_project, tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE users (id TEXT, age INTEGER)")
        conn.executemany("INSERT INTO users VALUES (?, ?)", [("a", 30), ("b", 40)])
        conn.execute("CREATE VIEW adults_over_90 AS SELECT * FROM users WHERE age > 90")
    root = write_project(
        f"spec_version: 1\nname: f\nsources:\n"
        f"  old: {{url: 'sqlite:///{db}', table: adults_over_90}}\n"
    )
    project = Project(root)
    try:
        (result,) = project.profile()
    finally:
        project.close()
    assert result["rows"] == 0 and result["empty"] is True
    assert [c["name"] for c in result["columns"]] == ["id", "age"]
    json.dumps(result, allow_nan=False)


def test_a_latin1_csv_is_a_clear_source_error_and_reads_once_declared(write_project) -> None:
    from cycleml.errors import SourceError

    data = "name,city\nJosé,Köln\nAnn,Zürich\n".encode("latin-1")
    root = write_project(
        "spec_version: 1\nname: l\nsources:\n  people: {path: people.csv}\n",
        {"people.csv": data},
    )
    project = Project(root)
    try:
        with pytest.raises(SourceError, match="not UTF-8") as info:
            project.profile()
        assert "encoding: latin-1" in info.value.hint and "iconv" in info.value.hint
    finally:
        project.close()
    (root / "cycleml.yaml").write_text(
        "spec_version: 1\nname: l\nsources:\n  people: {path: people.csv, encoding: latin-1}\n",
        encoding="utf-8",
    )
    project = Project(root)
    try:
        (result,) = project.profile()
    finally:
        project.close()
    assert _col(result, "name")["top"][0]["value"] in ("José", "Ann")
    assert {t["value"] for t in _col(result, "city")["top"]} == {"Köln", "Zürich"}


def test_the_large_source_paths_give_the_same_answers(monkeypatch) -> None:
    """Above the exact limits: hashed duplicates, approximate distinct and quantiles, top
    values from approx_top_k recounted exactly, sampled patterns and correlations (limits
    lowered so a small frame takes those paths)."""
    from cycleml.data import _profile as profile_module
    from cycleml.data import _profile_columns as columns_module

    rng = np.random.default_rng(5)
    n = 400
    a = rng.normal(size=n)
    frame = pd.DataFrame(
        {
            "code": [f"k{i % 150}" for i in range(n)],
            "email": [f"u{i}@example.com" if i % 20 else "broken" for i in range(n)],
            "a": a,
            "b": a + rng.normal(size=n),
        }
    )
    frame = pd.concat([frame, frame.iloc[:7]], ignore_index=True)
    exact = _profile(frame)
    for module, name, value in [
        (profile_module, "EXACT_ROWS", 10),
        (columns_module, "EXACT_ROWS", 10),
        (columns_module, "SMALL_ROWS", 10),
        (columns_module, "TOP_GROUP_LIMIT", 100),
        (columns_module, "APPROX_TOP_LIMIT", 100),
        (columns_module, "QUANTILE_SAMPLE", 200),
        (columns_module, "PATTERN_SAMPLE", 200),
        (profile_module, "CORRELATION_ROWS", 300),
        (profile_module, "MATERIALIZE_CELLS", 0),
    ]:
        monkeypatch.setattr(module, name, value)
    large = _profile(frame)
    assert large["duplicate_method"] == "hash"
    assert large["duplicate_rows"] == exact["duplicate_rows"] == 7
    code = _col(large, "code")
    assert code["top_exact"] is False and code["distinct_exact"] is False
    expected = frame["code"].value_counts()
    for top in code["top"]:
        assert top["count"] == expected[top["value"]]
    email = _col(large, "email")
    assert email["semantic"] == "email"
    assert email["invalid"] == _col(exact, "email")["invalid"] == (frame["email"] == "broken").sum()
    # quantiles: exact quantiles of a ~200-row Bernoulli sample of the 407 (QUANTILE_SAMPLE)
    assert _col(large, "a")["quantiles_exact"] is False
    assert _col(large, "a")["median"] == pytest.approx(frame["a"].median(), abs=0.25)
    assert _col(large, "a")["quantiles"]["p95"] == pytest.approx(frame["a"].quantile(0.95), abs=0.5)
    note = next(s for s in large["sampled"] if s["statistic"].startswith("quantiles"))
    assert note["of"] == len(frame) and 100 <= note["rows"] <= 300 and "Bernoulli" in note["method"]
    # moments from shifted sums of powers: the same as DuckDB's exact aggregates
    for key in ("mean", "std", "skew"):
        assert _col(large, "a")[key] == pytest.approx(_col(exact, "a")[key], rel=1e-9), key
    assert _col(large, "a")[key] == pytest.approx(scipy.stats.skew(frame["a"], bias=False))
    stats = {s["statistic"] for s in large["sampled"]}
    assert "correlations" in stats and "semantic patterns of column 'email'" in stats
    assert large["correlations"]["rows"] == 300 and large["correlations"]["sampled"] is True
    assert large["approximate"]


def test_profiling_bounds_duckdb_memory_and_restores_the_connection(
    write_project, monkeypatch
) -> None:
    """While a source is profiled DuckDB's memory limit is at most PROFILE_MEMORY (here
    lowered to 64 MiB, so the exact distinct counts and the duplicate check must spill) and it
    spills to a private directory (not `.tmp` in the working directory); afterwards the memory
    limit is as before, and a second profile on the same connection works. The answers are
    those of an unbounded run."""
    from cycleml.data import SourceSet, profile_source
    from cycleml.data import _profile as profile_module
    from cycleml.spec import load_spec

    n = 300_000
    frame = pd.DataFrame(
        {
            "k": [f"key-{i:07d}" for i in range(n)],
            "x": np.arange(n) % 1000,
            "y": np.random.default_rng(2).normal(size=n),
        }
    )
    root = write_project("spec_version: 1\nname: m\nsources:\n  t: {path: t.parquet}\n")
    frame.to_parquet(root / "t.parquet", index=False)
    seen: list[tuple] = []
    real = profile_module.profile_view

    def watching(con, view, **kw):
        seen.append(
            con.sql(
                "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
            ).fetchall()[0]
        )
        return real(con, view, **kw)

    monkeypatch.setattr(profile_module, "profile_view", watching)
    with SourceSet(load_spec(root), root) as sources:
        unbounded = profile_source(sources, "t")
    monkeypatch.setattr(profile_module, "PROFILE_MEMORY", 64 * 1024**2)
    with SourceSet(load_spec(root), root) as sources:
        sources.con.execute("SET memory_limit = '3GB'")
        before = sources.con.sql(
            "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
        ).fetchall()[0]
        bounded = profile_source(sources, "t")
        again = profile_source(sources, "t")  # DuckDB cannot switch a used spill directory
        after = sources.con.sql("SELECT current_setting('memory_limit')").fetchall()[0]
    assert after[0] == before[0]
    limit, spill = seen[-1]
    assert limit in ("64.0 MiB", "64 MiB") and "cycleml-duckdb-" in spill
    assert again["rows"] == bounded["rows"] == n
    for a, b in zip(bounded["columns"], unbounded["columns"], strict=True):
        for key in ("skew", "std"):  # float sums in parallel: the last bits vary
            assert (a[key] is None) == (b[key] is None)
            assert a[key] is None or a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-9)
        assert {k: v for k, v in a.items() if k not in ("skew", "std")} == {
            k: v for k, v in b.items() if k not in ("skew", "std")
        }
    assert _col(bounded, "k")["distinct"] == n and bounded["duplicate_rows"] == 0


def test_a_unique_column_proves_no_duplicates_and_bitmaps_count_integers_exactly(
    monkeypatch,
) -> None:
    """Above the exact limits, an integer column's distinct count comes from a bitmap of its
    range (exact, even with gaps, repeats, nulls and negative values); a column unique on every
    row makes ``duplicate_rows`` 0 without the row-hash scan (noted), while the same frame with a
    repeated row still counts that duplicate by hashing."""
    from cycleml.data import _profile as profile_module
    from cycleml.data import _profile_columns as columns_module

    rng = np.random.default_rng(11)
    n = 600
    frame = pd.DataFrame(
        {
            "row": rng.permutation(np.arange(n) * 3 - 500),  # unique, with gaps, negative
            "k": pd.array(rng.integers(-40, 40, n), dtype="Int64"),
            "x": rng.normal(size=n),
        }
    )
    frame.loc[rng.choice(n, 30, replace=False), "k"] = pd.NA
    for module, name, value in [
        (profile_module, "EXACT_ROWS", 10),
        (columns_module, "EXACT_ROWS", 10),
        (columns_module, "SMALL_ROWS", 10),
        (columns_module, "TOP_GROUP_LIMIT", 5),
        (columns_module, "APPROX_TOP_LIMIT", 5),
        (profile_module, "MATERIALIZE_CELLS", 0),
    ]:
        monkeypatch.setattr(module, name, value)
    unique = _profile(frame)
    row, k = _col(unique, "row"), _col(unique, "k")
    assert row["distinct"] == n and row["distinct_exact"] is True
    assert k["distinct"] == frame["k"].nunique() and k["distinct_exact"] is True
    assert _col(unique, "x")["distinct_exact"] is False  # a float: HyperLogLog
    assert unique["duplicate_rows"] == 0 and unique["duplicate_method"] == "exact"
    assert any("'row' has a different value on every row" in note for note in unique["notes"])
    repeated = _profile(pd.concat([frame, frame.iloc[:1]], ignore_index=True))
    assert _col(repeated, "row")["distinct"] == n  # exact: one value now occurs twice
    assert repeated["duplicate_rows"] == 1 and repeated["duplicate_method"] == "hash"
    assert not any("different value on every row" in note for note in repeated["notes"])
    # The bitmap is not used for a range above BITMAP_RANGE: then the estimate stays.
    monkeypatch.setattr(columns_module, "BITMAP_RANGE", 100)
    assert _col(_profile(frame), "row")["distinct_exact"] is False
