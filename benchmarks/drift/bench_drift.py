"""Drift benchmark (issue 8, "Speed"): cycleml's drift check against Evidently's data-drift preset
on the same two tables of 1M rows each (20 numeric + 10 categorical columns, some shifted; see
``make_data.py``), in one run.

Targets: at least 20x faster than Evidently's default preset with all of cycleml's default
methods on (automatic methods, data-quality checks, domain classifier, report distributions);
peak memory (above the loaded data) at most a fifth of Evidently's; statistics equal to
Evidently's within 1e-6 where the method is the same (at 1M rows both choose normed Wasserstein
for numbers and Jensen-Shannon for categories).

Every measurement runs in its own process (``_worker.py``): it reads both Parquet files with
pandas (not timed), resets its peak-RSS counter, and times the comparison alone. Evidently needs
pandas < 3, so it lives in its own venv, ``benchmarks/.venvs/drift-anchor`` (made here from
``anchor-requirements.txt``); cycleml runs in ``benchmarks/.venvs/drift`` (made by run.sh).

Run: bash benchmarks/run.sh drift   (or, with that venv, python bench_drift.py [--rows N])
Exits 0 whether or not the targets are met; a missed target is printed as MISSED.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from make_data import DATA_DIR, SHIFTED, ensure_data  # noqa: E402

ANCHOR_VENV = ROOT / "benchmarks" / ".venvs" / "drift-anchor"
ANCHOR_REQUIREMENTS = HERE / "anchor-requirements.txt"
TARGET_SPEEDUP = 20.0
TARGET_MEMORY_RATIO = 5.0
TOLERANCE = 1e-6
TIMEOUT = float(os.environ.get("BENCH_DRIFT_TIMEOUT", "1800"))
_HZ = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has used since boot (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    guest = sum(fields[8:10]) if len(fields) > 9 else 0
    return (sum(fields) - idle - guest) / _HZ


def anchor_python() -> Path:
    """The anchor venv's python, created (or refreshed when the requirements change)."""
    python = ANCHOR_VENV / "bin" / "python"
    digest = hashlib.sha256(ANCHOR_REQUIREMENTS.read_bytes()).hexdigest()[:16]
    stamp = ANCHOR_VENV / f".installed-{digest}"
    if not stamp.exists():
        print(f"== preparing {ANCHOR_VENV.relative_to(ROOT)}", flush=True)
        if not python.exists():
            base = os.environ.get("PYTHON", "python3.11")
            subprocess.run([base, "-m", "venv", str(ANCHOR_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "-r", str(ANCHOR_REQUIREMENTS)], check=True)
        stamp.touch()
    return python


def measure(python: Path | str, tool: str, files: tuple[Path, Path], *extra: str) -> dict:
    """Run one worker; its result plus the process's wall time, CPU time and peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", PYTHONWARNINGS="ignore")
        busy_before = machine_busy_seconds()
        started = time.perf_counter()
        proc = subprocess.Popen(
            [str(python), str(HERE / "_worker.py"), tool, *map(str, files), str(out), *extra],
            env=env,
        )
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - started > TIMEOUT:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - started
        machine_busy = machine_busy_seconds() - busy_before
        code = os.waitstatus_to_exitcode(status)
        result: dict = {"tool": tool}
        if out.exists():
            result.update(json.loads(out.read_text(encoding="utf-8")))
        if code != 0 and "seconds" not in result:
            result["error"] = (
                f"timed out after {TIMEOUT:.0f} s" if wall > TIMEOUT else f"worker exited {code}"
            )
    cpu = usage.ru_utime + usage.ru_stime
    result.update(
        process_seconds=wall,
        cpu_seconds=cpu,
        process_peak_rss_bytes=usage.ru_maxrss * 1024,
        others_cores=max(machine_busy - cpu, 0.0) / wall if wall else None,
    )
    return result


def _mb(n: float | None) -> str:
    return "—" if n is None else f"{n / 1024**2:,.0f} MB"


def agreement(ours: dict, anchor: dict) -> tuple[int, float, list[str]]:
    """Columns where both used the same method: how many, the largest |difference|, and the
    columns whose drift verdicts differ."""
    same, worst, verdicts = 0, 0.0, []
    for column, theirs in anchor["columns"].items():
        mine = ours["columns"].get(column)
        if not mine or mine["method"] != theirs["method"] or mine["statistic"] is None:
            continue
        same += 1
        worst = max(worst, abs(mine["statistic"] - theirs["statistic"]))
        if mine["drifted"] != theirs["drifted"]:
            verdicts.append(column)
    return same, worst, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows on each side")
    parser.add_argument("--skip-anchor", action="store_true", help="cycleml only")
    args = parser.parse_args()
    files = ensure_data(args.rows)
    for file in files:  # warm the page cache for every run alike
        file.read_bytes()
    runs: dict[str, dict] = {}
    print(f"== drift: {args.rows:,} rows each side, 20 numeric + 10 categorical", flush=True)
    runs["cycleml (all defaults)"] = measure(sys.executable, "cycleml", files, "auto")
    runs["cycleml (1 thread)"] = measure(sys.executable, "cycleml", files, "1")
    if not args.skip_anchor:
        runs["Evidently DataDriftPreset"] = measure(anchor_python(), "evidently", files)
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    print(
        f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores, {cpu}, "
        f"Python {platform.python_version()}"
    )
    print(
        f"{'run':<28}{'timed s':>9}{'process s':>11}{'CPU s':>8}{'peak-base':>11}"
        f"{'peak RSS':>11}{'others':>8}"
    )
    for label, r in runs.items():
        if "error" in r:
            print(f"{label:<28}  FAILED: {r['error']}")
            continue
        above = (r["peak_rss_bytes"] or 0) - r["baseline_rss_bytes"]
        r["above_baseline_bytes"] = above
        print(
            f"{label:<28}{r['seconds']:>9.2f}{r['process_seconds']:>11.2f}{r['cpu_seconds']:>8.1f}"
            f"{_mb(above):>11}{_mb(r['process_peak_rss_bytes']):>11}{r['others_cores']:>8.2f}"
        )
    for label, r in runs.items():
        if "error" not in r:
            print(f"{label}: {r['tool']} {r.get('version')} (pandas {r.get('pandas')}); "
                  f"{r['threads']}\n    timed: {r['timed']}")  # fmt: skip
    ours, anchor = runs["cycleml (all defaults)"], runs.get("Evidently DataDriftPreset")
    summary: dict = {"rows": args.rows, "runs": runs}
    if "error" not in ours:
        expected = set(SHIFTED)
        print(f"cycleml drifted: {', '.join(ours['drifted'])} (shifted: {', '.join(SHIFTED)})")
        print(f"cycleml domain classifier ROC-AUC {ours['domain_auc']:.3f}; quality: "
              f"{', '.join(ours['quality'])}")  # fmt: skip
        missed = expected - set(ours["drifted"]) - {"n05", "n06"}  # range/missing: quality
        if missed:
            print(f"MISSED: shifted columns not flagged by cycleml: {sorted(missed)}")
    if anchor and "error" not in anchor and "error" not in ours:
        speedup = anchor["seconds"] / ours["seconds"]
        memory = anchor["above_baseline_bytes"] / max(ours["above_baseline_bytes"], 1)
        same, worst, verdicts = agreement(ours, anchor)
        print(f"Evidently drifted: {', '.join(anchor['drifted'])}")
        print(
            f"\nspeed-up {speedup:.1f}x (target {TARGET_SPEEDUP:.0f}x): "
            + ("met" if speedup >= TARGET_SPEEDUP else "MISSED")
        )
        print(
            f"peak memory above the loaded data: Evidently/cycleml {memory:.1f}x (target "
            f"{TARGET_MEMORY_RATIO:.0f}x): "
            + ("met" if memory >= TARGET_MEMORY_RATIO else "MISSED")
        )
        print(
            f"statistics on {same} columns with the same method: max |difference| {worst:.2e} "
            f"(tolerance {TOLERANCE:.0e}): "
            + ("met" if worst <= TOLERANCE else "MISSED")
            + (f"; verdicts differ on {verdicts}" if verdicts else "; same verdicts")
        )
        summary.update(speedup=speedup, memory_ratio=memory, same_method_columns=same,
                       max_difference=worst)  # fmt: skip
    (DATA_DIR / "results.json").write_text(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
