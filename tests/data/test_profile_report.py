"""The profile report (HTML with inlined Plotly, offline), the CLI, and the stored profiles."""

from __future__ import annotations

import json
import re
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from cycleml import Project
from cycleml.cli import app
from cycleml.store import tables

# The first line of the plotly.js bundle names its version: it appears once per inlined copy.
PLOTLY_MARKER = "plotly.js v"


def test_report_inlines_plotly_once_draws_a_histogram_per_number_and_has_no_remote_script(
    demo_project: Path, tmp_path: Path
) -> None:
    import plotly.offline

    page = tmp_path / "out" / "profile.html"
    project = Project(demo_project)
    try:
        results = project.profile("users", html=page)
    finally:
        project.close()
    html = page.read_text(encoding="utf-8")
    assert PLOTLY_MARKER in plotly.offline.get_plotlyjs()[:200]
    assert html.count(PLOTLY_MARKER) == 1
    assert not re.search(r"<script[^>]+src=[\"']?(https?:)?//", html, re.I)
    (users,) = results
    numbers = [
        c["name"] for c in users["columns"] if c["histogram"] and c["histogram"]["unit"] == "bin"
    ]
    assert numbers == ["age"]
    assert html.count(": histogram") == len(numbers)
    assert "Missing values" in html and "age: histogram" in html and "plan: top values" in html
    # The stored copy of each source's report exists too.
    assert (demo_project / ".cycleml" / "reports" / "profile-users.html").is_file()


def test_report_has_a_correlation_heatmap_and_the_cleaning_suggestions(
    write_project, tmp_path: Path
) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    a = rng.normal(size=200)
    frame = pd.DataFrame({"a": a, "b": a * 3 + 1, "c": rng.normal(size=200)})
    path = tmp_path / "f.parquet"
    frame.to_parquet(path, index=False)
    root = write_project(f"spec_version: 1\nname: r\nsources:\n  f: {{path: {path}}}\n")
    project = Project(root)
    try:
        (result,) = project.profile()
    finally:
        project.close()
    html = (root / ".cycleml" / "reports" / "profile-f.html").read_text(encoding="utf-8")
    assert "Pearson correlations" in html
    assert html.count(": histogram") == 3
    from cycleml import data

    if hasattr(data, "suggest_cleaning"):
        assert "Cleaning suggestions" in html
        for suggestion in result["cleaning_suggestions"]:
            assert suggestion["id"] in html


def test_cli_json_matches_the_stored_profile_and_html_option(demo_project: Path) -> None:
    runner = CliRunner()
    page = demo_project / "p.html"
    result = runner.invoke(
        app, ["profile", "products", "--json", "--html", str(page), "-p", str(demo_project)]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert [p["source"] for p in printed] == ["products"]
    assert page.is_file()
    project = Project(demo_project)
    try:
        with project.store.connect() as conn:
            stored = conn.execute(sa.select(tables.profiles.c.result)).scalars().all()
    finally:
        project.close()
    assert stored == printed
    table = runner.invoke(app, ["profile", "products", "-p", str(demo_project)])
    assert table.exit_code == 0 and "entity_table" in table.stdout


def test_cli_unwritable_html_path_is_a_clear_error_and_stores_nothing(demo_project: Path) -> None:
    blocker = demo_project / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(
        app, ["profile", "products", "--html", str(blocker / "p.html"), "-p", str(demo_project)]
    )
    assert result.exit_code != 0
    assert "cannot write the profile report" in result.output
    assert "Traceback" not in result.output
    project = Project(demo_project)
    try:
        with project.store.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(tables.profiles)).scalar()
    finally:
        project.close()
    assert count == 0
