"""The web dashboard in-process (httpx.ASGITransport): every page on a demo project with the
whole lifecycle stored, its charts' data, empty states on a fresh project, the 404 page, the
loopback rule when tokens are set, and the static assets. The actions: test_dashboard_pages_actions.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import shutil
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from cycleml import Project

PAGES = ["/", "/data", "/problems/churn", "/models", "/predictions", "/experiments", "/monitoring"]
NAV = ["/", "/data", "/problems/churn", "/models", "/predictions", "/experiments", "/monitoring"]
CHART = re.compile(
    r'<div class="chart" data-chart="([^"]+)" id="chart-([^"]+)" data-figure="([^"]*)"'
)


def get(app, *urls: str, client=("127.0.0.1", 40000), headers=None) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://cycleml.test") as c:
            return [await c.get(url, headers=headers) for url in urls]

    return asyncio.run(run())


def charts(page: str) -> dict[str, dict]:
    """``{name: figure}`` of every chart div on a page (the figure JSON unescaped)."""
    out = {}
    for name, id_name, figure in CHART.findall(page):
        assert id_name == name
        out[name] = json.loads(html.unescape(figure))
    return out


def has_points(figure: dict) -> bool:
    for trace in figure["data"]:
        for key in ("x", "y", "z"):
            values = trace.get(key)
            if isinstance(values, list) and any(v is not None for v in values):
                return True
    return False


def heat_cells(figure: dict) -> dict[tuple[str, str], str]:
    """``{(feature, column): "drifted" | "not drifted"}`` of the drift heatmap's tiles (one bar
    per compared cell, its hover data naming the feature, the column and the state)."""
    (tiles,) = figure["data"]
    return {(f, c): state for f, c, state in tiles["customdata"]}


def batch_entity(project: Project) -> str:
    """The first entity (by name) of the stored batch predictions."""
    import sqlalchemy as sa

    from cycleml.store.tables import predictions

    with project.store.connect() as conn:
        return conn.execute(sa.select(sa.func.min(predictions.c.entity))).scalar_one()


@pytest.fixture(scope="module")
def full_demo(trained_demo: Path, tmp_path_factory) -> Path:
    """The trained demo (churn-v1 in production, a batch run) plus every stored result the
    pages read: profiles, a second model version, online predictions, an analysed experiment
    and a monitor run."""
    from cycleml.quickstart import _simulate_experiment

    root = tmp_path_factory.mktemp("dash") / "demo"
    shutil.copytree(trained_demo, root)
    project = Project(root)
    _simulate_experiment(project, root, seed=0)  # adds a source and an experiment to the spec
    project.close()
    project = Project(root)
    project.profile()
    project.train("churn", budget=5)  # churn-v2, staging
    _, bundle = project.load_model("churn")
    blank = {c.name: None for c in bundle.columns}  # null: a missing value
    records = [{**blank, "plan": "pro", "age": 30.0}, {**blank, "plan": "free", "age": 22.0}]
    project.predict("churn", records=records)
    project.predict("churn", entities=[batch_entity(project)], as_of=datetime(2026, 5, 1))
    project.analyze_experiment("retention_offer")
    project.monitor("churn")
    project.close()
    return root


@pytest.fixture(scope="module")
def full_app(full_demo: Path):
    project = Project(full_demo)
    yield project.app(token="")
    project.close()


def test_every_page_renders_with_nav_token_control_and_status(full_app) -> None:
    timings = {}
    for url in PAGES:
        started = time.perf_counter()
        (response,) = get(full_app, url)
        timings[url] = round((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.text[:500])
        assert response.headers["content-type"].startswith("text/html")
        page = response.text
        nav = page[page.index("<nav") : page.index("</nav>")]
        assert re.findall(r'href="([^"]+)"', nav) == NAV
        assert '<label for="admin-token">Admin token</label>' in page
        assert re.search(r'<input id="admin-token" type="password"', page)
        assert '<div id="status" role="status" aria-live="polite">' in page
        assert '<meta name="viewport"' in page
        assert "/static/dashboard.js?v=" in page and "/static/dashboard.css?v=" in page
        assert " on" + "click=" not in page.lower()  # no inline event handlers
    print("page render ms (in-process, second-level figures on a loaded machine):", timings)


def test_overview_shows_each_stage_with_its_figure(full_app, full_demo: Path) -> None:
    (response,) = get(full_app, "/")
    page = response.text
    stages = re.findall(r'class="stage (done|todo)" data-stage="([a-z]+)"', page)
    assert [s for _, s in stages] == [
        "data",
        "dataset",
        "model",
        "deployment",
        "experiment",
        "monitoring",
    ]
    assert all(state == "done" for state, _ in stages), stages
    project = Project(full_demo)
    production = project.model("churn")
    rows = project.latest_dataset("churn").rows
    project.close()
    assert production.name in page
    assert f"{rows:,} rows" in page
    assert "retention_offer" in page and "drift share" in page
    assert "Every stage has run." in page


def test_chart_names_and_data_on_each_page(full_app, full_demo: Path) -> None:
    from cycleml.dashboard import _reads

    project = Project(full_demo)
    profile_columns = {c["name"] for c in _reads.latest_profiles(project)["users"]["columns"]}
    project.close()
    pages = dict(zip(PAGES, get(full_app, *PAGES), strict=True))
    data = charts(pages["/data"].text)
    assert "missingness-users" in data and "missingness-events" in data
    assert any(n.startswith("histogram-users-") for n in data)
    assert any(n.startswith("top-values-users-") for n in data)
    assert {n.split("-", 2)[2] for n in data if n.startswith("histogram-users-")} <= profile_columns
    expected = {
        "/problems/churn": {"label-balance", "importance"},
        "/models": {"leaderboard", "roc", "pr", "calibration", "importance"},
        "/predictions": {"latency"},
        "/experiments": {"lift-retention_offer"},
    }
    for url, names in expected.items():
        found = charts(pages[url].text)
        assert names <= set(found), (url, set(found))
    monitoring = charts(pages["/monitoring"].text)
    assert "drift-heatmap-churn" in monitoring
    assert any(n.startswith("distribution-churn-") for n in monitoring)
    assert "residuals" not in charts(pages["/models"].text)  # a binary problem
    for url, response in pages.items():
        for name, figure in charts(response.text).items():
            assert has_points(figure), (url, name)


def test_models_page_reads_the_stored_version(full_app, full_demo: Path) -> None:
    project = Project(full_demo)
    versions = project.models("churn")
    project.close()
    v1, v2 = versions
    (response,) = get(full_app, "/models?problem=churn")
    page = response.text
    found = charts(page)
    chosen = next(b for b in v1.leaderboard if b["chosen"])
    assert found["roc"]["data"][0]["x"] == chosen["charts"]["curves"]["roc"]["fpr"]
    calibration = [b["mean_predicted"] for b in v1.metrics["calibration"]]
    assert found["calibration"]["data"][0]["x"] == calibration
    assert 'data-production="1"' in page
    # a promote button for the staging version only
    assert re.findall(r'data-action="promote" data-problem="churn" data-version="(\d+)"', page) == [
        "2"
    ]
    (other,) = get(full_app, "/models?problem=churn&version=2")
    assert f"Evaluation of {v2.name} (staging)" in other.text
    assert v1.dataset_version_id in page and v1.artifact_sha256[:12] in page


def test_problem_page_label_balance_matches_the_dataset(full_app, full_demo: Path) -> None:
    import pandas as pd

    project = Project(full_demo)
    dataset = project.latest_dataset("churn")
    frame = pd.read_parquet(project.artifacts.verified_path(dataset.artifact_sha256))
    project.close()
    expected = frame.groupby("as_of")["label"].mean()
    (response,) = get(full_app, "/problems/churn")
    figure = charts(response.text)["label-balance"]
    rate = next(t for t in figure["data"] if t["type"] == "scatter")
    assert len(rate["y"]) == dataset.cutoffs == len(expected)
    assert rate["y"] == pytest.approx(list(expected.to_numpy()))
    assert dataset.id in response.text
    for feature in dataset.features[:5]:
        assert f"<td>{feature['name']}</td>" in response.text


def test_predictions_page_filters(full_app, full_demo: Path) -> None:
    project = Project(full_demo)
    entity = batch_entity(project)
    project.close()
    (everything, online, batch, by_entity, nothing) = get(
        full_app,
        "/predictions?problem=churn&limit=1000",
        "/predictions?problem=churn&kind=online",
        "/predictions?problem=churn&kind=batch&limit=1000",
        f"/predictions?problem=churn&entity={entity}&kind=all",
        "/predictions?problem=churn&entity=nobody",
    )
    rows = lambda r: r.text.count("<tr><td>")  # noqa: E731
    assert rows(online) == 3  # 2 records + 1 entity logged
    assert rows(everything) == rows(online) + rows(batch) > rows(online)
    assert rows(by_entity) == 2 and by_entity.text.count(f"<td>{entity}</td>") == 2
    assert "No prediction matches these filters." in nothing.text
    assert '<select id="f-problem" name="problem">' in everything.text
    for control in ("f-problem", "f-entity", "f-version", "f-kind", "f-limit"):
        assert f'<label for="{control}">' in everything.text


def test_experiments_and_monitoring_show_decision_srm_and_drift(full_app, full_demo) -> None:
    project = Project(full_demo)
    from cycleml.dashboard import _reads

    analysis = _reads.latest_analyses(project)["retention_offer"]["result"]
    (run,) = _reads.monitor_history(project, "churn")
    project.close()
    (experiments, monitoring) = get(full_app, "/experiments", "/monitoring")
    assert html.escape(analysis["decision"]) in experiments.text
    assert "Sample ratio:" in experiments.text
    lift = charts(experiments.text)["lift-retention_offer"]
    treatment = next(v for v in analysis["variants"] if not v["control"])
    assert lift["data"][0]["x"][0] == pytest.approx(
        treatment["metrics"]["retained"]["relative_lift"]
    )
    heat = charts(monitoring.text)["drift-heatmap-churn"]
    last = heat["layout"]["xaxis"]["ticktext"][-1]  # the latest run's column
    cells = heat_cells(heat)
    drifted = {f for (f, column), state in cells.items() if column == last and state == "drifted"}
    assert drifted == set(run["result"]["drifted"])
    assert "No alerts." in monitoring.text


def test_data_page_lists_cleaning_and_problem_suggestions(full_app, full_demo) -> None:
    (response,) = get(full_app, "/data")
    page = response.text
    buttons = re.findall(
        r'data-action="apply-cleaning" data-source="([^"]+)" data-step="([^"]+)"', page
    )
    assert ("users", "users.impute.age") in buttons
    assert "Problem suggestions" in page and "defined as churn" in page


def test_fresh_project_shows_empty_states_not_errors(demo_project: Path) -> None:
    project = Project(demo_project)
    app = project.app(token="")
    responses = get(app, *PAGES)
    project.close()
    for url, response in zip(PAGES, responses, strict=True):
        assert response.status_code == 200, (url, response.text[:300])
        assert 'class="empty"' in response.text, url
        assert "data-figure" not in response.text, url  # no chart without data
    text = {url: r.text for url, r in zip(PAGES, responses, strict=True)}
    assert "cycleml train churn" in text["/"] and "cycleml profile" in text["/data"]
    assert "cycleml dataset build churn" in text["/problems/churn"]
    assert "cycleml train churn" in text["/models"]
    assert "No prediction yet." in text["/predictions"]
    assert "No experiment is defined" in text["/experiments"]
    assert "cycleml monitor churn" in text["/monitoring"]


def test_project_without_problems_renders_every_page(write_project) -> None:
    root = write_project(
        "spec_version: 1\nname: bare\nsources:\n  t: {path: t.csv}\n", {"t.csv": "a,b\n1,2\n"}
    )
    project = Project(root)
    pages = ["/", "/data", "/models", "/predictions", "/experiments", "/monitoring"]
    responses = get(project.app(token=""), *pages)
    project.close()
    for url, response in zip(pages, responses, strict=True):
        assert response.status_code == 200, (url, response.text[:300])
    assert "cycleml suggest" in responses[0].text


@pytest.mark.parametrize(
    "url",
    [
        "/problems/nope",
        "/models?problem=nope",
        "/models?problem=churn&version=99",
        "/predictions?problem=nope",
        "/predictions?problem=churn&version=99",
    ],
)
def test_unknown_problem_or_model_is_a_404_page_with_a_way_back(full_app, url: str) -> None:
    (response,) = get(full_app, url)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert '<a href="/">Back to the overview</a>' in response.text
    assert "nope" in response.text or "99" in response.text


def test_pages_need_no_token_from_loopback_but_refuse_other_clients(full_demo) -> None:
    project = Project(full_demo)
    app = project.app(token="secret")
    (local, remote, api) = (
        get(app, "/")[0],
        get(app, "/", client=("10.1.2.3", 5000))[0],
        get(app, "/v1/models/churn")[0],
    )
    project.close()
    assert local.status_code == 200 and "Overview" in local.text
    assert remote.status_code == 403 and "127.0.0.1" in remote.text
    assert api.status_code == 401  # the API itself still needs the token


def test_static_assets_are_served_from_the_package_and_cached(full_app) -> None:
    import re

    import plotly.offline

    js, css, script, icon, missing = get(
        full_app,
        "/static/plotly.min.js",
        "/static/dashboard.css",
        "/static/dashboard.js",
        "/favicon.ico",
        "/static/nothing.js",
    )
    assert js.status_code == 200 and "immutable" in js.headers["cache-control"]
    assert js.text.startswith("/**\n* plotly.js (basic - minified) v")
    # the vendored bundle is the plotly.js version the plotly package bundles
    bundled = re.search(r"plotly\.js v([0-9.]+)", plotly.offline.get_plotlyjs()[:200]).group(1)
    assert f"(basic - minified) v{bundled}\n" in js.text[:200]
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "data-figure" in script.text and "Authorization" in script.text
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert missing.status_code == 404
    (packed,) = get(full_app, "/static/plotly.min.js", headers={"Accept-Encoding": "gzip"})
    assert packed.headers.get("content-encoding") == "gzip"
    assert packed.content == js.content  # httpx decodes it: the same file


SPEND = """\
  spend:
    entity: user_id
    task: regression
    label: {kind: sum_within, source: events, days: 30, column: value, event_types: [purchase]}
    cutoffs: {every: 14d, start: 2026-02-02}
    metric: {name: mae}
    features: [profile, activity]
