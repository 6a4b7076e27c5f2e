"""`clean apply`: records the step in cycleml.yaml (comments kept), validates first, refuses a
suggestion the data no longer supports, and never leaves a half-written file."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cycleml import Project
from cycleml.cli import app
from cycleml.data._cleaning_apply import record_step
from cycleml.errors import DataError, NotFoundError, RequestError, SourceError, SpecError

SPEC = """\
# a comment that must survive
spec_version: 1
name: t
sources:
  t: {path: t.csv, entity: user_id}   # inline comment
"""


def _csv(with_legacy: bool = True) -> str:
    rows = ["user_id,plan,legacy_id"] if with_legacy else ["user_id,plan"]
    for i in range(50):
        rows.append(f"{i},basic," if with_legacy else f"{i},basic")
    return "\n".join(rows) + "\n"


def _files(root: Path) -> set[str]:
    return {p.name for p in root.iterdir()}


def test_apply_records_the_step_keeping_comments(write_project) -> None:
    root = write_project(SPEC, {"t.csv": _csv()})
    project = Project(root)
    ids = [s["id"] for s in project.clean_suggestions("t")]
    assert "t.drop_empty.legacy_id" in ids
    result = project.apply_cleaning("t.drop_empty.legacy_id")
    assert result["applied"] is True
    text = (root / "cycleml.yaml").read_text()
    assert text.startswith("# a comment that must survive\n")
    assert "# inline comment" in text
    spec = Project(root).spec
    assert [s.id for s in spec.cleaning] == ["t.drop_empty.legacy_id"]
    assert spec.cleaning[0].columns == ["legacy_id"]
    # the view no longer has the column; the file still does
    assert "legacy_id" not in project.open_sources().columns("t")
    assert "legacy_id" in (root / "t.csv").read_text()
    # and the suggestion is gone
    assert "t.drop_empty.legacy_id" not in [s["id"] for s in Project(root).clean_suggestions()]


def test_applying_twice_is_a_no_op(write_project) -> None:
    root = write_project(SPEC, {"t.csv": _csv()})
    Project(root).apply_cleaning("t.drop_empty.legacy_id")
    before = (root / "cycleml.yaml").read_bytes()
    again = Project(root).apply_cleaning("t.drop_empty.legacy_id")
    assert again["applied"] is False and "already" in again["message"]
    assert (root / "cycleml.yaml").read_bytes() == before


def test_a_file_that_changes_between_profile_and_apply_is_refused(write_project) -> None:
    root = write_project(SPEC, {"t.csv": _csv()})
    project = Project(root)
    assert "t.drop_empty.legacy_id" in [s["id"] for s in project.clean_suggestions()]
    (root / "t.csv").write_text(_csv(with_legacy=False))  # the column is gone
    before = (root / "cycleml.yaml").read_bytes()
    with pytest.raises(DataError, match="no longer holds") as info:
        project.apply_cleaning("t.drop_empty.legacy_id")
    assert "clean suggest" in info.value.hint
    assert (root / "cycleml.yaml").read_bytes() == before


def test_unknown_and_informational_ids(write_project) -> None:
    root = write_project(SPEC, {"t.csv": _csv()})
    project = Project(root)
    with pytest.raises(NotFoundError):
        project.apply_cleaning("nosuch.drop_empty.x")
    with pytest.raises(NotFoundError, match="unknown rule"):
        project.apply_cleaning("t.nosuchrule.x")


def test_informational_suggestions_are_not_recorded(write_project) -> None:
    spec = (
        SPEC
        + """problems:
  p:
    entity: user_id
    task: binary
    label: {kind: column, source: t, column: label}
    features: [g]
features:
  g: {source: t, columns: [plan]}
