"""`cycleml init` (starter and demo), then `validate` and `sources` on what it wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cycleml import Project, __version__
from cycleml._init import init_project
from cycleml.cli import app
from cycleml.errors import RequestError
from cycleml.spec import load_spec

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"cycleml {__version__}\n"


def test_no_arguments_shows_help() -> None:
    result = runner.invoke(app, [])
    assert "validate" in result.output and "init" in result.output


def test_init_writes_a_starter_spec_that_loads(tmp_path: Path) -> None:
    root = tmp_path / "my-shop"
    result = runner.invoke(app, ["init", str(root)])
    assert result.exit_code == 0, result.output
    assert f"wrote {root / 'cycleml.yaml'}" in result.stdout.replace("\n", "")
    spec = load_spec(root)
    assert spec.name == "my_shop" and spec.sources == {} and spec.problems == {}
    text = (root / "cycleml.yaml").read_text(encoding="utf-8")
    assert "docs/spec.md" in text and "# churn:" in text  # a commented starter
    validated = runner.invoke(app, ["validate", "-p", str(root)])
    assert validated.exit_code == 0 and validated.stdout.startswith("ok: my_shop:")
    assert not (root / ".cycleml").exists()


@pytest.mark.parametrize(
    ("folder", "name"),
    [("shop", "shop"), ("2026 plans", "p_2026_plans"), ("café", "caf"), ("---", "project")],
)
def test_starter_name_is_a_valid_spec_name(tmp_path: Path, folder: str, name: str) -> None:
    init_project(tmp_path / folder)
    assert load_spec(tmp_path / folder).name == name


def test_init_twice_refuses_without_force(tmp_path: Path) -> None:
    root = tmp_path / "p"
    assert runner.invoke(app, ["init", str(root)]).exit_code == 0
    spec_path = root / "cycleml.yaml"
    spec_path.write_text(spec_path.read_text() + "# my edit\n", encoding="utf-8")

    again = runner.invoke(app, ["init", str(root)])
    assert again.exit_code == 2
    assert again.stderr.startswith(f"error: {spec_path} already exists")
    assert "--force" in again.stderr and "Traceback" not in again.output
    assert spec_path.read_text().endswith("# my edit\n")  # untouched

    as_json = runner.invoke(app, ["init", str(root), "--json"])
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout)["error"] == "RequestError"

    forced = runner.invoke(app, ["init", str(root), "--force"])
    assert forced.exit_code == 0
    assert not spec_path.read_text().endswith("# my edit\n")
    load_spec(root)


def test_init_into_a_file_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "afile"
    target.write_text("x", encoding="utf-8")
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 2 and result.stderr.startswith("error: ")
    assert "not a folder" in result.stderr and "Traceback" not in result.output
    with pytest.raises(RequestError):
        init_project(target / "below")


def test_init_json(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "p"), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "spec": str(tmp_path / "p" / "cycleml.yaml"),
        "demo": False,
    }


def test_init_demo_validates_and_lists_its_sources(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    made = runner.invoke(app, ["init", str(root), "--demo", "--users", "300", "--json"])
    assert made.exit_code == 0, made.output
    made_body = json.loads(made.stdout)
    assert made_body["demo"] is True and made_body["rows"]["users"] == 300

    validated = runner.invoke(app, ["validate", "--project", str(root)])
    assert validated.exit_code == 0, validated.output
    assert validated.stdout.startswith("ok: demo_shop: 4 source(s), 1 problem(s), 3 feature")

    listed = runner.invoke(app, ["sources", "--project", str(root), "--json"])
    assert listed.exit_code == 0, listed.output
    sources = {s["name"]: s for s in json.loads(listed.stdout)}
    assert set(sources) == {"users", "events", "products", "impressions"}
    assert sources["users"]["rows"] == 300
    assert {name: s["rows"] for name, s in sources.items()} == made_body["rows"]
    assert sources["users"]["columns"]["user_id"] == "VARCHAR"
    assert {"user_id", "ts", "event_type", "source", "value"} <= set(sources["events"]["columns"])
    assert sources["events"]["columns"]["ts"].startswith("TIMESTAMP")
    assert all(s["error"] is None for s in sources.values())
    assert sources["events"]["entity"] == "user_id" and sources["events"]["time"] == "ts"
    assert not (root / ".cycleml" / "store.db").exists()  # validate/sources write no store


def test_sources_table_output(demo_template: Path) -> None:
    result = runner.invoke(app, ["sources", "-p", str(demo_template)], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    for name in ("users", "events", "products", "impressions"):
        assert name in result.stdout
    assert "user_id:VARCHAR" in result.stdout


def test_project_api_matches_the_cli(demo_template: Path) -> None:
    cli = json.loads(runner.invoke(app, ["sources", "-p", str(demo_template), "--json"]).stdout)
    project = Project(demo_template)
    assert cli == [info.to_dict() for info in project.sources()]
