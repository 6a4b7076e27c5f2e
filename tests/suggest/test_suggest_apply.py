"""`suggest --apply N`: the spec stays valid, keeps its text, refuses clashes; datasets build."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from typer.testing import CliRunner

from cycleml import Project
from cycleml.cli import app
from cycleml.errors import NotFoundError
from cycleml.spec import load_spec
from cycleml.suggest import SuggestionConflictError, apply_suggestion, suggest_problems


@pytest.fixture(scope="module")
def bare_template(demo_template, tmp_path_factory):
    """The demo product with no problems in its spec (the feature groups and comments stay)."""
    root = tmp_path_factory.mktemp("bare") / "demo"
    shutil.copytree(demo_template, root, ignore=shutil.ignore_patterns(".cycleml"))
    text = (root / "cycleml.yaml").read_text()
    text = re.sub(r"\nproblems:\n.*?\nfeatures:", "\nproblems:\n\nfeatures:", text, flags=re.S)
    (root / "cycleml.yaml").write_text(text)
    load_spec(root)  # still valid
    return root


@pytest.fixture(scope="module")
def bare_report(bare_template):
    return suggest_problems(load_spec(bare_template), bare_template)


@pytest.fixture
def bare_demo(bare_template, tmp_path):
    root = tmp_path / "bare"
    shutil.copytree(bare_template, root)
    return root


def _find(report, family: str, **label):
    for s in report:
        if s.family == family and all(s.problem["label"].get(k) == v for k, v in label.items()):
            return s
    raise AssertionError(f"no {family} suggestion")


def _number(project: Project, family: str, **label) -> int:
    return _find(project.suggest(), family, **label).rank


def _keeps_old_lines(old: str, new: str) -> None:
    """Every line of the old text is still there, in order (only lines were added)."""
    new_lines = iter(new.splitlines())
    for line in old.splitlines():
        assert any(line == candidate for candidate in new_lines), f"lost line: {line!r}"


def test_apply_churn_validates_builds_and_matches_readiness(bare_demo):
    project = Project(bare_demo)
    old = (bare_demo / "cycleml.yaml").read_text()
    n = _number(project, "churn", kind="inactivity", source="events")
    suggestion = project.suggest()[n - 1]
    applied = project.apply_suggestion(n)
    assert applied.suggestion.name == suggestion.name
    new = (bare_demo / "cycleml.yaml").read_text()
    _keeps_old_lines(old, new)
    assert "# The cycleml demo product" in new
    spec = load_spec(bare_demo)
    assert spec.problems[suggestion.name].label.kind == "inactivity"
    Project(bare_demo).validate()
    dataset = Project(bare_demo).build_dataset(suggestion.name)
    # The dataset builder (separate code) agrees with the readiness figures.
    assert dataset.rows == suggestion.readiness["examples"]
    assert dataset.cutoffs == suggestion.readiness["cutoffs"]


def test_apply_twice_or_a_clashing_name_is_refused_untouched(bare_demo, bare_report):
    project = Project(bare_demo)
    n = _find(bare_report, "conversion", kind="event_within", event_types=["purchase"]).rank
    project.apply_suggestion(n)
    path = bare_demo / "cycleml.yaml"
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    with pytest.raises(SuggestionConflictError, match="already in cycleml.yaml") as info:
        Project(bare_demo).apply_suggestion(n)
    assert info.value.hint
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime
    # A name taken after the suggestions were computed (edited by hand in between).
    value = _find(bare_report, "value")
    text = path.read_text().replace(
        "\nproblems:\n",
        f"\nproblems:\n  {value.name}:\n    entity: user_id\n    task: regression\n"
        "    label: {kind: column, source: users, column: age}\n    features: [activity]\n",
    )
    path.write_text(text)
    before = path.read_bytes()
    with pytest.raises(
        SuggestionConflictError, match=f"already has a problem named '{value.name}'"
    ):
        apply_suggestion(bare_demo, value)
    assert path.read_bytes() == before
    # Computed afresh, the suggestion gets a free name instead.
    again = suggest_problems(load_spec(bare_demo), bare_demo)
    renamed = next(s for s in again if s.family == "value")
    assert renamed.name == f"{value.name}_2" and renamed.defined_as is None


def test_unknown_number_is_a_clear_error(bare_demo):
    with pytest.raises(NotFoundError, match="numbered 1 to"):
        Project(bare_demo).apply_suggestion(999)


def test_apply_column_problem_builds(bare_demo, bare_report):
    suggestion = _find(bare_report, "column", kind="column", source="users", column="age")
    applied = apply_suggestion(bare_demo, suggestion)
    spec = load_spec(bare_demo)
    for group in applied.added_features:
        assert group in spec.features
    dataset = Project(bare_demo).build_dataset(suggestion.name)
    assert dataset.rows == suggestion.readiness["examples"]


@pytest.mark.parametrize(
    ("family", "label"),
    [
        ("conversion", {"kind": "event_within", "event_types": ["purchase"]}),
        ("value", {"kind": "sum_within", "column": "value"}),
        ("ranking", {"kind": "click", "column": "clicked"}),
    ],
)
def test_apply_event_problems_validate_and_build(bare_demo, bare_report, family, label):
    suggestion = _find(bare_report, family, **label)
    apply_suggestion(bare_demo, suggestion)
    name = suggestion.name
    assert name in load_spec(bare_demo).problems  # validates today
    try:
        dataset = Project(bare_demo).build_dataset(name)
    except (AssertionError, NotImplementedError) as exc:  # the label's SQL is not in yet
        pytest.xfail(f"label kind {label['kind']} is not implemented yet ({exc!r})")
    # The dataset builder (separate code) agrees with the readiness figures.
    assert dataset.rows == suggestion.readiness["examples"]


def test_cli_suggest_json_and_apply(bare_demo):
    runner = CliRunner()
    result = runner.invoke(app, ["suggest", "--project", str(bare_demo), "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    first = body["suggestions"][0]
    result = runner.invoke(app, ["suggest", "-p", str(bare_demo), "--apply", first["name"]])
    assert result.exit_code == 0, result.output
    assert f"added problem {first['name']}" in result.output
    assert first["name"] in load_spec(bare_demo).problems
    result = runner.invoke(app, ["suggest", "-p", str(bare_demo), "--apply", "1"])
    assert result.exit_code == 2
    assert "error:" in result.output and "hint:" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["suggest", "-p", str(bare_demo), "--apply", "99", "--json"])
    assert result.exit_code == 5
    assert json.loads(result.output)["error"] == "NotFoundError"
    result = runner.invoke(app, ["suggest", "-p", str(bare_demo)])
    assert result.exit_code == 0
    assert "1. " in result.output and "why:" in result.output and "readiness:" in result.output


def test_apply_keeps_windows_line_endings(bare_demo, bare_report):
    path = bare_demo / "cycleml.yaml"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    suggestion = _find(bare_report, "conversion", kind="event_within", event_types=["purchase"])
    apply_suggestion(bare_demo, suggestion)
    data = path.read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n")
    assert suggestion.name in load_spec(bare_demo).problems
