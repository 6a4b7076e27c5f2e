"""`cleaning:` in the spec: one model per action, and the cross-checks validate reports."""

from __future__ import annotations

import pytest

from cycleml.errors import SpecError
from cycleml.spec import parse_spec
from cycleml.spec._cleaning import ACTIONS, PIPELINE_ACTIONS, VIEW_ACTIONS, DropColumns

HEAD = """\
spec_version: 1
name: t
sources:
  users: {path: u.csv, entity: user_id, time: signup_at}
features:
  g: {source: users, columns: [plan]}
cleaning:
"""


def _issues(steps: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(HEAD + steps)
    return [f"{i.path}: {i.message}" for i in info.value.issues]


def test_actions_split_into_view_and_pipeline() -> None:
    assert set(ACTIONS) == VIEW_ACTIONS | PIPELINE_ACTIONS
    assert not VIEW_ACTIONS & PIPELINE_ACTIONS


def test_action_picks_the_model() -> None:
    spec = parse_spec(HEAD + "- {id: a, source: users, action: drop_columns, columns: [x]}\n")
    assert isinstance(spec.cleaning[0], DropColumns)


def test_unknown_action_lists_the_valid_ones() -> None:
    (issue,) = _issues("- {id: a, source: users, action: shred}\n")
    assert issue.startswith("cleaning.0: ") and "drop_columns" in issue


def test_fields_of_another_action_are_refused() -> None:
    issues = _issues("- {id: a, source: users, action: drop_duplicates, columns: [x]}\n")
    assert issues == ["cleaning.0.columns: unknown key 'columns'"]


def test_unknown_source_duplicate_id_and_referenced_columns() -> None:
    issues = _issues(
        "- {id: a, source: usres, action: drop_duplicates}\n"
        "- {id: a, source: users, action: drop_columns, columns: [plan]}\n"
        "- {id: b, source: users, action: rename_columns, mapping: {signup_at: signed}}\n"
    )
    assert "cleaning.0.source: unknown source 'usres'" in issues
    assert "cleaning.1.id: step id 'a' is also used by cleaning.0" in issues
    assert any(i.startswith("cleaning.1: ") and "feature group 'g'" in i for i in issues)
    assert any(i.startswith("cleaning.2: ") and "entity/time" in i for i in issues)


def test_outlier_bounds_must_be_ordered() -> None:
    (issue,) = _issues(
        "- {id: a, source: users, action: remove_outliers, column: x, lower: 2, upper: 1}\n"
    )
    assert "lower" in issue
