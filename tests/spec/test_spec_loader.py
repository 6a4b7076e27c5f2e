"""Loading cycleml.yaml: frozen models, every problem at once with key path and line, hints."""

from __future__ import annotations

import textwrap
from datetime import date, timedelta
from pathlib import Path

import pydantic
import pytest

import cycleml
from cycleml._init import DEMO, STARTER
from cycleml.errors import SpecError, SpecIssue, SpecNotFoundError
from cycleml.spec import (
    LABEL_KINDS,
    SPEC_FILE,
    InactivityLabel,
    Spec,
    load_spec,
    parse_duration,
    parse_spec,
    spec_hash,
)

GOOD = """\
spec_version: 1
name: shop
sources:
  users: {path: data/users.csv, entity: user_id, time: signup_at}
  events: {path: data/events.csv, entity: user_id, time: ts}
  ab: {path: data/ab.csv, entity: user_id}
problems:
  churn:
    entity: user_id
    task: binary
    label: {kind: inactivity, source: events, days: 30}
    cutoffs: {every: 7d, start: 2024-01-01, end: 2024-06-30}
    metric: {name: recall, goal: 0.7}
    features: [profile, activity]
features:
  profile:
    source: users
    columns: [plan]
    dates: {signup_at: [month, days_since]}
  activity:
    source: events
    windows: [7d, 30d]
    aggregate: {count: "*", sum: value}
    by: {source: [google, facebook]}
    recency: true
training: {split: time, algorithms: [baseline, logistic]}
experiments:
  offer:
    source: ab
    unit: user_id
    variant: variant
    control: A
    metrics: {converted: {type: proportion, column: converted}}
    weights: {A: 0.5, B: 0.5}
"""


