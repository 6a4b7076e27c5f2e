"""Browser-test fixtures: the demo lifecycle done once, a real `cycleml serve` on 127.0.0.1, and
headless Debian chromium driven by Playwright (never `playwright install`).

``dashboard`` (session): a demo project with every stage done (quickstart: profile, dataset,
churn-v1 trained and in production, batch run, online predictions, analysed experiment, monitor
run), plus churn-v2 (whichever of the two is worse ends up in production, so that promoting the
other is accepted), a fresh profile of every source, a second monitor run and online
predictions through the live server; the server runs with an admin token
(``CYCLEML_API_TOKEN``) and a predict-only token (``CYCLEML_API_TOKENS``) and is stopped by PID.

``page`` (per test): a fresh browser context whose console errors, page errors, failed requests
and responses >= 400 fail the test (``watch.allow(...)`` for the refusals a test provokes); a
screenshot of every test goes to the output folder (``$CYCLEML_TEST_OUTPUT`` or
``tests/browser/output/``)."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx
import pytest

CHROMIUM = os.environ.get("CYCLEML_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEMO_USERS = 800
DEMO_END = date(2026, 6, 1)
PROBLEM = "churn"
ONLINE_REQUESTS = 24
ACTION_TIMEOUT_MS = 60_000  # an action's request and its #status update (loaded CI machine)


def _required() -> bool:
    """Under `make test` (test-services.sh sets CYCLEML_REQUIRE_BROWSER) or CI, a missing browser
    is a failure, not a skip."""
    return bool(os.environ.get("CYCLEML_REQUIRE_BROWSER") or os.environ.get("CI"))


@pytest.fixture(scope="session")
def chromium() -> str:
    """The chromium binary; skips (locally) or fails (make test / CI) when it is missing."""
    problem = None
    if not os.access(CHROMIUM, os.X_OK):
        problem = f"{CHROMIUM} is missing: run `bash scripts/browser.sh ensure` (apt chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "playwright is not installed: run `make install` (the dev extra has it)"
    if problem:
        if _required():
            pytest.fail(f"browser tests cannot run: {problem}")
        pytest.skip(problem)
    return CHROMIUM


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """Where screenshots and navigation timings go."""
    default = Path(__file__).parent / "output"
    path = Path(os.environ.get("CYCLEML_TEST_OUTPUT") or default)
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- JavaScript evaluated in the pages ---------------------------------------------------------
# Every chart div, whether Plotly drew it, and the number of points of each of its traces
# (arrays, typed arrays, or Plotly's base64 {dtype, bdata} encoding of numpy arrays).
CHARTS = """
() => Array.from(document.querySelectorAll('div.chart[data-chart]')).map((el) => {
  const keys = ['x', 'y', 'z', 'values', 'r', 'theta', 'labels', 'lat', 'lon'];
  const size = (v) => {
    if (v == null) return 0;
    if (Array.isArray(v) || ArrayBuffer.isView(v)) return v.length;
    if (typeof v === 'object' && typeof v.bdata === 'string') return v.bdata.length;
    return 0;
  };
  const traces = (el.data || []).map((t) => Math.max(0, ...keys.map((k) => size(t[k]))));
  return {
    name: el.dataset.chart,
    id: el.id,
    drawn: el.querySelector('.main-svg') !== null,
    traces: traces,
  };
})
"""

# True once every chart div holds Plotly's SVG.
CHARTS_DRAWN = """
() => Array.from(document.querySelectorAll('div.chart[data-chart]'))
  .every((el) => el.querySelector('.main-svg') !== null)
