"""The CLI's error behaviour: every bad input of issue 2 gets `error: ...` with the key, path or
name at fault and a hint, a non-zero exit, a JSON body with --json, and never a traceback.

Most cases run in-process through Typer's CliRunner; a batch of real ``python -m cycleml``
processes (run concurrently, once per module) checks the no-traceback guarantee end to end."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cycleml.cli import app

USERS = "user_id,plan,signup_at\nu1,free,2024-01-01\nu2,pro,2024-02-01\n"
EVENTS = "user_id,ts,value\nu1,2024-03-01 10:00:00,1.0\nu2,2024-03-02 11:00:00,2.5\n"
SPEC = """\
spec_version: 1
name: shop
sources:
  users: {path: data/users.csv, entity: user_id, time: signup_at}
  events: {path: data/events.csv, entity: user_id, time: ts}
problems:
  churn:
    entity: user_id
    task: binary
    label: {kind: inactivity, source: events, days: 30}
    cutoffs: {every: 7d, start: 2024-03-01, end: 2024-04-01}
    features: [profile, activity]
features:
  profile:
    source: users
    columns: [plan]
  activity:
    source: events
    windows: [7d, 30d]
    aggregate: {count: "*", sum: value}
training:
  test_size: 0.2
"""
FILES = {"data/users.csv": USERS, "data/events.csv": EVENTS}
UNREACHABLE_STORE = "postgresql+psycopg://nobody@127.0.0.1:1/x"


@dataclass(frozen=True)
class BadInput:
    """A broken project and what the error must name."""

    name: str
    spec: str | None  # None: no cycleml.yaml at all
    must_contain: tuple[str, ...]
    exit_code: int = 2
    command: tuple[str, ...] = ("validate",)
    files: tuple[tuple[str, str], ...] = tuple(FILES.items())
    sqlite_table: bool = False
    line: int | None = None  # the line of cycleml.yaml the error points at
    process: bool = False  # also run as a real `python -m cycleml` process


BAD_INPUTS = [
    BadInput("no_spec", None, ("no cycleml.yaml", "cycleml init"), process=True),
    BadInput(
        "yaml_syntax",
        SPEC.replace("columns: [plan]", "columns: [plan"),
        ("not valid YAML", "fix the YAML syntax"),
        line=17,
        process=True,
    ),
    BadInput(
        "unknown_key",
        SPEC.replace("days: 30", "dayz: 30"),
        ("problems.churn.label.dayz", "unknown key 'dayz'", "did you mean 'days'?"),
        line=10,
    ),
    BadInput(
        "wrong_type",
        SPEC.replace("test_size: 0.2", "test_size: lots"),
        ("training.test_size", "'lots'", "valid number"),
        line=22,
    ),
    BadInput(
        "missing_source_file",
        SPEC,
        ("sources.events", "data/events.csv", "no file matches"),
        files=(("data/users.csv", USERS),),
        process=True,
    ),
    BadInput(
        "missing_table",
        SPEC.replace(
            "users: {path: data/users.csv, entity: user_id, time: signup_at}",
            "users: {url: 'sqlite:///db.sqlite', table: nope, entity: user_id}",
        ),
        ("sources.users", "table 'nope'", "db.sqlite"),
        sqlite_table=True,
        process=True,
    ),
    BadInput(
        "entity_column_missing",
        SPEC.replace("entity: user_id, time: ts", "entity: uid, time: ts"),
        ("sources.events", "entity column 'uid'", "user_id, ts, value"),
        process=True,
    ),
    BadInput(
        "time_column_missing",
        SPEC.replace("entity: user_id, time: ts", "entity: user_id, time: happened_at"),
        ("sources.events", "time column 'happened_at'", "user_id, ts, value"),
    ),
    BadInput(
        "unknown_feature_group",
        SPEC.replace("features: [profile, activity]", "features: [profile, activty]"),
        ("problems.churn.features.1", "unknown feature group 'activty'", "did you mean"),
        line=12,
    ),
    BadInput(
        "unreachable_store",
        SPEC.replace("name: shop\n", f"name: shop\nstore: {UNREACHABLE_STORE}\n"),
        ("cannot reach the store", "127.0.0.1", "store:"),
        exit_code=4,
        command=("models", "list"),
        process=True,
    ),
]

BAD = {bad.name: bad for bad in BAD_INPUTS}


def make_project(root: Path, bad: BadInput) -> Path:
    root.mkdir(parents=True)
    if bad.spec is not None:
        (root / "cycleml.yaml").write_text(bad.spec, encoding="utf-8")
    for name, content in bad.files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    if bad.sqlite_table:
        with sqlite3.connect(root / "db.sqlite") as conn:
            conn.execute("CREATE TABLE users (user_id TEXT, plan TEXT)")
    return root


def assert_clear_error(stdout: str, stderr: str, bad: BadInput) -> None:
    assert stderr.startswith("error: "), stderr
    for needle in bad.must_contain:
        assert needle in stderr, (needle, stderr)
    assert "\nhint: " in stderr
    if bad.line is not None:
        assert f"(line {bad.line})" in stderr
    assert "Traceback" not in stdout + stderr
    assert stdout == ""


# -- in-process: CliRunner -------------------------------------------------------------------------

runner = CliRunner()


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=lambda b: b.name)
def test_bad_input_gets_a_clear_error(tmp_path: Path, bad: BadInput) -> None:
    root = make_project(tmp_path / "p", bad)
    result = runner.invoke(app, [*bad.command, "--project", str(root)])
    assert result.exit_code == bad.exit_code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert_clear_error(result.stdout, result.stderr, bad)
    assert not (root / ".cycleml" / "store.db").exists()  # nothing written to the store


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=lambda b: b.name)
def test_bad_input_with_json_prints_one_error_object(tmp_path: Path, bad: BadInput) -> None:
    root = make_project(tmp_path / "p", bad)
    result = runner.invoke(app, [*bad.command, "--project", str(root), "--json"])
    assert result.exit_code == bad.exit_code
    body = json.loads(result.stdout)  # exactly one JSON document
    assert isinstance(body, dict)
    assert {"error", "message", "hint"} <= set(body)
    assert body["error"].endswith("Error") and body["message"] and body["hint"]
    text = json.dumps(body, ensure_ascii=False).replace('\\"', '"')
    for needle in bad.must_contain:
        assert needle in text, needle
    if bad.line is not None:
        assert bad.line in [issue["line"] for issue in body["issues"]]
    if body["error"] == "SpecError" and bad.name != "no_spec":
        assert body["issues"] and all(
            {"path", "message", "hint", "line"} <= set(i) for i in body["issues"]
        )


def test_json_issues_carry_path_and_line(tmp_path: Path) -> None:
    bad = BAD["unknown_key"]
    root = make_project(tmp_path / "p", bad)
    body = json.loads(runner.invoke(app, ["validate", "-p", str(root), "--json"]).stdout)
    assert body["error"] == "SpecError"
    [issue] = [i for i in body["issues"] if i["path"] == "problems.churn.label.dayz"]
    assert issue["line"] == 10 and "did you mean 'days'?" in issue["hint"]


def test_each_issue_is_printed_on_one_line(tmp_path: Path) -> None:
    """Long issues are not wrapped at the terminal width (so grep and logs see whole lines)."""
    bad = BAD["entity_column_missing"]  # a long message plus a long hint
    root = make_project(tmp_path / "p", bad)
    stderr = runner.invoke(app, ["validate", "-p", str(root)], env={"COLUMNS": "40"}).stderr
    [line] = [ln for ln in stderr.splitlines() if ln.startswith("  - sources.events")]
    assert "entity column 'uid'" in line and "columns are: user_id, ts, value" in line


def test_validate_a_good_project(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", BadInput("good", SPEC, ()))
    result = runner.invoke(app, ["validate", "--project", str(root)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: shop: 2 source(s), 1 problem(s), 2 feature group(s)")
    body = json.loads(runner.invoke(app, ["validate", "-p", str(root), "--json"]).stdout)
    assert body["valid"] is True and [s["rows"] for s in body["sources"]] == [2, 2]


def test_validate_uses_the_current_folder_by_default(tmp_path: Path, monkeypatch) -> None:
    root = make_project(tmp_path / "p", BadInput("good", SPEC, ()))
    monkeypatch.chdir(root)
    monkeypatch.delenv("CYCLEML_PROJECT", raising=False)
    assert runner.invoke(app, ["validate"]).exit_code == 0
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 2 and "no cycleml.yaml" in result.stderr


def test_markup_like_text_in_an_error_is_printed_as_is(tmp_path: Path) -> None:
    spec = SPEC.replace("columns: [plan]", "columns: ['[bold]plan[/]']")
    root = make_project(tmp_path / "p", BadInput("markup", spec, ()))
    result = runner.invoke(app, ["validate", "-p", str(root)])
    assert result.exit_code == 2
    assert "unknown column '[bold]plan[/]'" in result.stderr


def test_sources_reports_an_unreadable_source(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", BadInput("x", SPEC, (), files=(("data/users.csv", USERS),)))
    result = runner.invoke(app, ["sources", "-p", str(root), "--json"])
    assert result.exit_code == 3
    rows = {s["name"]: s for s in json.loads(result.stdout)}
    assert rows["users"]["rows"] == 2 and rows["users"]["error"] is None
    assert rows["events"]["rows"] is None and "data/events.csv" in rows["events"]["error"]


def test_unknown_problem_names_the_close_one(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", BadInput("good", SPEC, ()))
    result = runner.invoke(app, ["train", "chrun", "-p", str(root)])
    assert result.exit_code == 5
    assert result.stderr.startswith("error: unknown problem 'chrun'")
    assert "did you mean 'churn'?" in result.stderr


def test_usage_errors_are_not_tracebacks(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", "--bogus"])
    assert result.exit_code == 2 and "No such option" in result.stderr
    assert "Traceback" not in result.output


# -- unexpected exceptions: `error: internal error`, exit 70, traceback only with CYCLEML_DEBUG ----


@pytest.fixture
def broken_validate(monkeypatch, tmp_path: Path) -> Path:
    from cycleml.project import Project

    def boom(self):
        raise KeyError("surprise")

    monkeypatch.setattr(Project, "validate", boom)
    return make_project(tmp_path / "p", BadInput("good", SPEC, ()))


def test_unexpected_exception_is_an_internal_error(broken_validate: Path, monkeypatch) -> None:
    monkeypatch.delenv("CYCLEML_DEBUG", raising=False)
    result = runner.invoke(app, ["validate", "-p", str(broken_validate)])
    assert result.exit_code == 70
    assert result.stderr.startswith("error: internal error: KeyError: 'surprise'")
    assert "CYCLEML_DEBUG=1" in result.stderr and "\nhint: " in result.stderr
    assert "Traceback" not in result.output


def test_internal_error_as_json(broken_validate: Path, monkeypatch) -> None:
    monkeypatch.delenv("CYCLEML_DEBUG", raising=False)
    result = runner.invoke(app, ["validate", "-p", str(broken_validate), "--json"])
    assert result.exit_code == 70
    body = json.loads(result.stdout)
    assert body["error"] == "InternalError" and "KeyError" in body["message"]
    assert "CYCLEML_DEBUG" in body["hint"]


def test_debug_env_shows_the_traceback(broken_validate: Path) -> None:
    result = runner.invoke(
        app, ["validate", "-p", str(broken_validate)], env={"CYCLEML_DEBUG": "1"}
    )
    assert result.exit_code == 70
    assert "Traceback (most recent call last)" in result.stderr
    assert "in boom" in result.stderr
    assert "error: internal error: KeyError: 'surprise'" in result.stderr


def test_typer_exits_inside_commands_are_not_internal_errors(tmp_path: Path) -> None:
    """`sources` ends with typer.Exit(3) when a source is unreadable; typer.Exit is a
    RuntimeError, so the error wrapper must let it through untouched."""
    root = make_project(tmp_path / "p", BadInput("x", SPEC, (), files=(("data/users.csv", USERS),)))
    result = runner.invoke(app, ["sources", "-p", str(root)])
    assert result.exit_code == 3 and "internal error" not in result.output


# -- real processes --------------------------------------------------------------------------------


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "CYCLEML_DEBUG")}
    env.pop("CYCLEML_PROJECT", None)
    env.update(NO_COLOR="1", OMP_WAIT_POLICY="PASSIVE", COLUMNS="80")
    return env


def _run(args: list[str], cwd: Path) -> Run:
    start = time.monotonic()
    proc = subprocess.run(
        args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=120, check=False
    )
    return Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)


PROCESS_INPUTS = [bad for bad in BAD_INPUTS if bad.process]
INTERNAL = (
    "import sys\n"
    "import cycleml.project\n"
    "def boom(self):\n"
    "    raise ZeroDivisionError('division by zero')\n"
    "cycleml.project.Project.validate = boom\n"
    "from cycleml.cli import main\n"
    "sys.argv = ['cycleml', 'validate']\n"
    "main()\n"
)


@pytest.fixture(scope="module")
def processes(tmp_path_factory) -> dict[str, Run]:
    """Bad inputs of each kind (and a good project) through `python -m cycleml`, concurrently.
    Each process pays ~2.5 s of imports, so only a representative subset runs here; every bad
    input goes through the same error wrapper in-process above."""
    base = tmp_path_factory.mktemp("cli-processes")
    jobs: dict[str, tuple[list[str], Path]] = {}
    for index, bad in enumerate(PROCESS_INPUTS):
        root = make_project(base / bad.name, bad)
        # Half the cases name the folder with --project, half run inside it.
        if index % 2:
            jobs[bad.name] = (
                [sys.executable, "-m", "cycleml", *bad.command, "-p", str(root)],
                base,
            )
        else:
            jobs[bad.name] = ([sys.executable, "-m", "cycleml", *bad.command], root)
    good = make_project(base / "good", BadInput("good", SPEC, ()))
    jobs["good_validate"] = ([sys.executable, "-m", "cycleml", "validate"], good)
    jobs["internal"] = ([sys.executable, "-c", INTERNAL], good)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {name: pool.submit(_run, args, cwd) for name, (args, cwd) in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("bad", PROCESS_INPUTS, ids=lambda b: b.name)
def test_process_bad_input_has_no_traceback(processes: dict[str, Run], bad: BadInput) -> None:
    run = processes[bad.name]
    assert run.returncode == bad.exit_code, run.stderr
    assert_clear_error(run.stdout, run.stderr, bad)


def test_process_unreachable_store_fails_fast(processes: dict[str, Run]) -> None:
    assert processes["unreachable_store"].seconds < 30  # refused at once, not a hang


def test_process_good_validate(processes: dict[str, Run]) -> None:
    run = processes["good_validate"]
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("ok: shop:") and run.stderr == ""


def test_process_internal_error(processes: dict[str, Run]) -> None:
    run = processes["internal"]
    assert run.returncode == 70
    assert run.stderr.startswith("error: internal error: ZeroDivisionError: division by zero")
    assert "CYCLEML_DEBUG=1" in run.stderr
    assert "Traceback" not in run.stdout + run.stderr