"""


def test_regression_problem_shows_residuals_and_mean_label(demo_project: Path) -> None:
    path = demo_project / "cycleml.yaml"
    text = path.read_text().replace("\nproblems:\n", "\nproblems:\n" + SPEND, 1)
    path.write_text(text.replace("[baseline, logistic, lightgbm]", "[baseline, lightgbm]"))
    project = Project(demo_project)
    outcome = project.train("spend", budget=5)
    app = project.app(token="")
    models, problem, churn = get(app, "/models?problem=spend", "/problems/spend", "/models")
    project.close()
    found = charts(models.text)
    assert {"leaderboard", "residuals"} <= set(found) and not {"roc", "pr"} & set(found)
    residuals = outcome.result.charts["residuals"]
    assert found["residuals"]["data"][0]["y"] == residuals["residual"]
    balance = charts(problem.text)["label-balance"]
    assert any(t.get("name") == "mean label" for t in balance["data"])
    assert "Models: spend" in churn.text  # the problem with a model comes first
    assert '<a href="/models?problem=churn"' in churn.text  # and the others are a click away


def test_database_source_password_is_not_shown() -> None:
    from cycleml.dashboard._data import _safe_url

    shown = _safe_url("postgresql://bob:s3cret@db.example:5432/shop", "users")
    assert "s3cret" not in shown and "bob:***@db.example" in shown and "users" in shown


def test_monitoring_draws_stored_chunks_performance_and_alerts(trained_copy: Path) -> None:
    """A stored chunked run (the keys `monitor --chunk` writes) is drawn as such: its chunks
    on the heatmap's time axis, realised and estimated performance per chunk, and alerts."""
    from cycleml.store import utcnow
    from cycleml.store.tables import alerts, monitor_runs

    project = Project(trained_copy)
    mv = project.model("churn")
    chunks = ["2026-05-01", "2026-05-02", "2026-05-03"]
    result = {
        "problem": "churn",
        "model": mv.name,
        "features": [],
        "drifted": ["age"],
        "tested": 2,
        "current": {"rows": 300, "source": "log"},
        "drift_over_time": {
            "chunks": chunks,
            "features": ["age", "plan"],
            "drifted": [[False, None, True], [False, False, False]],
        },
        "performance": {
            "reference": {"recall": 0.6},
            "chunks": [
                {"start": c, "realised": {"recall": r, "rows": 50}, "estimated": {"recall": e}}
                for c, r, e in zip(chunks, [0.61, 0.55, 0.4], [0.6, 0.58, 0.57], strict=True)
            ],
        },
    }
    with project.store.begin() as conn:
        run_id = conn.execute(
            monitor_runs.insert()
            .values(
                problem="churn",
                model_version_id=mv.id,
                reference_dataset_id=mv.dataset_version_id,
                drift_share=0.5,
                drifted=1,
                result=result,
                created_at=utcnow(),
            )
            .returning(monitor_runs.c.id)
        ).scalar_one()
        conn.execute(
            alerts.insert().values(
                problem="churn",
                rule="recall_drop",
                metric="performance.recall",
                value=0.4,
                threshold=0.5,
                severity="critical",
                message="recall 0.4 below 0.5",
                monitor_run_id=run_id,
                created_at=utcnow(),
            )
        )
    (response,) = get(project.app(token=""), "/monitoring")
    project.close()
    found = charts(response.text)
    heat = found["drift-heatmap-churn"]
    assert heat["layout"]["xaxis"]["ticktext"] == chunks
    assert heat["layout"]["yaxis"]["categoryarray"] == ["age", "plan"]
    assert heat_cells(heat) == {  # the cell not compared (None) has no tile
        ("age", "2026-05-01"): "not drifted",
        ("age", "2026-05-03"): "drifted",
        ("plan", "2026-05-01"): "not drifted",
        ("plan", "2026-05-02"): "not drifted",
        ("plan", "2026-05-03"): "not drifted",
    }
    perf = {t["name"]: t["y"] for t in found["performance-churn"]["data"]}
    assert perf == {"realised": [0.61, 0.55, 0.4], "estimated": [0.6, 0.58, 0.57]}
    assert "recall 0.4 below 0.5" in response.text and "critical" in response.text
