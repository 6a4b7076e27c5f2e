"""Time each dashboard page in headless Debian chromium against a real `cycleml serve` on
127.0.0.1, on the demo project with the whole lifecycle done (`cycleml quickstart`), against
the issue's 1 s target.

Cold: a fresh browser context (empty HTTP cache: Plotly's bundle is downloaded, parsed and
evaluated). Warm: the same page again in that context (the bundle from the HTTP cache). Each
load is timed to the load event and the first screen's charts drawn (dashboard.js's
`cycleml:first-screen-drawn` mark): the "page" time. The charts below are drawn when scrolled
near, so the script then scrolls to each chart and times every chart drawn (when dashboard.js
sets `<html data-charts-drawn>`) and the drawing work (the charts' `data-drawn-ms` summed).
`--baseline-src` serves an older checkout too, interleaved, and prints the ratio. The server
renders each page once before the browser runs (its first render is printed: the first
request of a server process pays for the first store reads and, on /data, the problem
suggestions).

    python benchmarks/dashboard/bench_browser.py [--project DIR] [--users N] [--runs N]
        [--chromium /usr/bin/chromium] [--baseline-src DIR] [--json FILE]

Chromium is Debian's (`apt-get install chromium`), driven by Playwright for Python (never
`playwright install`), with the flags the browser tests use.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

PAGES = ["/", "/data", "/problems/churn", "/models", "/predictions", "/experiments", "/monitoring"]
TARGET_MS = 1000.0
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMING = """
() => {
  const n = performance.getEntriesByType('navigation')[0];
  const mark = (name) => {
    const m = performance.getEntriesByName(name, 'mark')[0];
    return m === undefined ? null : m.startTime;
  };
  const plotly = performance.getEntriesByType('resource')
    .find((r) => new URL(r.name).pathname === '/static/plotly.min.js');
  return {
    ttfb: n.responseStart,
    load: n.loadEventEnd,
    plotly_end: plotly === undefined ? null : plotly.responseEnd,
    scripts: mark('cycleml:scripts-ready'),
    first_screen: mark('cycleml:first-screen-drawn'),
    drawn: window.__cyclemlChartsDrawnAt,
    charts: document.querySelectorAll('div.chart[data-chart]').length,
  };
}
"""
# When dashboard.js sets <html data-charts-drawn> (every chart drawn), noted by an observer
# installed before the page's scripts run (works for dashboard.js versions without the marks).
WATCH_DRAWN = """
new MutationObserver((changes, observer) => {
  const root = document.documentElement;
  if (root !== null && root.hasAttribute('data-charts-drawn')) {
    window.__cyclemlChartsDrawnAt = performance.now();
    observer.disconnect();
  }
}).observe(document, { attributes: true, subtree: true, attributeFilter: ['data-charts-drawn'] });
"""
# The load event and the first screen's charts (dashboard.js versions without the mark draw
# every chart before they set <html data-charts-drawn>).
FIRST_SCREEN = (
    "() => performance.getEntriesByType('navigation')[0].loadEventEnd > 0"
    " && (performance.getEntriesByName('cycleml:first-screen-drawn', 'mark').length > 0"
    " || window.__cyclemlChartsDrawnAt !== undefined)"
)
DONE = "() => window.__cyclemlChartsDrawnAt !== undefined"
IS_DRAWN = "(el) => el.querySelector('.main-svg') !== null"
# The time spent drawing each chart (dashboard.js's data-drawn-ms), summed.
DRAW_WORK = """
() => Array.from(document.querySelectorAll('div.chart[data-drawn-ms]'))
  .reduce((sum, el) => sum + Number(el.dataset.drawnMs), 0)
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(root: Path, log: Path, src: Path | None = None) -> tuple[subprocess.Popen, str]:
    """`cycleml serve` of ``root`` on a free 127.0.0.1 port; ``src``: import cycleml from there
    (a baseline checkout's ``src``) instead of this environment's."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CYCLEML_API_TOKEN")}
    env.update(OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1")
    if src is not None:
        env["PYTHONPATH"] = str(src.resolve())
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--project", str(root)]
    out = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cycleml", *args], stdout=out, stderr=subprocess.STDOUT, env=env
    )
    return proc, f"http://127.0.0.1:{port}"


def _wait_ready(proc: subprocess.Popen, base: str, log: Path, seconds: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"cycleml serve exited:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(base + "/healthz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"cycleml serve not ready within {seconds} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _first_renders(base: str) -> dict[str, float]:
    import httpx

    out = {}
    with httpx.Client(base_url=base, timeout=120) as client:
        for path in PAGES:
            started = time.perf_counter()
            response = client.get(path)
            out[path] = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise SystemExit(f"{path}: HTTP {response.status_code}")
    return out


def _browse(bases: dict[str, str], chromium: str, runs: int) -> dict[str, dict]:
    """``{label: {page: {"cold": [timing], "warm": [timing]}}}``; the servers are visited in
    turn for each page and run, so a change in the machine's load hits them alike."""
    from playwright.sync_api import sync_playwright

    found = {label: {p: {"cold": [], "warm": []} for p in PAGES} for label in bases}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            for _ in range(runs):
                for path in PAGES:
                    for label, base in bases.items():
                        context = browser.new_context(
                            viewport={"width": 1280, "height": 900}, base_url=base
                        )
                        context.add_init_script(WATCH_DRAWN)
                        try:
                            page = context.new_page()
                            for kind in ("cold", "warm"):
                                response = page.goto(path, wait_until="load")
                                if response is None or response.status != 200:
                                    raise SystemExit(f"{path}: {response and response.status}")
                                page.wait_for_function(FIRST_SCREEN, timeout=60_000)
                                timing = page.evaluate(TIMING)
                                _scroll_through(page)
                                timing["drawn"] = page.evaluate(TIMING)["drawn"]
                                timing["draw_work"] = page.evaluate(DRAW_WORK)
                                found[label][path][kind].append(timing)
                        finally:
                            context.close()
        finally:
            browser.close()
    return found