"""
    )
    rows = ["user_id,plan,label"] + [f"{i},basic,{int(i % 20 == 0)}" for i in range(100)]
    root = write_project(spec, {"t.csv": "\n".join(rows) + "\n"})
    project = Project(root)
    info = [s for s in project.clean_suggestions("t") if s["applies_in"] == "info"]
    assert [s["id"] for s in info] == ["t.class_imbalance.p"]
    before = (root / "cycleml.yaml").read_bytes()
    with pytest.raises(RequestError, match="informational") as raised:
        project.apply_cleaning("t.class_imbalance.p")
    assert "PR-AUC" in raised.value.hint
    assert (root / "cycleml.yaml").read_bytes() == before


def test_a_step_that_breaks_the_spec_is_refused_and_nothing_is_written(write_project) -> None:
    root = write_project(SPEC, {"t.csv": _csv()})
    before = (root / "cycleml.yaml").read_bytes()
    files = _files(root)
    with pytest.raises(SpecError):
        record_step(root, {"id": "t.x", "source": "t", "action": "drop_columns", "columns": []})
    with pytest.raises(SpecError):  # drops the source's entity column
        record_step(
            root, {"id": "t.x", "source": "t", "action": "drop_columns", "columns": ["user_id"]}
        )
    with pytest.raises(SourceError, match="does not have"):  # valid spec, unknown column
        record_step(
            root, {"id": "t.x", "source": "t", "action": "drop_columns", "columns": ["nope"]}
        )
    assert (root / "cycleml.yaml").read_bytes() == before
    assert _files(root) == files  # no temporary file left behind


def test_apply_on_the_demo_then_dataset_build_still_works(demo_project: Path) -> None:
    project = Project(demo_project)
    first = project.build_dataset("churn")
    ids = [s["id"] for s in project.clean_suggestions("users")]
    assert "users.remove_outliers.age" in ids
    result = project.apply_cleaning("users.remove_outliers.age")
    step = result["step"]
    project = Project(demo_project)  # a fresh load validates the new spec
    assert project.validate()
    with project.open_sources() as sources:
        sources.view("users")
        ages = sources.con.sql("SELECT age FROM users WHERE age IS NOT NULL").df()["age"]
        raw = pd.read_parquet(demo_project / "data/users.parquet")
    assert ages.between(step["lower"], step["upper"]).all()
    assert len(ages) < raw["age"].notna().sum()
    second = project.build_dataset("churn")
    assert second.id != first.id  # the cleaned view makes a new dataset version
    runner = CliRunner()
    built = runner.invoke(app, ["dataset", "build", "churn", "-p", str(demo_project), "--json"])
    assert built.exit_code == 0, built.output


def test_cli_suggest_and_apply(write_project) -> None:
    root = write_project(SPEC, {"t.csv": _csv()})
    runner = CliRunner()
    shown = runner.invoke(app, ["clean", "suggest", "-p", str(root), "--json"])
    assert shown.exit_code == 0, shown.output
    ids = [s["id"] for s in json.loads(shown.output)["suggestions"]]
    assert "t.drop_empty.legacy_id" in ids
    table = runner.invoke(app, ["clean", "suggest", "t", "-p", str(root)])
    assert table.exit_code == 0 and "t.drop_empty.legacy_id" in table.output
    done = runner.invoke(app, ["clean", "apply", "t.drop_empty.legacy_id", "-p", str(root)])
    assert done.exit_code == 0 and "recorded" in done.output
    again = runner.invoke(app, ["clean", "apply", "t.drop_empty.legacy_id", "-p", str(root)])
    assert again.exit_code == 0 and "already" in again.output
    bad = runner.invoke(app, ["clean", "apply", "t.drop_empty.nope", "-p", str(root), "--json"])
    assert bad.exit_code == DataError.exit_code
    assert json.loads(bad.output)["error"] == "DataError"
    assert "Traceback" not in bad.output
    unknown = runner.invoke(app, ["clean", "suggest", "nosuch", "-p", str(root)])
    assert unknown.exit_code == SourceError.exit_code and "Traceback" not in unknown.output


def test_data_changed_since_the_stored_profile_is_noticed_and_nothing_is_written(
    write_project,
) -> None:
    """`profile` records a fingerprint of the data with its suggestions; when the file changes
    afterwards (here: the suggestion would still hold) `clean apply` says the data changed and
    writes nothing. Profiling again makes the apply go through."""
    import os
    import time

    root = write_project(SPEC, {"t.csv": _csv()})
    project = Project(root)
    (profile,) = project.profile("t")
    ids = {s["id"]: s for s in profile["cleaning_suggestions"]}
    fingerprint = ids["t.drop_empty.legacy_id"]["fingerprint"]
    assert fingerprint and fingerprint == profile["fingerprint"]
    changed = _csv() + "50,pro,\n"  # one more row, the column still empty
    (root / "t.csv").write_text(changed)
    stat = (root / "t.csv").stat()
    os.utime(root / "t.csv", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    before = (root / "cycleml.yaml").read_bytes()
    with pytest.raises(DataError, match="changed since it was profiled") as info:
        project.apply_cleaning("t.drop_empty.legacy_id")
    assert "cycleml profile t" in info.value.hint
    assert fingerprint in info.value.message
    assert (root / "cycleml.yaml").read_bytes() == before
    # the same through the CLI: exit code of DataError, no traceback, file untouched
    runner = CliRunner()
    result = runner.invoke(app, ["clean", "apply", "t.drop_empty.legacy_id", "-p", str(root)])
    assert result.exit_code != 0 and "changed since it was profiled" in result.output
    assert "Traceback" not in result.output
    assert (root / "cycleml.yaml").read_bytes() == before
    time.sleep(0.01)
    project.profile("t")  # the current data are profiled: the apply goes through
    assert project.apply_cleaning("t.drop_empty.legacy_id")["applied"] is True


def test_an_explicit_fingerprint_of_other_data_is_refused(write_project) -> None:
    root = write_project(SPEC, {"t.csv": _csv()})
    project = Project(root)
    (found,) = [s for s in project.clean_suggestions("t") if s["id"] == "t.drop_empty.legacy_id"]
    before = (root / "cycleml.yaml").read_bytes()
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["clean", "apply", found["id"], "--fingerprint", "0" * 16, "-p", str(root)],
    )
    assert result.exit_code != 0 and "changed since it was profiled" in result.output
    assert "clean suggest t" in result.output
    assert (root / "cycleml.yaml").read_bytes() == before
    result = runner.invoke(
        app,
        ["clean", "apply", found["id"], "--fingerprint", found["fingerprint"], "-p", str(root)],
    )
    assert result.exit_code == 0, result.output
    assert [s.id for s in Project(root).spec.cleaning] == ["t.drop_empty.legacy_id"]
