"""Project.profile: per-column statistics checked against pandas, stored one row per source."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from cycleml import Project
from cycleml.store import tables


def _expected_top(series: pd.Series, n: int = 10) -> list[dict]:
    counts = series.dropna().value_counts()
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [{"value": _plain(v), "count": int(c)} for v, c in ordered]


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    return value


def _check_against_pandas(result: dict, frame: pd.DataFrame) -> None:
    assert result["rows"] == len(frame)
    assert [c["name"] for c in result["columns"]] == list(frame.columns)
    for column in result["columns"]:
        series = frame[column["name"]]
        name = column["name"]
        assert column["count"] == len(frame), name
        assert column["nulls"] == int(series.isna().sum()), name
        assert column["null_rate"] == pytest.approx(series.isna().mean(), abs=1e-6), name
        assert column["distinct"] == series.nunique(dropna=True), name
        assert column["distinct_exact"] is True
        numeric = column["kind"] in ("integer", "float") and column["semantic"] != "boolean"
        if numeric and series.isna().all():
            assert column["min"] is column["max"] is column["mean"] is None, name
        elif numeric:
            assert column["min"] == pytest.approx(series.min()), name
            assert column["max"] == pytest.approx(series.max()), name
            assert column["mean"] == pytest.approx(series.mean(), rel=1e-6), name
            assert column["std"] == pytest.approx(series.std(), rel=1e-5), name
        if series.nunique() <= 20 or column["kind"] in ("string", "boolean"):
            assert column["top"] == _expected_top(series), name
        if column["kind"] == "datetime":
            assert pd.Timestamp(column["min"]) == series.min(), name
            assert pd.Timestamp(column["max"]) == series.max(), name


def test_profile_of_the_demo_matches_pandas_and_is_stored(demo_project: Path) -> None:
    project = Project(demo_project)
    try:
        results = project.profile()
        assert [r["source"] for r in results] == list(project.spec.sources)
        kinds = {}
        for result in results:
            frame = pd.read_parquet(demo_project / project.spec.sources[result["source"]].path)
            _check_against_pandas(result, frame)
            kinds.update({(result["source"], c["name"]): c["semantic"] for c in result["columns"]})
        assert kinds[("users", "plan")] == "category"
        assert kinds[("users", "age")] == "number"
        assert kinds[("users", "signup_at")] == "datetime"
        assert kinds[("impressions", "clicked")] == "boolean"
        assert kinds[("users", "user_id")] == kinds[("events", "user_id")] == "identifier"
        users = results[0]
        assert (users["entity"], users["time"]) == ("user_id", "signup_at")
        # The demo's users have some missing ages: the null rate is what pandas sees.
        age = next(c for c in users["columns"] if c["name"] == "age")
        assert 0 < age["null_rate"] < 1

        project.profile("events")  # a second run of one source adds one row
        with project.store.connect() as conn:
            stored = conn.execute(
                sa.select(tables.profiles.c.source, tables.profiles.c.result).order_by(
                    tables.profiles.c.id
                )
            ).all()
    finally:
        project.close()
    assert [s for s, _ in stored] == [*project.spec.sources, "events"]
    assert stored[0].result == json.loads(json.dumps(results[0]))
    assert stored[-1].result["rows"] == results[1]["rows"]


def _parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


EDGE = pd.DataFrame(
    {
        "id": ["a", "b", "c", "d", "e", "f"],
        "x": [1.0, None, None, 3.0, 3.0, 7.5],
        "nothing": pd.array([None] * 6, dtype="Int64"),
        "cat": [None, None, "z", "z", "y", None],
        "small": np.array([1, 2, 3, 250, 250, 9], dtype="uint8"),
        "medium": np.array([10, 20, 30, 40, 50, 60], dtype="uint16"),
        "flag": pd.array([True, None, False, True, True, None], dtype="boolean"),
    }
)


def test_profile_edge_cases_nulls_unsigned_and_empty(write_project) -> None:
    root = write_project(
        "spec_version: 1\nname: edge\nsources:\n"
        "  edge: {path: edge.parquet, entity: id}\n"
        "  empty: {path: empty.csv}\n",
        {"edge.parquet": _parquet(EDGE), "empty.csv": "id,x\n"},
    )
    project = Project(root)
    try:
        edge, empty = project.profile()
    finally:
        project.close()
    _check_against_pandas(edge, EDGE)
    by_name = {c["name"]: c for c in edge["columns"]}
    assert by_name["small"]["semantic"] == by_name["medium"]["semantic"] == "number"
    assert by_name["small"]["max"] == 250
    assert by_name["cat"]["top"] == [{"value": "z", "count": 2}, {"value": "y", "count": 1}]
    assert by_name["nothing"]["null_rate"] == 1.0 and by_name["nothing"]["top"] == []
    assert edge["empty_columns"] == ["nothing"]
    # An empty source profiles to zeros, and stays valid JSON (no NaN).
    assert empty["rows"] == 0
    assert all(c["null_rate"] == 0.0 and c["distinct"] == 0 for c in empty["columns"])
    assert empty["empty_columns"] == []
    json.dumps(empty, allow_nan=False)
    json.dumps(edge, allow_nan=False)


def test_profile_of_an_unreadable_source_is_a_source_error_and_stores_nothing(
    write_project,
) -> None:
    from cycleml.errors import SourceError

    root = write_project(
        "spec_version: 1\nname: bad\nsources:\n  gone: {path: gone.parquet}\n"
        "  ok: {path: ok.parquet}\n",
        {"ok.parquet": _parquet(EDGE)},
    )
    project = Project(root)
    try:
        with pytest.raises(SourceError, match="gone"):
            project.profile()
        with project.store.connect() as conn:
            assert (
                conn.execute(sa.select(sa.func.count()).select_from(tables.profiles)).scalar() == 0
            )
    finally:
        project.close()


def test_profile_of_a_file_malformed_past_the_sniffed_rows_is_a_source_error(
    write_project,
) -> None:
    from cycleml.errors import SourceError

    root = write_project(
        "spec_version: 1\nname: bad\nsources:\n  late: {path: late.jsonl}\n",
        {"late.jsonl": '{"id": 1}\n' * 30_000 + '{"id": \n'},
    )
    project = Project(root)
    try:
        with pytest.raises(SourceError, match="'late'") as info:
            project.profile()
        assert info.value.hint
    finally:
        project.close()
