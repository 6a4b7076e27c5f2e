"""The dashboard's actions in headless chromium against a real `cycleml serve`: promoting a model
from /models changes the production version the service answers with; applying a cleaning
suggestion from /data records it in cycleml.yaml; without a token, or with a predict-only token,
both are refused, the status line shows the error, and nothing changes."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.browser

PROBLEM = "churn"
PROMOTE = "[data-action=promote]"
APPLY = "[data-action=apply-cleaning]"


def _served_becomes(dashboard, expected: str, seconds: float = 20) -> str:
    """Poll GET /v1/models/churn until it answers ``expected`` (the service picks promotions
    up within its refresh interval); returns the last answer."""
    deadline = time.monotonic() + seconds
    served = dashboard.served_version()
    while served != expected and time.monotonic() < deadline:
        time.sleep(0.5)
        served = dashboard.served_version()
    return served


def _promote_buttons(page) -> dict[int, str]:
    """{version: problem} of the promote buttons on the page."""
    out = {}
    for button in page.locator(PROMOTE).all():
        out[int(button.get_attribute("data-version"))] = button.get_attribute("data-problem")
    return out


def test_promoting_from_the_models_page_changes_the_production_version(browse, dashboard) -> None:
    version = dashboard.to_promote
    before = dashboard.stages()
    assert before[version] != "production"
    old = dashboard.production
    assert before[old] == "production"

    browse.open("/models")
    assert _promote_buttons(browse.page).get(version) == PROBLEM
    assert old not in _promote_buttons(browse.page)  # no button for the production version
    browse.type_token(dashboard.admin_token)
    code, status = browse.click_and_wait_status(
        f'{PROMOTE}[data-problem="{PROBLEM}"][data-version="{version}"]', "/promote"
    )
    assert code == 200 and "production" in status.lower() and str(version) in status, status
    buttons = _promote_buttons(browse.page)  # the page shows the new production version
    assert version not in buttons and old in buttons

    assert dashboard.stages()[version] == "production"  # the Python API
    assert _served_becomes(dashboard, f"{PROBLEM}-v{version}") == f"{PROBLEM}-v{version}"  # REST
    browse.open("/models")  # and so does a fresh load
    buttons = _promote_buttons(browse.page)
    assert version not in buttons and old in buttons


@pytest.mark.parametrize("who", ["no token", "predict-only token"])
def test_promoting_without_the_admin_token_is_refused(browse, dashboard, watch, who: str) -> None:
    before = dashboard.stages()
    served = dashboard.served_version()
    refusal = 403 if who == "predict-only token" else 401
    watch.allow(refusal, r"/promote$")

    browse.open("/models")
    buttons = _promote_buttons(browse.page)
    assert buttons, "no promote button on /models"
    version = min(buttons)
    if who == "predict-only token":
        browse.type_token(dashboard.predict_token)
    code, status = browse.click_and_wait_status(
        f'{PROMOTE}[data-problem="{PROBLEM}"][data-version="{version}"]', "/promote"
    )
    assert code == refusal
    expected = "admin" if who == "predict-only token" else "token"  # 403 names the scope
    assert expected in status.lower(), status

    time.sleep(2.5)  # longer than the service's promotion refresh: a change would show by now
    assert dashboard.stages() == before
    assert dashboard.served_version() == served


def _apply_buttons(page) -> list[tuple[str, str]]:
    """(source, step id) of the apply-cleaning buttons on the page, identifier exclusions first
    (they change no rows: safe to record in a shared demo)."""
    found = [
        (b.get_attribute("data-source"), b.get_attribute("data-step"))
        for b in page.locator(APPLY).all()
    ]
    return sorted(found, key=lambda s: (".exclude_identifier." not in s[1], s[1]))


def _recorded_steps(dashboard) -> list[str]:
    from cycleml import Project

    project = Project(dashboard.root)
    try:
        return [step.id for step in project.spec.cleaning]
    finally:
        project.close()


def test_applying_a_cleaning_suggestion_from_the_data_page_changes_the_spec(
    browse, dashboard
) -> None:
    browse.open("/data")
    recorded = _recorded_steps(dashboard)
    candidates = [s for s in _apply_buttons(browse.page) if s[1] not in recorded]
    assert candidates, "no apply-cleaning button for a step not yet recorded on /data"
    source, step = candidates[0]
    assert step.startswith(f"{source}.")
    before = dashboard.spec_text()

    browse.type_token(dashboard.admin_token)
    code, status = browse.click_and_wait_status(f'{APPLY}[data-step="{step}"]', "/apply")
    assert code == 200 and "cycleml.yaml" in status, status

    after = dashboard.spec_text()
    assert after != before and step in after
    assert _recorded_steps(dashboard) == [*recorded, step]


@pytest.mark.parametrize("who", ["no token", "predict-only token"])
def test_applying_cleaning_without_the_admin_token_is_refused(
    browse, dashboard, watch, who: str
) -> None:
    refusal = 403 if who == "predict-only token" else 401
    watch.allow(refusal, r"/apply$")
    browse.open("/data")
    recorded = _recorded_steps(dashboard)
    candidates = [s for s in _apply_buttons(browse.page) if s[1] not in recorded]
    assert candidates, "no apply-cleaning button for a step not yet recorded on /data"
    _, step = candidates[-1]
    before = dashboard.spec_text()

    if who == "predict-only token":
        browse.type_token(dashboard.predict_token)
    code, status = browse.click_and_wait_status(f'{APPLY}[data-step="{step}"]', "/apply")
    assert code == refusal
    expected = "admin" if who == "predict-only token" else "token"
    assert expected in status.lower(), status
    assert "recorded" not in status.lower(), status

    assert dashboard.spec_text() == before
    assert step not in _recorded_steps(dashboard)
