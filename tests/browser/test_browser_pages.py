"""Every dashboard page in headless chromium against a real `cycleml serve` with the demo
lifecycle done: it loads with no console errors and no failed requests (the ``page`` fixture
fails the test otherwise), has the navigation and the admin-token control, draws each chart with
data, labels every form control, and fits a phone screen."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser

PROBLEM = "churn"
EXPERIMENT = "retention_offer"
PAGES = {
    "overview": "/",
    "data": "/data",
    "problem": f"/problems/{PROBLEM}",
    "models": "/models",
    "predictions": "/predictions",
    "experiments": "/experiments",
    "monitoring": "/monitoring",
}
# Charts each page must draw on the demo (the DOM contract's names; regexes match whole names).
REQUIRED_CHARTS = {
    "overview": [],
    "data": [r"histogram-\w+-.+", r"missingness-\w+", r"top-values-\w+-.+"],
    "problem": ["label-balance", "importance"],
    "models": ["leaderboard", "roc", "pr", "calibration", "importance"],
    "predictions": ["latency"],
    "experiments": [f"lift-{EXPERIMENT}"],
    "monitoring": [f"drift-heatmap-{PROBLEM}", f"distribution-{PROBLEM}-.+"],
}
# The page's text without its navigation, header and footer.
CONTENT_TEXT = """
() => {
  const body = document.body.cloneNode(true);
  body.querySelectorAll('nav, header, footer, script').forEach((el) => el.remove());
  return body.textContent.replace(/\\s+/g, ' ').trim();
}
"""
# Generous: the 1 s target is a benchmark (timings go to navigation-timings.json), not a test.
# A warm load (plotly.min.js in the HTTP cache, as for every page after a visitor's first) must
# reach its load event within 5 s. The cold load (a fresh browser context downloads and compiles
# the 1.5 MB plotly.min.js) and the drawing of all charts (one per task, after the load event)
# only within 20 s: on a loaded 2-core machine they mostly measure the load.
MAX_LOAD_MS = 5_000
MAX_SLOW_MS = 20_000


@pytest.mark.parametrize("name", list(PAGES))
def test_page_loads_clean_and_fast_with_nav_and_token_control(browse, name: str) -> None:
    path = PAGES[name]
    cold = browse.open(path, record=f"{name} (cold cache)")
    warm = browse.open(path, record=f"{name} (warm cache)")  # same context: plotly.js cached
    for timing, limit in ((cold, MAX_SLOW_MS), (warm, MAX_LOAD_MS)):
        assert 0 < timing["load_ms"] < limit, timing
        assert timing["scripts_ready_ms"] is not None, timing
        assert timing["first_screen_drawn_ms"] <= timing["charts_drawn_ms"] < MAX_SLOW_MS, timing
    if cold["charts"]:  # Plotly's bundle came from the server cold, from the HTTP cache warm
        assert cold["plotly_response_end_ms"] is not None, cold

    page = browse.page
    assert set(PAGES.values()) <= set(browse.nav_paths())
    token = page.locator("input#admin-token")
    assert token.count() == 1 and token.get_attribute("type") == "password"
    assert page.locator("label[for=admin-token]").inner_text().strip() == "Admin token"
    status = page.locator("#status")
    assert status.get_attribute("role") == "status"
    assert status.get_attribute("aria-live") == "polite"


@pytest.mark.parametrize("name", list(PAGES))
def test_every_chart_is_drawn_with_data(browse, name: str) -> None:
    browse.open(PAGES[name])
    charts = browse.charts()
    names = [c["name"] for c in charts]
    for pattern in REQUIRED_CHARTS[name]:
        assert any(re.fullmatch(pattern, n) for n in names), f"no chart {pattern!r} in {names}"
    for chart in charts:
        assert chart["id"] == f"chart-{chart['name']}", chart
        assert chart["drawn"], f"Plotly did not draw {chart['name']}"
        assert any(points > 0 for points in chart["traces"]), f"{chart['name']} has no data"


def test_charts_below_the_first_screen_are_drawn_when_scrolled_to(browse) -> None:
    """/data has more charts than a screen shows: the load draws the first screen's only, and
    a chart further down is drawn when it is scrolled near."""
    page = browse.page
    response = page.goto(PAGES["data"], wait_until="load")
    assert response is not None and response.status == 200
    browse.wait_first_screen()
    charts = page.locator("div.chart[data-chart]")
    first, last = charts.first, charts.last
    assert charts.count() > 6
    assert browse.is_drawn(first)  # on the first screen
    assert not browse.is_drawn(last)  # far below: not drawn with the page
    assert page.locator("html[data-charts-drawn]").count() == 0
    last.scroll_into_view_if_needed()
    browse.wait_drawn(last)
    browse.draw_every_chart()
    assert browse.undrawn() == []
    assert page.locator(f'html[data-charts-drawn="{charts.count()}"]').count() == 1


@pytest.mark.parametrize("name", list(PAGES))
def test_every_form_control_has_a_label(browse, name: str) -> None:
    browse.open(PAGES[name])
    assert browse.page.locator("input, select, textarea, button").count() > 0  # the token input
    assert browse.unlabelled() == []


@pytest.mark.parametrize("name", list(PAGES))
def test_every_text_has_sufficient_contrast(browse, name: str) -> None:
    """WCAG AA: 4.5:1 for text, 3:1 for large text, against the effective background; the
    charts' titles, tick labels and legends included."""
    browse.open(PAGES[name])
    assert browse.page.locator("h1").count() == 1  # the check saw the page's text
    assert browse.low_contrast() == []


