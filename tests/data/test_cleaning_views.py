"""Recorded row/value steps applied in the source's DuckDB view (never in the file), in order;
a step naming a column the data no longer has fails with a message naming the step."""

from __future__ import annotations

import math

import pytest

from cycleml.data import SourceSet
from cycleml.errors import SourceError
from cycleml.spec import load_spec

CSV = """\
user_id,ts,Email Address,amount,tier,price,seen,score
1,2024-01-01,a@example.com,10,Gold,"$1,234.50",03/15/2024,1.0
1,2024-01-02,broken,12,gold,(12.00),xx,
1,2024-01-03,c@example.org,11,GOLD,$3.00,03/17/2024,
2,2024-01-01,d@example.com,500,silver,"2,000",03/18/2024,4.0
2,2024-01-01,d@example.com,500,silver,"2,000",03/18/2024,4.0
"""

HEAD = """\
spec_version: 1
name: t
sources:
  t: {path: t.csv, entity: user_id, time: ts}
cleaning:
"""


def _rows(write_project, steps: str) -> list[dict]:
    root = write_project(HEAD + steps, {"t.csv": CSV})
    with SourceSet(load_spec(root), root) as sources:
        sources.view("t")
        frame = sources.con.sql('SELECT * FROM t ORDER BY user_id, ts, "amount"').df()
    return frame.to_dict("records")


def test_rename_and_drop(write_project) -> None:
    rows = _rows(
        write_project,
        "- {id: a, source: t, action: rename_columns, mapping: {Email Address: email}}\n"
        "- {id: b, source: t, action: drop_columns, columns: [seen, price]}\n",
    )
    assert list(rows[0]) == ["user_id", "ts", "email", "amount", "tier", "score"]


def test_drop_duplicates(write_project) -> None:
    assert len(_rows(write_project, "- {id: a, source: t, action: drop_duplicates}\n")) == 4


def test_fix_invalid_email_and_case_and_currency(write_project) -> None:
    rows = _rows(
        write_project,
        '- {id: a, source: t, action: fix_invalid, column: "Email Address", kind: email}\n'
        "- {id: b, source: t, action: normalize_case, column: tier, case: lower}\n"
        "- {id: c, source: t, action: currency_to_number, column: price}\n",
    )
    emails = [r["Email Address"] for r in rows][:3]
    assert emails[0] == "a@example.com" and emails[2] == "c@example.org"
    assert emails[1] is None or (isinstance(emails[1], float) and math.isnan(emails[1]))
    assert {r["tier"] for r in rows} == {"gold", "silver"}
    assert [r["price"] for r in rows] == [1234.5, -12.0, 3.0, 2000.0, 2000.0]


def test_parse_datetime_with_format(write_project) -> None:
    rows = _rows(
        write_project,
        '- {id: a, source: t, action: parse_datetime, column: seen, format: "%m/%d/%Y"}\n',
    )
    assert str(rows[0]["seen"]) == "2024-03-15 00:00:00"
    assert rows[1]["seen"] is None or str(rows[1]["seen"]) == "NaT"


def test_remove_outliers_keeps_nulls_and_rows_inside_bounds(write_project) -> None:
    rows = _rows(
        write_project,
        "- {id: a, source: t, action: remove_outliers, column: amount, lower: 0, upper: 100}\n",
    )
    assert [r["amount"] for r in rows] == [10, 12, 11]


def test_drop_incomplete_rows_and_forward_fill(write_project) -> None:
    filled = _rows(write_project, "- {id: a, source: t, action: forward_fill, column: score}\n")
    assert [r["score"] for r in filled] == [1.0, 1.0, 1.0, 4.0, 4.0]
    kept = _rows(
        write_project, "- {id: a, source: t, action: drop_incomplete_rows, columns: [score]}\n"
    )
    assert len(kept) == 3 and not any(math.isnan(r["score"]) for r in kept)


def test_steps_of_other_sources_and_pipeline_steps_leave_the_view_alone(write_project) -> None:
    rows = _rows(
        write_project,
        "- {id: a, source: t, action: impute, column: score, strategy: median}\n"
        "- {id: b, source: t, action: log_transform, column: amount}\n",
    )
    assert len(rows) == 5 and math.isnan(rows[1]["score"])


def test_a_step_naming_a_missing_column_names_the_step(write_project) -> None:
    root = write_project(
        HEAD + "- {id: t.drop_empty.legacy, source: t, action: drop_columns, columns: [legacy]}\n",
        {"t.csv": CSV},
    )
    with (
        SourceSet(load_spec(root), root) as sources,
        pytest.raises(SourceError, match="t.drop_empty.legacy") as info,
    ):
        sources.view("t")
    assert "cleaning:" in info.value.hint