def spec_error(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_spec(textwrap.dedent(text))
    return info.value


def by_path(error: SpecError) -> dict[str, SpecIssue]:
    return {issue.path: issue for issue in error.issues}


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line of ``text`` containing ``needle``."""
    for number, line in enumerate(textwrap.dedent(text).splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in text")


# -- a valid spec ----------------------------------------------------------------------------------


def test_a_valid_spec_loads_into_typed_models() -> None:
    spec = parse_spec(GOOD)
    assert isinstance(spec, Spec)
    assert spec.name == "shop" and spec.store == "sqlite:///.cycleml/store.db"
    assert list(spec.sources) == ["users", "events", "ab"]
    churn = spec.problems["churn"]
    assert isinstance(churn.label, InactivityLabel) and churn.label.days == 30
    assert churn.cutoffs is not None and churn.cutoffs.start == date(2024, 1, 1)
    assert churn.metric.name == "recall" and churn.metric.goal == 0.7
    assert spec.features["activity"].aggregate_items() == [("count", "*"), ("sum", "value")]
    assert spec.training.algorithms == ["baseline", "logistic"]
    assert spec.experiments["offer"].primary_metric == "converted"


@pytest.mark.parametrize(
    ("target", "attribute", "value"),
    [
        (lambda s: s, "name", "other"),
        (lambda s: s.sources["users"], "entity", "uid"),
        (lambda s: s.problems["churn"], "task", "regression"),
        (lambda s: s.problems["churn"].label, "days", 7),
        (lambda s: s.features["activity"], "recency", False),
        (lambda s: s.training, "seed", 3),
    ],
)
def test_models_are_frozen(target, attribute, value) -> None:
    model = target(parse_spec(GOOD))
    before = getattr(model, attribute)
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        setattr(model, attribute, value)
    assert getattr(model, attribute) == before


def test_spec_hash_follows_meaning_not_formatting() -> None:
    reformatted = GOOD.replace("{split: time, algorithms: [baseline, logistic]}", "").replace(
        "training: ", "training:\n  split: time\n  algorithms:\n    - baseline\n    - logistic\n"
    )
    assert reformatted != GOOD
    assert spec_hash(parse_spec(reformatted)) == spec_hash(parse_spec(GOOD))
    assert spec_hash(parse_spec(GOOD.replace("days: 30", "days: 31"))) != spec_hash(
        parse_spec(GOOD)
    )


def test_project_opens_a_folder_with_a_valid_spec(write_project) -> None:
    root = write_project(GOOD)
    project = cycleml.Project(root)
    assert project.path == root.resolve()
    assert project.spec == load_spec(root)
    assert not (root / ".cycleml").exists()  # opening a project writes nothing


def test_empty_sections_read_as_empty() -> None:
    spec = parse_spec("spec_version: 1\nname: x\nsources:\nproblems:\nfeatures:\ntraining:\n")
    assert spec.sources == {} and spec.problems == {} and spec.features == {}
    assert spec.training.split == "time"


def test_init_templates_are_valid_specs() -> None:
    starter = parse_spec(STARTER.format(name="shop"))
    assert starter.name == "shop" and starter.sources == {}
    # Uncommenting the starter's examples gives a valid spec too.
    uncommented = "\n".join(
        line.replace("# ", "", 1) if line.startswith("  # ") else line
        for line in STARTER.format(name="shop").splitlines()
    )
    full = parse_spec(uncommented)
    assert set(full.sources) == {"users", "events", "orders"}
    assert full.problems["churn"].features == ["activity"]
    demo = parse_spec(DEMO.format(seed=0, cutoff_start="2025-03-01"))
    assert demo.problems["churn"].features == ["profile", "activity", "channels"]


# -- every problem at once, with key path and line -------------------------------------------------

MANY = """\
spec_version: 1
name: shop
sources:
  events: {path: e.csv, entity: user_id, time: ts}
problems:
  churn:
    entity: user_id
    task: binary
    label: {kind: inactivity, source: events, dayz: 30}
    cutoffs: {every: 7x, start: 2024-01-01}
    features: [activty]
features:
  activity:
    source: evnts
    windows: [7d]
    aggregate: {count: "*"}
training:
  test_size: lots
"""


def test_every_problem_is_reported_at_once_with_path_and_line() -> None:
    error = spec_error(MANY)
    issues = by_path(error)
    assert set(issues) == {
        "problems.churn.label.dayz",  # unknown key
        "problems.churn.label.days",  # ... so the required key is missing
        "problems.churn.cutoffs.every",  # bad duration
        "problems.churn.features.0",  # unknown feature group
        "features.activity.source",  # unknown source
        "training.test_size",  # wrong type
    }
    assert len(error.issues) == 6 and "6 problem(s)" in error.message
    assert issues["problems.churn.label.dayz"].line == line_of(MANY, "dayz")
    assert issues["problems.churn.label.days"].line == line_of(MANY, "dayz")
    assert issues["problems.churn.cutoffs.every"].line == line_of(MANY, "every: 7x")
    assert issues["problems.churn.features.0"].line == line_of(MANY, "[activty]")
    assert issues["features.activity.source"].line == line_of(MANY, "source: evnts")
    assert issues["training.test_size"].line == line_of(MANY, "test_size")
    assert all(issue.hint for issue in error.issues)
    assert error.hint
    # The text form names each path and line (what the CLI prints).
    text = str(error)
    assert "problems.churn.label.dayz (line 9)" in text and "training.test_size (line 18)" in text


def test_unknown_key_names_the_closest_valid_key() -> None:
    issue = by_path(spec_error(MANY))["problems.churn.label.dayz"]
    assert issue.message == "unknown key 'dayz'"
    assert "did you mean 'days'?" in issue.hint
    assert "event_types" in issue.hint  # and lists the valid keys


def test_unknown_top_level_key() -> None:
    issue = by_path(spec_error("spec_version: 1\nname: x\nsorces: {}\n"))["sorces"]
    assert issue.line == 3 and "did you mean 'sources'?" in issue.hint


def test_wrong_type_says_what_it_got() -> None:
    issue = by_path(spec_error(MANY))["training.test_size"]
    assert "valid number" in issue.message and "'lots'" in issue.message


@pytest.mark.parametrize(
    ("snippet", "path"),
    [
        ("training: {seed: [1]}", "training.seed"),
        ("training: {algorithms: logistic}", "training.algorithms"),
        ("training: {algorithms: [logistic, xgboostt]}", "training.algorithms.1"),
        ("monitoring: {alpha: 0.9}", "monitoring.alpha"),
        ("sources: [users, events]", "sources"),
        ("name: 12", "name"),
    ],
)
def test_wrong_types_are_located(snippet: str, path: str) -> None:
    head = "spec_version: 1\n" + ("" if snippet.startswith("name") else "name: x\n")
    error = spec_error(head + snippet + "\n")
    assert [i.path for i in error.issues] == [path]
    assert error.issues[0].line is not None


def test_unknown_feature_group_names_the_close_one() -> None:
    issue = by_path(spec_error(MANY))["problems.churn.features.0"]
    assert issue.message == "unknown feature group 'activty'"
    assert "did you mean 'activity'?" in issue.hint


def test_unknown_feature_group_is_found_in_an_otherwise_valid_spec() -> None:
    text = GOOD.replace("features: [profile, activity]", "features: [profile, activitee]")
    error = spec_error(text)
    assert [i.path for i in error.issues] == ["problems.churn.features.1"]
    assert "did you mean 'activity'?" in error.issues[0].hint
    assert error.issues[0].line == line_of(text, "activitee")


def test_unknown_sources_are_reported_next_to_type_errors() -> None:
    text = GOOD.replace("source: events, days: 30", "source: evnts, days: many").replace(
        "    source: ab\n", "    source: abb\n"
    )
    paths = {i.path for i in spec_error(text).issues}
    assert paths == {
        "problems.churn.label.days",
        "problems.churn.label.source",
        "experiments.offer.source",
    }


def test_a_duplicate_key_is_an_error_not_silently_dropped() -> None:
    text = GOOD + "sources:\n  other: {path: o.csv}\n"
    error = spec_error(text)
    issue = by_path(error)["sources"]
    assert "twice" in issue.message and "line 3" in issue.message
    assert issue.line == text.count("\n") - 1


# -- YAML syntax ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("spec_version: 1\nname: shop\nsources:\n  a: [1, 2\n  b: 3\n", 5),
        ("spec_version: 1\n\tname: x\n", 2),
        ("spec_version: 1\nname: x\nsources: {a: 1\n", 4),
        ("spec_version: 1\nname: x\x07\n", 2),  # a control character (a reader error)
        ("spec_version: 1\nname: !!python/object:os.system x\n", 2),  # no unsafe tags
    ],
)
def test_yaml_syntax_error_reports_its_line(text: str, line: int) -> None:
    error = spec_error(text)
    assert "not valid YAML" in error.message and error.hint
    assert len(error.issues) == 1 and error.issues[0].line == line


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just text\n"])
def test_a_spec_that_is_not_a_mapping(text: str) -> None:
    error = spec_error(text)
    assert "must be a mapping" in error.message and "cycleml init" in error.hint


def test_missing_required_keys() -> None:
    paths = {i.path for i in spec_error("sources: {}\n").issues}
    assert paths == {"spec_version", "name"}


def test_unsupported_spec_version() -> None:
    issue = by_path(spec_error("spec_version: 2\nname: x\n"))["spec_version"]
    assert "1" in issue.message and issue.line == 1


@pytest.mark.parametrize("name", ["my shop", "1shop", "shop-1"])
def test_invalid_names(name: str) -> None:
    error = spec_error(f"spec_version: 1\nname: x\nsources:\n  '{name}': {{path: a.csv}}\n")
    assert [(i.path, i.line) for i in error.issues] == [(f"sources.{name}", 4)]
    assert error.issues[0].message == f"{name!r} is not a valid name"
    assert "letters, digits" in error.issues[0].hint
    # the project's own name follows the same rule
    assert by_path(spec_error(f"spec_version: 1\nname: '{name}'\n"))["name"].line == 2


def test_source_needs_exactly_one_location() -> None:
    text = (
        "spec_version: 1\nname: x\nsources:\n  a: {path: a.csv, url: 'sqlite:///d.db', table: t}"
        "\n  b: {entity: id}\n  c: {url: 'sqlite:///d.db'}\n"
    )
    issues = by_path(spec_error(text))
    assert set(issues) == {"sources.a", "sources.b", "sources.c"}
    assert "exactly one of `path`" in issues["sources.a"].message
    assert "needs `table`" in issues["sources.c"].message
    assert [issues[k].line for k in ("sources.a", "sources.b", "sources.c")] == [4, 5, 6]


# -- durations -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("2w", timedelta(weeks=2)),
        ("90m", timedelta(minutes=90)),
        (" 7d ", timedelta(days=7)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["7x", "0d", "-3d", "1y", "7 days", "d", "1.5d", ""])
def test_bad_duration_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match="duration|longer than zero"):
        parse_duration(text)


@pytest.mark.parametrize("every", ["7x", "0d", "1y", "'7 days'"])
def test_bad_durations_in_the_spec(every: str) -> None:
    text = GOOD.replace("every: 7d", f"every: {every}").replace(
        "windows: [7d, 30d]", f"windows: [7d, {every}]"
    )
    issues = by_path(spec_error(text))
    assert set(issues) == {"problems.churn.cutoffs.every", "features.activity.windows.1"}
    assert issues["problems.churn.cutoffs.every"].line == line_of(text, "cutoffs:")
    shown = repr(every.strip("'"))
    assert shown in issues["problems.churn.cutoffs.every"].message  # names the bad value
    assert shown in issues["features.activity.windows.1"].message


def test_cutoff_end_before_start() -> None:
    text = GOOD.replace("end: 2024-06-30", "end: 2023-06-30")
    issue = by_path(spec_error(text))["problems.churn.cutoffs"]
    assert "`end` must be after `start`" in issue.message


# -- experiments and labels ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ("{A: 0.5, B: 0.6}", "sum to 1 (they sum to 1.1)"),
        ("{A: 0.3}", "sum to 1 (they sum to 0.3)"),
        ("{A: 1.5, B: -0.5}", "cannot be negative"),
    ],
)
def test_experiment_weights_must_sum_to_one(weights: str, message: str) -> None:
    text = GOOD.replace("weights: {A: 0.5, B: 0.5}", f"weights: {weights}")
    issue = by_path(spec_error(text))["experiments.offer.weights"]
    assert message in issue.message
    assert issue.line == line_of(text, "weights:")


def test_experiment_primary_must_be_a_metric() -> None:
    text = GOOD.replace("weights: {A: 0.5, B: 0.5}", "primary: revenue")
    issue = by_path(spec_error(text))["experiments.offer"]
    assert "'revenue' is not one of `metrics`" in issue.message


def test_unknown_label_kind() -> None:
    text = GOOD.replace("kind: inactivity", "kind: churn")
    error = spec_error(text)
    assert [i.path for i in error.issues] == ["problems.churn.label"]
    issue = error.issues[0]
    assert "'churn'" in issue.message and all(k in issue.hint for k in LABEL_KINDS)
    assert issue.line == line_of(text, "label:")


def test_missing_label_kind() -> None:
    text = GOOD.replace("kind: inactivity, ", "")
    issue = by_path(spec_error(text))["problems.churn.label"]
    assert "`kind`" in issue.message and all(k in issue.hint for k in LABEL_KINDS)


def test_errors_inside_a_label_use_the_label_path() -> None:
    text = GOOD.replace("days: 30", "days: -2, colour: red")
    issues = by_path(spec_error(text))
    assert set(issues) == {"problems.churn.label.days", "problems.churn.label.colour"}
    assert "greater than 0" in issues["problems.churn.label.days"].message


def test_cross_checks_of_a_parsed_spec() -> None:
    text = GOOD.replace("task: binary", "task: regression").replace(
        "    cutoffs: {every: 7d, start: 2024-01-01, end: 2024-06-30}\n", ""
    )
    issues = by_path(spec_error(text))
    assert set(issues) == {"problems.churn.task", "problems.churn.cutoffs"}
    assert "binary" in issues["problems.churn.task"].hint


# -- the file -------------------------------------------------------------------------------------


def test_no_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecNotFoundError) as info:
        load_spec(tmp_path)
    assert str(tmp_path.resolve()) in info.value.message
    assert "cycleml init" in info.value.hint
    with pytest.raises(SpecNotFoundError):
        cycleml.Project(tmp_path / "nowhere")


def test_spec_file_is_read_from_the_folder(write_project) -> None:
    root = write_project(GOOD)
    assert load_spec(root).name == "shop"
    (root / SPEC_FILE).write_text("spec_version: 1\nname: [\n", encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(root)
    assert str(root / SPEC_FILE) in info.value.message  # names the file


def test_spec_file_that_is_not_utf8(write_project) -> None:
    root = write_project("")
    (root / SPEC_FILE).write_bytes(b"spec_version: 1\nname: caf\xe9\n")
    with pytest.raises(SpecError) as info:
        load_spec(root)
    assert "UTF-8" in info.value.message and info.value.hint


# -- the error tree -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "builtin", "status", "code"),
    [
        (cycleml.SpecError, ValueError, 422, 2),
        (cycleml.SpecNotFoundError, FileNotFoundError, 404, 2),
        (cycleml.SourceError, ValueError, 422, 3),
        (cycleml.StoreError, RuntimeError, 503, 4),
        (cycleml.NotFoundError, LookupError, 404, 5),
        (cycleml.DataError, ValueError, 422, 6),
        (cycleml.ModelError, RuntimeError, 500, 7),
        (cycleml.IntegrityError, RuntimeError, 500, 7),
        (cycleml.RequestError, ValueError, 400, 2),
        (cycleml.PayloadTooLargeError, ValueError, 413, 2),
    ],
)
def test_error_tree(cls, builtin, status, code) -> None:
    error = cls("it broke", hint="do this")
    assert isinstance(error, cycleml.CycleMLError) and isinstance(error, builtin)
    assert (error.http_status, error.exit_code) == (status, code)
    assert error.to_dict()["error"] == cls.__name__
    assert error.to_dict()["message"] == "it broke" and error.to_dict()["hint"] == "do this"


def test_spec_not_found_is_also_a_spec_error() -> None:
    assert issubclass(SpecNotFoundError, SpecError) and issubclass(SpecNotFoundError, ValueError)


def test_spec_error_carries_its_issues() -> None:
    issue = SpecIssue("problems.churn.label.days", "this key is required", "add it", 9)
    error = SpecError("bad", issues=[issue])
    body = error.to_dict()
    assert body["issues"] == [
        {"path": "problems.churn.label.days", "message": "this key is required", "hint": "add it"}
        | {"line": 9}
    ]
    assert body["hint"]  # a default hint when issues say what to do
    assert "problems.churn.label.days (line 9): this key is required — add it" in str(error)
