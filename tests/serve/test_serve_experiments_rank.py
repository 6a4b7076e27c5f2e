"""`?experiment=` on rank: an entity in the treatment gets the ranking model's order; one in the
`baseline` control gets the items in the order sent (no scores); each entity's first exposure
is logged once."""

from __future__ import annotations

import asyncio
import shutil
from datetime import datetime
from pathlib import Path

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from cycleml import Project
from cycleml.experiments._served import variant_of
from cycleml.store.tables import exposures

PROBLEM = "click_impressions"
URL = f"/v1/models/{PROBLEM}/rank"
AS_OF = datetime(2026, 6, 1)


@pytest.fixture(scope="module")
def ranking_experiment(demo_template: Path, tmp_path_factory) -> Path:
    """The demo's impressions/clicks ranking problem trained, with a served experiment
    (control: the original order, treatment: the production model). Read-only."""
    root = tmp_path_factory.mktemp("rank-exp") / "demo"
    shutil.copytree(demo_template, root)
    project = Project(root)
    try:
        project.apply_suggestion(PROBLEM)
        project.train(PROBLEM, budget=5)
    finally:
        project.close()
    path = root / "cycleml.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["sources"]["exp_events"] = {
        "collect": True,
        "entity": "user_id",
        "time": "ts",
        "columns": {"user_id": "string", "ts": "timestamp", "event_type": "string"},
    }
    spec["experiments"] = {
        "order": {
            "problem": PROBLEM,
            "variants": {
                "control": {"weight": 0.5, "model": "baseline"},
                "treatment": {"weight": 0.5, "model": "production"},
            },
            "control": "control",
            "events": "exp_events",
            "metrics": {"ctr": {"type": "ratio", "event": "click", "denominator": "impression"}},
        }
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return root


def _send(app, *requests: tuple) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://cycleml.test") as c:
            return [await c.request(method, url, **kw) for method, url, kw in requests]

    return asyncio.run(run())


def test_rank_in_an_experiment_serves_each_entity_its_variants_order(
    ranking_experiment: Path, tmp_path: Path
) -> None:
    root = tmp_path / "p"
    shutil.copytree(ranking_experiment, root)
    project = Project(root)
    app = project.app(token="")
    try:
        frame = pd.read_parquet(root / "data" / "impressions.parquet")
        exp = project.spec.experiments["order"]
        users = list(dict.fromkeys(frame["user_id"].astype(str)))[:40]
        control = next(u for u in users if variant_of(exp, "order", u) == "control")
        treated = next(u for u in users if variant_of(exp, "order", u) == "treatment")
        items = list(dict.fromkeys(frame["product_id"].astype(str)))[:6][::-1]
        requests = []
        for user in (control, treated, control):
            body = {"entity": user, "items": items, "as_of": AS_OF.isoformat()}
            requests.append(("POST", URL, {"params": {"experiment": "order"}, "json": body}))
        requests.append(
            ("POST", URL, {"json": {"entity": treated, "items": items, "as_of": AS_OF.isoformat()}})
        )
        first, second, again, plain = _send(app, *requests)
        for r in (first, second, again, plain):
            assert r.status_code == 200, r.text
        a, b = first.json(), second.json()
        assert a["variant"] == "control" and a["active"] is True and a["model_version"] is None
        assert [i["id"] for i in a["items"]] == items  # the original order
        assert [i["rank"] for i in a["items"]] == list(range(1, len(items) + 1))
        assert all(i["score"] is None for i in a["items"])
        assert b["variant"] == "treatment" and b["model_version"] == f"{PROBLEM}-v1"
        assert b["items"] == plain.json()["items"]  # the model's order, as without the experiment
        assert [i["id"] for i in b["items"]] != items or len(
            set(i["score"] for i in b["items"])
        ) == 1
        assert again.json()["items"] == a["items"]
        service = app.state.serving.__dict__["experiments"]
        assert service.exposures.flush()
        with project.store.connect() as conn:
            rows = conn.execute(sa.select(exposures)).all()
        assert sorted((r.unit, r.variant) for r in rows) == sorted(
            [(control, "control"), (treated, "treatment")]
        )
        assert {r.request_id for r in rows} == {a["request_id"], b["request_id"]}
    finally:
        app.state.serving.stop()
        project.close()
