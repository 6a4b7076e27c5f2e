"""Time each dashboard page rendered in-process (httpx.ASGITransport, no network) on the demo
project with the whole lifecycle done (`cycleml quickstart`), against the 1 s target.

Cold: the first request of each page in a fresh app (imports, first store reads, problem
suggestions computed once). Warm: the median of the next runs. Browser-side work (Plotly's
bundle, drawing the charts) is not included: bench_browser.py times the pages in chromium.

    python benchmarks/dashboard/bench_pages.py [--project DIR] [--users N] [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

PAGES = ["/", "/data", "/problems/churn", "/models", "/predictions", "/experiments", "/monitoring"]
TARGET_MS = 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="an existing project (default: quickstart)")
    parser.add_argument("--users", type=int, default=2000, help="demo size for the quickstart")
    parser.add_argument("--runs", type=int, default=5, help="warm renders per page")
    args = parser.parse_args()

    import httpx

    from cycleml import Project
    from cycleml.quickstart import run_quickstart

    with tempfile.TemporaryDirectory(prefix="cycleml-bench-dash-") as tmp:
        root = args.project
        if root is None:
            root = Path(tmp) / "demo"
            started = time.perf_counter()
            run_quickstart(root, n_users=args.users)
            print(f"quickstart ({args.users} users): {time.perf_counter() - started:.1f} s")
        project = Project(root)
        app = project.app(token="")

        async def run() -> dict[str, list[float]]:
            out: dict[str, list[float]] = {}
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:
                for url in PAGES:
                    times = []
                    for _ in range(args.runs + 1):
                        t = time.perf_counter()
                        response = await c.get(url)
                        times.append((time.perf_counter() - t) * 1000)
                        if response.status_code != 200:
                            raise SystemExit(f"{url}: HTTP {response.status_code}")
                    out[url] = times
            return out

        timings = asyncio.run(run())
        project.close()

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'page':<18}{'cold ms':>10}{'warm ms':>10}{'target ms':>11}  within target (warm)")
    for url, times in timings.items():
        cold, warm = times[0], statistics.median(times[1:])
        ok = "yes" if warm < TARGET_MS else "NO"
        print(f"{url:<18}{cold:>10.0f}{warm:>10.0f}{TARGET_MS:>11.0f}  {ok}")


if __name__ == "__main__":
    main()
