"""The dashboard's admin actions in-process: promote a model version and apply a cleaning
suggestion change the registry / cycleml.yaml, and are refused without a token (401), with a
predict-only token (403), and on a server that has no token at all (401)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import httpx
import pytest

from cycleml import Project

ADMIN, PREDICT = "admin-secret", "predict-secret"
PROMOTE = "/v1/models/churn/versions/2/promote"
APPLY = "/v1/sources/users/cleaning/users.impute.age/apply"


def send(app, *requests: tuple) -> list[httpx.Response]:
    """(method, url, token or None, json body or None) requests in order, from 127.0.0.1."""

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cycleml.test") as c:
            out = []
            for method, url, token, body in requests:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                out.append(await c.request(method, url, headers=headers, json=body))
            return out

    return asyncio.run(run())


@pytest.fixture(scope="module")
def two_versions(trained_demo: Path, tmp_path_factory) -> Path:
    """The trained demo with a second churn version (staging) and stored profiles."""
    root = tmp_path_factory.mktemp("dash-actions") / "demo"
    shutil.copytree(trained_demo, root)
    project = Project(root)
    project.train("churn", budget=5)
    project.profile("users")
    project.close()
    return root


@pytest.fixture
def served(two_versions: Path, tmp_path: Path, monkeypatch):
    """(project folder, app) on a private copy, with an admin and a predict-only token."""
    root = tmp_path / "demo"
    shutil.copytree(two_versions, root)
    monkeypatch.setenv("CYCLEML_API_TOKENS", f"{PREDICT}:predict")
    project = Project(root)
    yield root, project.app(token=ADMIN)
    project.close()


def production(root: Path) -> int:
    project = Project(root)
    try:
        return project.model("churn").version
    finally:
        project.close()


def assert_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"error", "message", "hint"} and body["message"] and body["hint"]


def test_promote_refused_without_token_or_admin_scope(served) -> None:
    root, app = served
    missing, predict_only = send(
        app, ("POST", PROMOTE, None, {"force": True}), ("POST", PROMOTE, PREDICT, {"force": True})
    )
    assert_error(missing, 401)
    assert_error(predict_only, 403)
    assert "admin" in predict_only.json()["message"]
    assert production(root) == 1


def test_promote_with_admin_token_changes_production_and_the_service(served) -> None:
    root, app = served
    before, promoted, after = send(
        app,
        ("GET", "/v1/models/churn", PREDICT, None),
        ("POST", PROMOTE, ADMIN, {"force": True}),
        ("GET", "/v1/models/churn", PREDICT, None),
    )
    assert before.json()["model_version"] == "churn-v1"
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["model"] == "churn-v2" and promoted.json()["stage"] == "production"
    assert "churn-v2" in promoted.json()["message"]
    assert production(root) == 2
    assert after.json()["model_version"] == "churn-v2"  # the running service serves it at once
    (page,) = send(app, ("GET", "/models?problem=churn", None, None))
    assert 'data-production="2"' in page.text


def test_promote_checks_the_champion_unless_forced(served) -> None:
    """Without force, Project.promote's check decides: either the version is promoted or the
    answer says why not; never a half-done state."""
    root, app = served
    (response,) = send(app, ("POST", PROMOTE, ADMIN, None))
    if response.status_code == 200:
        assert production(root) == 2
    else:
        assert_error(response, 500)
        assert "does not beat" in response.json()["message"]
        assert production(root) == 1


def test_promote_unknown_problem_or_version_is_404(served) -> None:
    _, app = served
    nope, missing = send(
        app,
        ("POST", "/v1/models/nope/versions/1/promote", ADMIN, None),
        ("POST", "/v1/models/churn/versions/99/promote", ADMIN, None),
    )
    assert_error(nope, 404)
    assert_error(missing, 404)


def test_apply_cleaning_refused_without_token_or_admin_scope(served) -> None:
    root, app = served
    before = (root / "cycleml.yaml").read_text()
    missing, predict_only = send(app, ("POST", APPLY, None, None), ("POST", APPLY, PREDICT, None))
    assert_error(missing, 401)
    assert_error(predict_only, 403)
    assert (root / "cycleml.yaml").read_text() == before


def test_apply_cleaning_records_the_step_in_the_spec(served) -> None:
    root, app = served
    (applied,) = send(app, ("POST", APPLY, ADMIN, {}))
    assert applied.status_code == 200, applied.text
    body = applied.json()
    assert body["applied"] is True and "cycleml.yaml" in body["message"]
    project = Project(root)
    steps = [step.id for step in project.spec.cleaning]
    project.close()
    assert "users.impute.age" in steps
    assert "users.impute.age" in (root / "cycleml.yaml").read_text()
    (again, page) = send(app, ("POST", APPLY, ADMIN, None), ("GET", "/data", None, None))
    assert again.status_code == 200 and again.json()["applied"] is False
    assert 'data-step="users.impute.age"' not in page.text  # shown as recorded, no button


def test_apply_cleaning_checks_source_and_step(served) -> None:
    root, app = served
    before = (root / "cycleml.yaml").read_text()
    wrong_source, unknown_source, stale = send(
        app,
        ("POST", "/v1/sources/events/cleaning/users.impute.age/apply", ADMIN, None),
        ("POST", "/v1/sources/nope/cleaning/nope.impute.x/apply", ADMIN, None),
        ("POST", APPLY, ADMIN, {"fingerprint": "0000000000000000"}),
    )
    assert_error(wrong_source, 400)
    assert_error(unknown_source, 404)
    assert stale.status_code >= 400 and stale.json()["message"]
    assert (root / "cycleml.yaml").read_text() == before


def test_actions_refused_when_the_server_has_no_token(two_versions: Path, tmp_path: Path) -> None:
    root = tmp_path / "demo"
    shutil.copytree(two_versions, root)
    project = Project(root)
    promote, apply = send(
        project.app(token=""),
        ("POST", PROMOTE, None, {"force": True}),
        ("POST", APPLY, None, None),
    )
    project.close()
    assert_error(promote, 401)
    assert "CYCLEML_API_TOKEN" in promote.json()["hint"]
    assert_error(apply, 401)
    assert production(root) == 1
    assert "users.impute.age" not in (root / "cycleml.yaml").read_text()


def test_scopes_of_dashboard_routes() -> None:
    from cycleml.serve import required_scope

    for path in ("/", "/data", "/problems/churn", "/models", "/static/plotly.min.js"):
        assert required_scope("GET", path) is None, path
    assert required_scope("POST", "/data") == "admin"
    assert required_scope("POST", PROMOTE) == "admin"
    assert required_scope("POST", APPLY) == "admin"
    assert required_scope("GET", "/static/../store.db") == "admin"