"""

# Navigation timing of the current document, in ms from the start of navigation, with the
# marks dashboard.js sets: its scripts evaluated (Plotly's bundle included), the charts on the
# first screen drawn, every chart drawn.
NAVIGATION = """
() => {
  const n = performance.getEntriesByType('navigation')[0];
  const mark = (name) => {
    const m = performance.getEntriesByName(name, 'mark')[0];
    return m === undefined ? null : m.startTime;
  };
  const plotly = performance.getEntriesByType('resource')
    .find((r) => new URL(r.name).pathname === '/static/plotly.min.js');
  return {
    ttfb_ms: n.responseStart - n.requestStart,
    response_end_ms: n.responseEnd,
    dom_content_loaded_ms: n.domContentLoadedEventEnd,
    load_ms: n.loadEventEnd,
    transfer_bytes: n.transferSize,
    plotly_response_end_ms: plotly === undefined ? null : plotly.responseEnd,
    scripts_ready_ms: mark('cycleml:scripts-ready'),
    first_screen_drawn_ms: mark('cycleml:first-screen-drawn'),
    charts_drawn_ms: mark('cycleml:charts-drawn'),
  };
}
"""

# WCAG 2 contrast of every visible text: HTML elements with their own text, and the SVG text
# of the charts (titles, axis titles, tick labels, legends). The background is the composite of
# the non-transparent backgrounds from the element up (white canvas below). Returns the texts
# below 4.5:1 (3:1 for large text: 24px, or 18.66px bold).
LOW_CONTRAST = """
() => {
  const parse = (c) => {
    const m = /rgba?\\(([^)]+)\\)/.exec(c || '');
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter((x) => x !== '').map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const over = (top, below) => ({
    r: top.r * top.a + below.r * (1 - top.a),
    g: top.g * top.a + below.g * (1 - top.a),
    b: top.b * top.a + below.b * (1 - top.a),
    a: 1,
  });
  const lum = (c) => {
    const f = (v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const backdrop = (el) => {
    const layers = [];
    for (let e = el; e !== null; e = e.parentElement) {
      if (e instanceof SVGElement) continue;
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c !== null && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    let color = { r: 255, g: 255, b: 255, a: 1 };
    for (let i = layers.length - 1; i >= 0; i--) color = over(layers[i], color);
    return color;
  };
  const ownText = (el) => Array.from(el.childNodes)
    .some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim() !== '');
  const svgText = '.gtitle, .g-xtitle text, .g-ytitle text, .xtick text, .ytick text, '
    + '.legendtext';
  const candidates = Array.from(document.body.querySelectorAll('*'))
    .filter((el) => !(el instanceof SVGElement) && ownText(el)
      && !['SCRIPT', 'STYLE', 'OPTION'].includes(el.tagName))
    .concat(Array.from(document.querySelectorAll(svgText)));
  const out = [];
  for (const el of candidates) {
    const style = getComputedStyle(el);
    if (el.getClientRects().length === 0 || style.visibility !== 'visible') continue;
    if (el.textContent.trim() === '') continue;
    const svg = el instanceof SVGElement;
    let fg = parse(svg ? style.fill : style.color);
    if (fg === null) continue;
    const bg = backdrop(el);
    fg = over(fg, bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize);
    const bold = parseInt(style.fontWeight, 10) >= 700;
    const large = size >= 24 || (size >= 18.66 && bold);
    const need = large ? 3 : 4.5;
    if (ratio < need) {
      out.push({
        text: el.textContent.trim().slice(0, 60),
        tag: el.tagName.toLowerCase() + (el.className && el.className.baseVal === undefined
          ? '.' + String(el.className).split(' ').join('.') : ''),
        ratio: Math.round(ratio * 100) / 100,
        need: need,
        color: svg ? style.fill : style.color,
      });
    }
  }
  return out;
}
"""

# Per chart: whether its legend overlaps a title (chart or axis), and the texts (titles, tick
# labels) that stick out of the chart's box (cut on a narrow screen).
CHART_LAYOUT = """
() => Array.from(document.querySelectorAll('div.chart[data-chart]')).map((el) => {
  const frame = el.getBoundingClientRect();
  const boxes = (sel) => Array.from(el.querySelectorAll(sel))
    .map((n) => ({ text: n.textContent, r: n.getBoundingClientRect() }))
    .filter((b) => b.r.width > 0 && b.r.height > 0);
  const hit = (a, b) => a.left < b.right - 1 && b.left < a.right - 1
    && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const legend = boxes('g.legend');
  const titles = boxes('.gtitle, .g-xtitle text, .g-ytitle text');
  const overlaps = [];
  for (const l of legend) {
    for (const t of titles) if (hit(l.r, t.r)) overlaps.push(t.text);
  }
  const outside = boxes('.gtitle, .g-xtitle text, .g-ytitle text, .xtick text, .ytick text')
    .filter((b) => b.r.left < frame.left - 1 || b.r.right > frame.right + 1)
    .map((b) => b.text);
  return { name: el.dataset.chart, legend: legend.length > 0, overlaps, outside };
})
"""

LOADED = "() => performance.getEntriesByType('navigation')[0].loadEventEnd > 0"
# dashboard.js has drawn every chart (its mark; pages without charts set it at once)
DRAWN_MARK = "() => performance.getEntriesByName('cycleml:charts-drawn', 'mark').length > 0"
# ... the charts on the first screen (the others are drawn when scrolled near)
FIRST_SCREEN_MARK = (
    "() => performance.getEntriesByName('cycleml:first-screen-drawn', 'mark').length > 0"
)
# Whether the chart div (the argument) holds Plotly's SVG.
IS_DRAWN = "(el) => el.querySelector('.main-svg') !== null"

# Form controls without an accessible label: <label for>, a wrapping <label>, aria-label or
# aria-labelledby (buttons: their text, aria-label or title).
UNLABELLED = """
() => {
  const text = (s) => (s || '').trim().length > 0;
  const byIds = (ids) => (ids || '').split(/\\s+/).some((id) => {
    const el = id && document.getElementById(id);
    return el !== null && text(el.textContent);
  });
  const out = [];
  for (const el of document.querySelectorAll('input, select, textarea, button')) {
    if (el.type === 'hidden') continue;
    let ok = text(el.getAttribute('aria-label')) || byIds(el.getAttribute('aria-labelledby'));
    if (el.tagName === 'BUTTON' || ['button', 'submit', 'reset'].includes(el.type)) {
      ok = ok || text(el.textContent) || text(el.value) || text(el.title);
    } else {
      ok = ok || Array.from(el.labels || []).some((l) => text(l.textContent));
    }
    if (!ok) out.push(el.outerHTML.slice(0, 160));
  }
  return out;
}
"""

# True once #status shows a text other than ``before`` (the argument) that is not a progress
# message ("Promoting churn-v2…").
STATUS_SETTLED = """
(before) => {
  const s = document.querySelector('#status');
  const now = s === null ? '' : s.textContent.trim();
  return now !== '' && now !== before && !now.endsWith('…') && !now.endsWith('...');
}
"""

# Width the page needs vs the width the viewport has.
OVERFLOW = """
() => ({
  scroll_width: document.documentElement.scrollWidth,
  inner_width: window.innerWidth,
})
"""

# The pathnames the <nav> links point to.
NAV_PATHS = """
() => Array.from(document.querySelectorAll('nav a[href]'))
  .map((a) => new URL(a.getAttribute('href'), location.href).pathname)
"""


# -- the demo lifecycle and the server ------------------------------------------------------


@dataclass
class Dashboard:
    """The running server and what the lifecycle left in the demo project."""

    root: Path
    base: str
    admin_token: str
    predict_token: str
    to_promote: int  # a non-production churn version that promote() accepts (no --force)
    production: int  # the production churn version when the server started

    def api(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30.0)

    def served_version(self) -> str:
        """`model_version` of GET /v1/models/churn (e.g. churn-v1), read with the predict token."""
        with self.api(self.predict_token) as client:
            response = client.get(f"/v1/models/{PROBLEM}")
        response.raise_for_status()
        return response.json()["model_version"]

    def stages(self) -> dict[int, str]:
        """{version: stage} of the churn versions, read through the Python API."""
        from cycleml import Project

        project = Project(self.root)
        try:
            return {m.version: m.stage for m in project.models(PROBLEM)}
        finally:
            project.close()

    def spec_text(self) -> str:
        return (self.root / "cycleml.yaml").read_text(encoding="utf-8")


def _lifecycle(root: Path) -> tuple[int, int]:
    """Run every stage on the demo product in ``root``; returns (to_promote, production)."""
    from cycleml import Project
    from cycleml.quickstart import run_quickstart

    run_quickstart(root, n_users=DEMO_USERS, seed=7, end=DEMO_END)
    project = Project(root)
    try:
        second = project.train(PROBLEM, budget=4).model  # registered in staging
        first = project.model(PROBLEM)  # production
        result = project.compare(PROBLEM, second.version, first.version)
        challenger, champion = (v["value"] for v in result["versions"])
        accepted = challenger >= champion if result["higher_is_better"] else challenger <= champion
        if accepted:  # what Project.promote checks: v2 is at least as good as v1
            to_promote, production = second.version, first.version
        else:
            # v2 is worse: make it the champion, so promoting v1 back is an accepted promotion
            project.promote(PROBLEM, second.version, force=True)
            to_promote, production = first.version, second.version
        project.profile()  # every source, also the experiment's (added after quickstart profiled)
        project.monitor(PROBLEM)  # a second run: the drift heatmap has two points in time
    finally:
        project.close()
    return to_promote, production


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Server:
    """`python -m cycleml serve` on a free 127.0.0.1 port with tokens; stopped by PID."""

    def __init__(self, root: Path, log_path: Path, admin: str, predict: str) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("CYCLEML_API_TOKEN")}
        env.update(
            OMP_WAIT_POLICY="PASSIVE",
            OMP_NUM_THREADS="1",
            CYCLEML_API_TOKEN=admin,
            CYCLEML_API_TOKENS=f"{predict}:predict",
        )
        self._log = log_path.open("wb")
        args = ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--project", str(root)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cycleml", *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, probe: str = "/readyz", seconds: float = 90) -> None:
        """Wait until ``probe`` answers 200 (``/healthz`` where no model is trained yet: then
        ``/readyz`` stays 503)."""
        deadline = time.monotonic() + seconds
        with httpx.Client(base_url=self.base, timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    pytest.fail(f"cycleml serve exited early:\n{self.log_tail()}")
                try:
                    if client.get(probe).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.25)
        pytest.fail(f"cycleml serve not ready within {seconds} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


def _online_predictions(dashboard: Dashboard) -> None:
    """Score a few users through the live server (predict-only token): the prediction log and
    its latency chart get rows."""
    from cycleml import Project

    project = Project(dashboard.root)
    try:
        entities = sorted({str(p["entity"]) for p in _batch_entities(project)})[:ONLINE_REQUESTS]
    finally:
        project.close()
    assert entities, "the batch run scored no users"
    with dashboard.api(dashboard.predict_token) as client:
        for entity in entities:
            response = client.post(f"/v1/models/{PROBLEM}/predict", json={"entities": [entity]})
            if response.status_code != 200:
                pytest.fail(f"online prediction failed: {response.status_code} {response.text}")


def _batch_entities(project) -> list[dict]:
    import sqlalchemy as sa

    from cycleml.store.tables import predictions

    with project.store.connect() as conn:
        rows = conn.execute(
            sa.select(predictions.c.entity).where(predictions.c.problem == PROBLEM).limit(200)
        ).all()
    return [dict(r._mapping) for r in rows]


@pytest.fixture(scope="session")
def dashboard(chromium: str, tmp_path_factory, output_dir: Path) -> Iterator[Dashboard]:
    """The demo lifecycle done once, served by a real `cycleml serve` on 127.0.0.1."""
    root = tmp_path_factory.mktemp("browser") / "demo"
    to_promote, production = _lifecycle(root)
    admin, predict = f"admin-{secrets.token_hex(12)}", f"predict-{secrets.token_hex(12)}"
    server = _Server(root, output_dir / "serve.log", admin, predict)
    try:
        server.wait_ready()
        board = Dashboard(root, server.base, admin, predict, to_promote, production)
        _online_predictions(board)
        yield board
    finally:
        server.stop()


@pytest.fixture(scope="session")
def empty_dashboard(chromium: str, tmp_path_factory, output_dir: Path) -> Iterator[str]:
    """A demo project where nothing has run yet (no profile, dataset or model), served like
    ``dashboard`` (same kind of tokens); yields its base URL."""
    from cycleml._init import init_project

    root = tmp_path_factory.mktemp("browser-empty") / "demo"
    init_project(root, demo=True, n_users=200, seed=3, end=DEMO_END)
    admin, predict = f"admin-{secrets.token_hex(12)}", f"predict-{secrets.token_hex(12)}"
    server = _Server(root, output_dir / "serve-empty.log", admin, predict)
    try:
        server.wait_ready("/healthz")
        yield server.base
    finally:
        server.stop()


# -- the browser and a watched page per test ------------------------------------------------


@pytest.fixture(scope="module")
def browser(chromium: str, dashboard: Dashboard):
    """One headless Debian chromium per test module: Playwright's sync API keeps an event loop
    running in this thread until it stops, which would break later tests that call asyncio.run
    (and the lifecycle in ``dashboard``, which is why that fixture starts first)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@dataclass
class Watch:
    """What went wrong in the page: console errors, page errors, failed requests, responses
    >= 400 (except the ``allowed`` ones a test provokes on purpose)."""

    allowed: list[tuple[int, re.Pattern[str]]] = field(default_factory=list)
    responses: list[tuple[int, str]] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)  # (text, url)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    def allow(self, status: int, url_pattern: str) -> None:
        """Expect a ``status`` response from URLs matching ``url_pattern`` (and Chromium's
        console line about it)."""
        self.allowed.append((status, re.compile(url_pattern)))

    def _is_allowed(self, status: int, url: str) -> bool:
        return any(status == s and p.search(url) for s, p in self.allowed)

    def problems(self) -> list[str]:
        out = [f"HTTP {s} {u}" for s, u in self.responses if not self._is_allowed(s, u)]
        out += [f"page error: {e}" for e in self.page_errors]
        out += [f"request failed: {r}" for r in self.failed_requests]
        for text, url in self.console:
            # Chromium logs every >= 400 response it loads; an expected one is no error
            status = re.search(r"^Failed to load resource: .*status of (\d{3})", text)
            if status and self._is_allowed(int(status.group(1)), url):
                continue
            out.append(f"console error: {text} ({url})")
        return out

    def check(self) -> None:
        found = self.problems()
        assert not found, "the page reported errors:\n" + "\n".join(found)


def _attach(page, watch: Watch) -> None:
    def on_console(msg) -> None:
        if msg.type == "error":
            watch.console.append((msg.text, (msg.location or {}).get("url", "")))

    def on_response(response) -> None:
        if response.status >= 400:
            watch.responses.append((response.status, response.url))

    def on_failed(request) -> None:
        watch.failed_requests.append(f"{request.method} {request.url}: {request.failure}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: watch.page_errors.append(str(exc)))
    page.on("requestfailed", on_failed)
    page.on("response", on_response)


def _shot_name(request) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_") or "test"


@pytest.fixture
def viewport() -> dict:
    """The page's viewport (override in a test module or with indirect parametrization)."""
    return {"width": 1280, "height": 900}


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def page(browser, dashboard: Dashboard, watch: Watch, viewport: dict, output_dir: Path, request):
    """A fresh page (own context: empty sessionStorage) watched for errors; screenshot after."""
    context = browser.new_context(viewport=viewport, base_url=dashboard.base)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    _attach(tab, watch)
    try:
        yield tab
        tab.screenshot(path=str(output_dir / f"{_shot_name(request)}.png"), full_page=True)
    finally:
        context.close()
    watch.check()


# -- navigation timings, written once at the end ---------------------------------------------


@pytest.fixture(scope="session")
def timings(output_dir: Path) -> Iterator[dict]:
    """{page: navigation timing (ms)}: written to navigation-timings.json after the session."""
    found: dict[str, dict] = {}
    yield found
    if found:
        (output_dir / "navigation-timings.json").write_text(
            json.dumps(found, indent=2, sort_keys=True), encoding="utf-8"
        )


# -- what the tests do with a page ------------------------------------------------------------


class Browse:
    """Open dashboard pages in the watched ``page`` and read what they show."""

    def __init__(self, page, watch: Watch, dashboard: Dashboard, timings: dict) -> None:
        self.page = page
        self.watch = watch
        self.dashboard = dashboard
        self.timings = timings

    def open(self, path: str, *, status: int = 200, record: str | None = None) -> dict:
        """Go to ``path``, wait for the load event and the first screen's charts, scroll to
        every other chart and wait for it to be drawn, and for the network to settle; check the
        status and that nothing went wrong so far. Returns the navigation timing (ms; its
        ``charts_drawn_ms`` includes the scrolling), also recorded under ``record``."""
        response = self.page.goto(path, wait_until="load")
        assert response is not None and response.status == status, (
            f"GET {path}: HTTP {response.status if response else None}, expected {status}"
        )
        self.page.wait_for_function(LOADED)
        self.wait_first_screen()
        self.draw_every_chart()
        timing = self.page.evaluate(NAVIGATION)
        timing["charts"] = self.page.locator("div.chart[data-chart]").count()
        self.page.wait_for_load_state("networkidle")
        self.watch.check()
        if record:
            self.timings[record] = timing
        return timing

    def wait_first_screen(self) -> None:
        """Wait for dashboard.js to have drawn the charts on the first screen."""
        self.page.wait_for_function(FIRST_SCREEN_MARK)

    def is_drawn(self, chart) -> bool:
        """Whether the chart div (a locator) holds Plotly's SVG."""
        return bool(chart.evaluate(IS_DRAWN))

    def wait_drawn(self, chart) -> None:
        self.page.wait_for_function(IS_DRAWN, arg=chart.element_handle())

    def draw_every_chart(self) -> None:
        """Scroll each chart into view (dashboard.js draws a chart when it comes near the
        screen), wait until it is drawn, then go back to the top."""
        for chart in self.page.locator("div.chart[data-chart]").all():
            chart.scroll_into_view_if_needed()
            self.wait_drawn(chart)
        self.page.wait_for_function(CHARTS_DRAWN)
        self.page.wait_for_function(DRAWN_MARK)
        self.page.evaluate("() => window.scrollTo(0, 0)")

    def undrawn(self) -> list[str]:
        """Names of the charts not drawn (yet)."""
        return [c["name"] for c in self.charts() if not c["drawn"]]

    def charts(self) -> list[dict]:
        return self.page.evaluate(CHARTS)

    def unlabelled(self) -> list[str]:
        return self.page.evaluate(UNLABELLED)

    def low_contrast(self) -> list[dict]:
        return self.page.evaluate(LOW_CONTRAST)

    def chart_layout(self) -> list[dict]:
        return self.page.evaluate(CHART_LAYOUT)

    def overflow(self) -> dict:
        return self.page.evaluate(OVERFLOW)

    def nav_paths(self) -> list[str]:
        return self.page.evaluate(NAV_PATHS)

    def status_text(self) -> str:
        return self.page.locator("#status").inner_text().strip()

    def click_and_wait_status(self, selector: str, action_url: str) -> tuple[int, str]:
        """Click ``selector`` (exactly one element), wait for the POST to a URL containing
        ``action_url`` it sends, then for ``#status`` to show its outcome (a new text that is
        not a "working…" one); returns the POST's HTTP status and that text."""
        button = self.page.locator(selector)
        assert button.count() == 1, f"expected one {selector} on {self.page.url}"
        before = self.status_text()
        with self.page.expect_response(
            lambda r: r.request.method == "POST" and action_url in r.url,
            timeout=ACTION_TIMEOUT_MS,  # promoting compares both versions on the test rows
        ) as response:
            button.click()
        self.page.wait_for_function(STATUS_SETTLED, arg=before, timeout=ACTION_TIMEOUT_MS)
        self.page.wait_for_load_state("networkidle")
        return response.value.status, self.status_text()

    def type_token(self, token: str) -> None:
        self.page.fill("#admin-token", token)


@pytest.fixture
def browse(page, watch: Watch, dashboard: Dashboard, timings: dict) -> Browse:
    return Browse(page, watch, dashboard, timings)
