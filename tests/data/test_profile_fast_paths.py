"""The profile's faster paths give the same answers as the slower ones they replace: exact
distinct counts from per-column subqueries, bitmaps and the text groups (instead of one
aggregate of count(DISTINCT)); the isolation-forest estimate from a sample of its own columns;
the outlier rule's imports loaded during the profile."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from cycleml.data import SourceSet, profile_source, suggest_cleaning
from cycleml.data import _cleaning_rules as rules_module
from cycleml.data import _profile as profile_module
from cycleml.data import _profile_columns as columns_module
from cycleml.data._profile import profile_view
from cycleml.spec import load_spec

N = 600


def _frame(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = rng.choice(["alpha", "beta", "gamma", "delta"], N)
    many = [f"w{i % 250}" if i % 9 else "repeat" for i in range(N)]  # ~250 distinct, one frequent
    emails = [f"u{i % 450}@example.com" if i % 25 else "broken" for i in range(N)]
    frame = pd.DataFrame(
        {
            "row": rng.permutation(N) * 2 - 300,  # unique integers with gaps, negative
            "k": pd.array(rng.integers(0, 40, N), dtype="Int64"),
            "x": rng.normal(size=N).round(2),  # a float with repeats
            "t": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 900, N), "h"),
            "word": words,
            "many": many,
            "unique_text": [f"id-{i}" for i in rng.permutation(N)],
            "email": emails,
            "flag": rng.random(N) < 0.3,
        }
    )
    frame.loc[rng.choice(N, 40, replace=False), "k"] = pd.NA
    frame.loc[rng.choice(N, 30, replace=False), "word"] = None
    frame.loc[rng.choice(N, 20, replace=False), "x"] = np.nan
    return frame


def _profile(frame: pd.DataFrame) -> dict:
    con = duckdb.connect()
    try:
        con.register("t", pa.Table.from_pandas(frame, preserve_index=False))
        result = profile_view(con, '"t"', source="t")
    finally:
        con.close()
    result.pop("seconds")
    return result


@pytest.mark.parametrize("group_limit", [100_000, 100])
def test_exact_distinct_counts_without_one_big_count_distinct_give_the_same_profile(
    monkeypatch, group_limit: int
) -> None:
    """Above SMALL_ROWS and up to EXACT_ROWS rows, distinct counts come from per-column
    subqueries (bitmaps for integers) and, for text, from the groups the top values need; the
    whole profile equals the one computed from ``list_distinct`` (the small-source path), with
    text above TOP_GROUP_LIMIT groups (``group_limit`` 100) checked on a sample either way."""
    frame = _frame()
    monkeypatch.setattr(columns_module, "TOP_GROUP_LIMIT", group_limit)
    monkeypatch.setattr(columns_module, "PATTERN_SAMPLE", 200)
    monkeypatch.setattr(profile_module, "MATERIALIZE_CELLS", 0)
    reference = _profile(frame)  # N <= SMALL_ROWS: every count from a list of the values
    monkeypatch.setattr(columns_module, "SMALL_ROWS", 10)
    calls: list[str] = []
    original = columns_module._one_row

    def spy(con, sql):
        calls.append(sql)
        return original(con, sql)

    monkeypatch.setattr(columns_module, "_one_row", spy)
    fast = _profile(frame)
    assert any("bitstring_agg" in sql for sql in calls)  # the fast path ran
    assert not any("list_distinct" in sql for sql in calls)
    assert fast == reference
    for name in frame.columns:
        column = next(c for c in fast["columns"] if c["name"] == name)
        assert column["distinct"] == frame[name].nunique(), name
        assert column["distinct_exact"] is True, name
    text = {c["name"]: c for c in fast["columns"]}
    if group_limit == 100:  # 534 and 600 groups: patterns on a sample, no checks
        assert text["many"]["text_checks"] is None and text["unique_text"]["text_checks"] is None
        assert text["many"]["top"][0] == {"value": "repeat", "count": 67}
        assert text["unique_text"]["top"] == [] and text["unique_text"]["top_note"]
        sampled = {s["statistic"] for s in fast["sampled"]}
        assert "semantic patterns of column 'many'" in sampled
    else:
        assert text["many"]["text_checks"]["non_null"] == N
        assert text["unique_text"]["top"][0]["count"] == 1
    assert text["email"]["invalid"] == (frame["email"] == "broken").sum()


def test_the_isolation_forest_sample_has_the_rows_of_a_whole_row_sample(tmp_path: Path) -> None:
    """The outlier rule samples only the forest's columns: DuckDB's seeded reservoir picks the
    same rows as from whole rows (what the estimate was computed on before)."""
    rng = np.random.default_rng(2)
    n = 60_000
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "text": [f"t{i}" for i in range(n)],
            "b": rng.integers(0, 1000, n),
        }
    )
    path = tmp_path / "f.parquet"
    frame.to_parquet(path, row_group_size=7_000)
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute(f"CREATE VIEW v AS SELECT * FROM '{path}'")
    sample = "USING SAMPLE reservoir(5000 ROWS) REPEATABLE (0)"
    whole = con.sql(f"SELECT a, b FROM (SELECT * FROM v {sample}) ORDER BY ALL").fetchall()
    narrow = con.sql(f"SELECT a, b FROM (SELECT a, b FROM v {sample}) ORDER BY ALL").fetchall()
    assert len(whole) == 5000 and narrow == whole


def test_the_sampled_isolation_forest_previews_whole_flagged_rows(
    write_project, monkeypatch
) -> None:
    """On a source above IFOREST_ESTIMATE_ROWS the forest scores a sample of its columns; the
    preview still shows whole rows of the source, among them the planted outlier."""
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame(
        {
            "user_id": np.arange(1, n + 1),
            "plan": rng.choice(["basic", "pro", "team"], n),
            "amount": rng.uniform(10, 100, n),
            "score": rng.uniform(0, 1, n),
        }
    )
    frame.loc[0, "amount"] = 10_000.0
    root = write_project(
        "spec_version: 1\nname: t\nsources:\n  t: {path: t.parquet, entity: user_id}\n"
    )
    frame.to_parquet(root / "t.parquet", index=False)
    monkeypatch.setattr(rules_module, "IFOREST_ESTIMATE_ROWS", 300)
    with SourceSet(load_spec(root), root) as sources:
        profile = profile_source(sources, "t")
        found = {s.id: s for s in suggest_cleaning(profile, sources, rules=["remove_outliers"])}
    option = found["t.remove_outliers_iforest"]
    assert option.evidence["estimated_from_sample_rows"] == 300
    assert 1 <= len(option.preview) <= rules_module.PREVIEW
    for row in option.preview:
        assert set(row) == set(frame.columns)
        match = frame[frame["user_id"] == row["user_id"]].iloc[0]
        assert row["plan"] == match["plan"] and row["amount"] == match["amount"]


def test_a_large_profile_loads_the_outlier_rule_imports_in_a_joined_thread(
    monkeypatch, tmp_path: Path
) -> None:
    """From WARM_ROWS rows with numeric columns, the modules of WARM_MODULES are imported in a
    thread while the profile runs, and the thread has ended when the profile returns; a module
    that fails to import does not fail the profile."""
    probe = "tests_profile_warm_probe"
    assert probe not in sys.modules
    (tmp_path / f"{probe}.py").write_text(
        "import threading\nLOADED_BY = threading.current_thread().name\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(profile_module, "WARM_ROWS", 100)
    monkeypatch.setattr(profile_module, "WARM_MODULES", ("cycleml_no_such_module", probe))
    monkeypatch.delitem(sys.modules, probe, raising=False)
    result = _profile(_frame())
    assert result["rows"] == N
    assert probe in sys.modules
    assert threading.main_thread().name != sys.modules[probe].LOADED_BY
    assert not any(t.name == "cycleml-warm-imports" for t in threading.enumerate())
    monkeypatch.delitem(sys.modules, probe)
    monkeypatch.setattr(profile_module, "WARM_ROWS", N + 1)  # below it: nothing imported
    _profile(_frame())
    assert probe not in sys.modules
