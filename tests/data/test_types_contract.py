"""The contract every semantic type detector meets (run over all registered detectors, like
scikit-learn's estimator checks): its own examples are detected, its near misses are not, its
value test is valid SQL that never fails on odd text, and it claims nothing from an empty column.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from cycleml.data import _types
from cycleml.data._profile import profile_view

ODD_TEXT = ["", " ", "'", '"', "\\", "%", "@@", "[", "]", "{}", "é€漢字", "x" * 5000, "\n\t", "NaN"]


def _semantic(example: _types.Example) -> str:
    con = duckdb.connect()
    try:
        con.register("t", pa.table({example.name: pa.array(list(example.values))}))
        result = profile_view(con, '"t"', source="t")
    finally:
        con.close()
    (column,) = result["columns"]
    return column["semantic"]


def _ids(detectors) -> list[str]:
    return [d.name for d in detectors]


def test_the_registry_is_ordered_named_once_and_ends_with_a_catch_all() -> None:
    names = _ids(_types.DETECTORS)
    assert len(names) == len(set(names))
    assert set(names) >= {
        "number",
        "category",
        "high_cardinality",
        "datetime",
        "text",
        "email",
        "phone",
        "zip",
        "boolean",
        "identifier",
        "list",
    }
    assert names[-1] == "other"
    assert {d.name: d for d in _types.DETECTORS} == _types.BY_NAME


@pytest.mark.parametrize("detector", _types.DETECTORS, ids=_ids(_types.DETECTORS))
def test_detector_has_examples_and_a_docstring(detector: _types.Detector) -> None:
    assert detector.positives, f"{detector.name} needs positive examples"
    assert detector.near_misses, f"{detector.name} needs near misses"


@pytest.mark.parametrize("detector", _types.DETECTORS, ids=_ids(_types.DETECTORS))
def test_detector_finds_its_positive_examples(detector: _types.Detector) -> None:
    for example in detector.positives:
        assert _semantic(example) == detector.name, example


@pytest.mark.parametrize("detector", _types.DETECTORS, ids=_ids(_types.DETECTORS))
def test_detector_rejects_its_near_misses(detector: _types.Detector) -> None:
    for example in detector.near_misses:
        assert _semantic(example) != detector.name, example


@pytest.mark.parametrize("detector", _types.PATTERNS, ids=_ids(_types.PATTERNS))
def test_value_test_is_sql_that_never_fails_on_odd_text(detector: _types.Detector) -> None:
    con = duckdb.connect()
    try:
        con.register("t", pa.table({"v": pa.array([*ODD_TEXT, None], pa.string())}))
        values = con.sql(f"SELECT {detector.valid('v')} FROM t").fetchall()
    finally:
        con.close()
    assert all(v in (True, False, None) for (v,) in values)
    assert values[-1][0] in (None, False)  # NULL is never valid


@pytest.mark.parametrize("detector", _types.DETECTORS, ids=_ids(_types.DETECTORS))
def test_detector_claims_no_empty_text_column_unless_it_is_the_fallback(
    detector: _types.Detector,
) -> None:
    empty = _types.ColumnFacts(name="value", base="string", count=0, distinct=0)
    claims = detector.detect(empty)
    assert claims == (detector.name in ("category", "other"))


def test_pattern_share_threshold_is_exactly_ninety_percent() -> None:
    nine = _types.Example(tuple([f"u{i}@example.com" for i in range(9)] + ["nope"]), "e")
    eight = _types.Example(tuple([f"u{i}@example.com" for i in range(8)] + ["a", "b"]), "e")
    assert _semantic(nine) == "email"
    assert _semantic(eight) != "email"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("id", True),
        ("user_id", True),
        ("userId", True),
        ("uuid", True),
        ("order-key", True),
        ("paid", False),
        ("idea", False),
        ("width", False),
        ("valid", False),
        ("keyword", False),
    ],
)
def test_id_like_names(name: str, expected: bool) -> None:
    assert _types.id_like_name(name) is expected