def _scroll_through(page) -> None:
    """Scroll to each chart (dashboard.js draws the ones below the first screen when they come
    near) until every chart is drawn."""
    for chart in page.locator("div.chart[data-chart]").all():
        chart.scroll_into_view_if_needed()
        page.wait_for_function(IS_DRAWN, arg=chart.element_handle(), timeout=60_000)
    page.wait_for_function(DONE, timeout=60_000)


def _median(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _page(timing: dict) -> float:
    """What a visitor waits for: the load event and the charts on the first screen (every
    chart, for a dashboard.js that draws them all at load)."""
    shown = timing["first_screen"] if timing["first_screen"] is not None else timing["drawn"]
    return max(timing["load"], shown)


def _summary(found: dict, first: dict) -> dict[str, dict]:
    out = {}
    for path in PAGES:
        cold, warm = found[path]["cold"], found[path]["warm"]
        evals = [
            r["scripts"] - r["plotly_end"]
            for r in cold
            if r["plotly_end"] is not None and r["scripts"] is not None
        ]
        out[path] = {
            "charts": cold[0]["charts"],
            "server_first_ms": first[path],
            "ttfb_ms": _median(cold, "ttfb"),
            "plotly_eval_ms": statistics.median(evals) if evals else None,
            "cold_load_ms": _median(cold, "load"),
            "cold_first_screen_ms": _median(cold, "first_screen"),
            "cold_all_drawn_ms": _median(cold, "drawn"),
            "cold_page_ms": statistics.median(_page(r) for r in cold),
            "warm_load_ms": _median(warm, "load"),
            "warm_page_ms": statistics.median(_page(r) for r in warm),
            "draw_work_ms": _median(cold, "draw_work"),
        }
    return out


def _print(label: str, summary: dict[str, dict], baseline: dict[str, dict] | None) -> None:
    print(f"-- {label}")
    header = (
        f"{'page':<16}{'charts':>7}{'server 1st':>11}{'ttfb':>6}{'plotly eval':>12}"
        f"{'cold load':>10}{'1st screen':>11}{'scrolled':>9}{'draw work':>10}{'cold page':>10}"
        f"{'warm load':>10}{'warm page':>10}  < 1 s cold"
    )
    print(header + ("  cold page vs baseline" if baseline else ""))
    for path, row in summary.items():
        line = (
            f"{path:<16}{row['charts']:>7}{_ms(row['server_first_ms']):>11}"
            f"{_ms(row['ttfb_ms']):>6}{_ms(row['plotly_eval_ms']):>12}"
            f"{_ms(row['cold_load_ms']):>10}{_ms(row['cold_first_screen_ms']):>11}"
            f"{_ms(row['cold_all_drawn_ms']):>9}{_ms(row['draw_work_ms']):>10}"
            f"{_ms(row['cold_page_ms']):>10}"
            f"{_ms(row['warm_load_ms']):>10}{_ms(row['warm_page_ms']):>10}  "
            f"{'yes' if row['cold_page_ms'] < TARGET_MS else 'NO ':<10}"
        )
        if baseline:
            ratio = baseline[path]["cold_page_ms"] / row["cold_page_ms"]
            line += f"  {ratio:.2f}x faster"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="an existing project (default: quickstart)")
    parser.add_argument("--users", type=int, default=800, help="demo size for the quickstart")
    parser.add_argument("--runs", type=int, default=5, help="cold+warm loads per page (median)")
    chromium = os.environ.get("CYCLEML_CHROMIUM", "/usr/bin/chromium")
    parser.add_argument("--chromium", default=chromium, help="Debian's chromium binary")
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="also serve the project with cycleml imported from this src/ folder (e.g. "
        "`git archive a455ba4 src | tar -x -C /tmp/before`, then /tmp/before/src), "
        "interleaved with this checkout, and print the ratio",
    )
    parser.add_argument("--json", type=Path, help="also write every timing to this file")
    args = parser.parse_args()
    if not os.access(args.chromium, os.X_OK):
        raise SystemExit(f"{args.chromium} is missing: apt-get install chromium")

    from cycleml.quickstart import run_quickstart

    sources = {"this checkout": None}
    if args.baseline_src is not None:
        sources = {"baseline": args.baseline_src, **sources}
    with tempfile.TemporaryDirectory(prefix="cycleml-bench-browser-") as tmp:
        root = args.project
        if root is None:
            root = Path(tmp) / "demo"
            started = time.perf_counter()
            run_quickstart(root, n_users=args.users)
            print(f"quickstart ({args.users} users): {time.perf_counter() - started:.1f} s")
        servers = {}
        try:
            for i, (label, src) in enumerate(sources.items()):
                log = Path(tmp) / f"serve-{i}.log"
                servers[label] = _serve(root, log, src)
                _wait_ready(*servers[label], log)
            load_before = os.getloadavg()
            first = {label: _first_renders(base) for label, (_, base) in servers.items()}
            bases = {label: base for label, (_, base) in servers.items()}
            found = _browse(bases, args.chromium, args.runs)
            load_after = os.getloadavg()
        finally:
            for proc, _ in servers.values():
                _stop(proc)

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, chromium {args.chromium}, {args.runs} runs, load average "
        f"{load_before[0]:.1f} before / {load_after[0]:.1f} after (1 min)"
    )
    print(
        "ms from the start of navigation, medians. page: max(load event, first screen's charts "
        "drawn; every chart where dashboard.js draws them all at load); scrolled: every chart "
        "drawn after scrolling to each (the driver's scrolling included); draw work: the sum "
        "of the charts' drawing times"
    )
    summaries = {label: _summary(found[label], first[label]) for label in sources}
    for label, summary in summaries.items():
        baseline = summaries.get("baseline") if label != "baseline" else None
        _print(label, summary, baseline)
    if args.json:
        args.json.write_text(
            json.dumps({"summary": summaries, "runs": found}, indent=2), encoding="utf-8"
        )


if __name__ == "__main__":
    main()
