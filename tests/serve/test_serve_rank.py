"""POST /v1/models/{problem}/rank on the demo's impressions/clicks ranking problem: the items come
back ordered by the score the shared feature code and the model give, item objects override
feature values, each ranked item is logged, and a non-ranking problem is refused."""

from __future__ import annotations

import asyncio
import shutil
from datetime import datetime
from pathlib import Path

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa

from cycleml import Project
from cycleml.store.tables import prediction_log

PROBLEM = "click_impressions"
AS_OF = datetime(2026, 6, 1)
URL = f"/v1/models/{PROBLEM}/rank"


@pytest.fixture(scope="module")
def ranking_template(demo_template: Path, tmp_path_factory) -> Path:
    """The demo with the suggested impressions/clicks ranking problem trained (read-only)."""
    root = tmp_path_factory.mktemp("ranking") / "demo"
    shutil.copytree(demo_template, root)
    project = Project(root)
    try:
        suggestions = [s.name for s in project.suggest().suggestions]
        assert PROBLEM in suggestions, suggestions
        project.apply_suggestion(PROBLEM)
        project.train(PROBLEM, budget=5)
    finally:
        project.close()
    return root


@pytest.fixture
def ranking(ranking_template: Path, tmp_path: Path):
    root = tmp_path / "ranking"
    shutil.copytree(ranking_template, root)
    project = Project(root)
    app = project.app(token="")
    yield project, app
    app.state.serving.stop()
    project.close()


def _send(app, *requests: tuple) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://cycleml.test") as c:
            return [await c.request(method, url, **kw) for method, url, kw in requests]

    return asyncio.run(run())


def _candidates(project: Project) -> tuple[str, list[str]]:
    frame = pd.read_parquet(project.path / "data" / "impressions.parquet")
    user = str(frame["user_id"].iloc[0])
    items = list(dict.fromkeys(frame.loc[frame["user_id"] == user, "product_id"].astype(str)))
    return user, items[:8]


def test_rank_orders_items_by_the_models_score_on_the_shared_features(ranking) -> None:
    project, app = ranking
    user, items = _candidates(project)
    assert len(items) >= 3
    (response,) = _send(
        app, ("POST", URL, {"json": {"entity": user, "items": items, "as_of": AS_OF.isoformat()}})
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["entity"] == user and body["model_version"] == f"{PROBLEM}-v1"
    ranked = body["items"]
    assert sorted(i["id"] for i in ranked) == sorted(items)
    assert [i["rank"] for i in ranked] == list(range(1, len(items) + 1))
    scores = [i["score"] for i in ranked]
    assert scores == sorted(scores, reverse=True)

    # the same scores from the feature code and the model directly
    _, bundle = project.load_model(PROBLEM)
    label_item = project.spec.problems[PROBLEM].label.item
    with project.features(PROBLEM) as fs:
        features = fs.compute([user], AS_OF)
    frame = pd.concat([features] * len(items), ignore_index=True)
    frame[label_item] = items
    expected, _ = bundle.outputs(frame)
    by_id = dict(zip(items, expected.tolist(), strict=True))
    for item in ranked:
        assert abs(item["score"] - by_id[item["id"]]) < 1e-12

    assert app.state.serving.logger.flush()
    with project.store.connect() as conn:
        rows = conn.execute(
            sa.select(prediction_log).where(prediction_log.c.request_id == body["request_id"])
        ).all()
    assert sorted(r.item_id for r in rows) == sorted(items)
    assert {r.entity for r in rows} == {user}


def test_item_objects_override_features_and_bad_rank_requests_answer_json(ranking) -> None:
    project, app = ranking
    user, items = _candidates(project)
    _, bundle = project.load_model(PROBLEM)
    number = next(c.name for c in bundle.columns if c.kind == "number")
    plain, overridden, unknown, not_ranking, bad, empty = _send(
        app,
        ("POST", URL, {"json": {"entity": user, "items": [{"id": items[0]}]}}),
        ("POST", URL, {"json": {"entity": user, "items": [{"id": items[0], number: 1e6}]}}),
        ("POST", URL, {"json": {"entity": "nobody", "items": items[:2]}}),
        ("POST", "/v1/models/nope/rank", {"json": {"entity": user, "items": items[:2]}}),
        ("POST", URL, {"json": {"entity": user, "items": [{"id": items[0], number: "x"}]}}),
        ("POST", URL, {"json": {"entity": user, "items": []}}),
    )
    assert plain.status_code == overridden.status_code == 200, overridden.text
    assert plain.json()["items"][0]["score"] != overridden.json()["items"][0]["score"]
    assert unknown.status_code == 200 and "nobody" in unknown.json()["warning"]
    assert not_ranking.status_code == 404 and not_ranking.json()["error"] == "NotFoundError"
    assert bad.status_code == 422 and number in bad.json()["message"]
    assert empty.status_code == 422 and "items" in empty.json()["message"]