@pytest.mark.parametrize("name", ["problem", "models", "experiments", "monitoring"])
def test_chart_legends_do_not_cover_titles(browse, name: str) -> None:
    browse.open(PAGES[name])
    layout = browse.chart_layout()
    assert any(c["legend"] for c in layout), layout  # the pages have charts with a legend
    for chart in layout:
        assert chart["overlaps"] == [], chart


@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844}], ids=["phone"])
@pytest.mark.parametrize("path", ["/", "/models"], ids=["overview", "models"])
def test_phone_viewport_has_no_horizontal_overflow(browse, path: str) -> None:
    browse.open(path)
    size = browse.overflow()
    assert size["inner_width"] == 390
    assert size["scroll_width"] <= size["inner_width"], size


@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844}], ids=["phone"])
@pytest.mark.parametrize("name", ["problem", "models", "monitoring"])
def test_chart_texts_fit_a_phone_screen(browse, name: str) -> None:
    """Long feature names (importance, drift heatmap) are wrapped or cut with the full name in
    the hover, and titles wrap: no title or tick label sticks out of its chart."""
    browse.open(PAGES[name])
    layout = browse.chart_layout()
    assert layout, "no chart on the page"
    for chart in layout:
        assert chart["outside"] == [], chart


def test_unknown_problem_is_a_404_page_with_a_way_back(browse, watch) -> None:
    watch.allow(404, r"/problems/no-such-problem$")
    browse.open("/problems/no-such-problem", status=404)
    back = browse.page.locator('a[href="/"]:not(nav a)')  # in the page, not only in the <nav>
    assert back.count() >= 1
    with browse.page.expect_navigation() as navigation:
        back.first.click()
    assert navigation.value is not None and navigation.value.status == 200
    assert browse.page.evaluate("() => location.pathname") == "/"


@pytest.mark.parametrize("name", list(PAGES))
def test_pages_of_an_untrained_project_show_an_empty_state_cleanly(
    empty_dashboard: str, browse, name: str
) -> None:
    browse.open(empty_dashboard + PAGES[name])  # 200, no console errors, no failed requests
    assert set(PAGES.values()) <= set(browse.nav_paths())
    assert len(browse.page.evaluate(CONTENT_TEXT)) > 40  # says something besides the chrome
    for chart in browse.charts():  # a chart only where there is data to draw
        assert chart["drawn"] and any(points > 0 for points in chart["traces"]), chart
    assert browse.unlabelled() == []
    assert browse.low_contrast() == []
