"""One measured profile run, in its own process so that its peak memory is its own.

    python _worker.py cycleml FILE RESULT_JSON   # cycleml.Project(...).profile(source)
    python _worker.py ydata FILE RESULT_JSON     # ydata-profiling ProfileReport(minimal=True)

Writes what it timed (seconds, perf_counter) and the thread settings to RESULT_JSON. The parent
(bench_profile.py) measures the process's peak RSS and CPU time with os.wait4. The cycleml run
needs the benchmark venv (cycleml installed); the ydata run the anchor venv.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path


def run_cycleml(file: Path, *, core_only: bool = False) -> dict:
    """``core_only``: time ``cycleml.data.profile_source`` alone (no cleaning suggestions, HTML
    report or store), the fallback measurement when ``Project.profile`` fails."""
    started = time.perf_counter()
    import cycleml

    imported = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cycleml-bench-") as tmp:
        # A throwaway project whose one source is the file; entity and time declared as a user
        # would. The profile is stored in the project's (SQLite) store, as the CLI does.
        Path(tmp, "cycleml.yaml").write_text(
            "spec_version: 1\n"
            "name: bench_profile\n"
            "sources:\n"
            f"  data: {{path: {json.dumps(str(file))}, entity: user_id, time: event_ts}}\n",
            encoding="utf-8",
        )
        project = cycleml.Project(tmp)
        phases = _time_phases()
        with project.open_sources() as sources:
            threads, memory_limit = sources.con.sql(
                "SELECT current_setting('threads'), current_setting('memory_limit')"
            ).fetchall()[0]
        t0 = time.perf_counter()
        if core_only:
            from cycleml.data import profile_source

            with project.open_sources() as sources:
                result = profile_source(sources, "data")
        else:
            result = project.profile("data")
        seconds = time.perf_counter() - t0
    profile = result[0] if isinstance(result, list) else result
    columns = profile.get("columns", []) if isinstance(profile, dict) else []
    return {
        "tool": "cycleml",
        "version": getattr(cycleml, "__version__", None) or _dist_version("cycleml"),
        "duckdb": _dist_version("duckdb"),
        "seconds": seconds,
        "import_seconds": imported - started,
        "timed": "cycleml.data.profile_source(sources, 'data') alone: the statistics, without "
        "cleaning suggestions, HTML report or store"
        if core_only
        else "cycleml.Project(dir).profile('data'), everything it does: open the source view, "
        "compute the profile in DuckDB, cleaning suggestions, HTML report, store (SQLite)",
        "threads": f"DuckDB threads={threads} (spec training.threads), memory_limit={memory_limit}",
        "rows": profile.get("rows") if isinstance(profile, dict) else None,
        "columns": len(columns),
        "keys": sorted(profile) if isinstance(profile, dict) else [],
        "phases": {k: round(v, 3) for k, v in sorted(phases.items(), key=lambda kv: -kv[1])},
        "phases_cpu": {
            k: round(v, 3) for k, v in sorted(CPU_PHASES.items(), key=lambda kv: -kv[1])
        },
    }


CPU_PHASES: dict[str, float] = {}


def _cpu() -> float:
    """CPU seconds (user + system) of this process so far, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _time_phases() -> dict[str, float]:
    """Wall seconds per step of ``Project.profile`` (summed over calls), read by wrapping, in
    place, the functions it reaches through module attributes: the helpers in
    ``cycleml.data._profile``'s namespace (a helper calling another there is counted in both),
    ``cycleml.data.suggest_cleaning`` and each of its rules (``rule:NAME``), and the HTML report
    (``cycleml.reports.profile_report``). Best effort: the profiler is free to change, and what
    it does not have is simply not reported."""
    import functools
    import importlib
    import inspect

    spent: dict[str, float] = {}
    cpu = CPU_PHASES  # the same, in CPU seconds of the process (all threads)

    def wrap(func, label):
        @functools.wraps(func)
        def timed(*args, **kwargs):
            t0, c0 = time.perf_counter(), _cpu()
            try:
                return func(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - t0
                cpu[label] = cpu.get(label, 0.0) + _cpu() - c0

        return timed

    def module(name):
        try:
            return importlib.import_module(name)
        except ImportError:
            return None

    if profile := module("cycleml.data._profile"):
        skip = {"profile_view", "profile_with_suggestions", "clean_json", "_clock"}
        for name, func in list(vars(profile).items()):
            owner = getattr(func, "__module__", "") or ""
            if inspect.isfunction(func) and owner.startswith("cycleml.data") and name not in skip:
                setattr(profile, name, wrap(func, name))
    for package, attr, label in [
        ("cycleml.data", "suggest_cleaning", "suggest_cleaning (all rules)"),
        ("cycleml.reports", "profile_report", "profile_report (HTML)"),
    ]:
        if (mod := module(package)) and callable(getattr(mod, attr, None)):
            setattr(mod, attr, wrap(getattr(mod, attr), label))
    rules = getattr(module("cycleml.data._cleaning_rules"), "RULES", None)
    if isinstance(rules, dict):
        for name, func in list(rules.items()):
            rules[name] = wrap(func, f"rule:{name}")
    return spent


def run_ydata(file: Path) -> dict:
    started = time.perf_counter()
    import pandas as pd
    from ydata_profiling import ProfileReport

    imported = time.perf_counter()
    t0 = time.perf_counter()
    df = pd.read_parquet(file, engine="pyarrow")
    load = time.perf_counter() - t0
    t1 = time.perf_counter()
    report = ProfileReport(df, minimal=True, progress_bar=False)
    report.description_set  # noqa: B018 -- computes every statistic (the describe step)
    t2 = time.perf_counter()
    text = report.to_json()
    seconds = time.perf_counter() - t1
    pool = report.config.pool_size
    return {
        "tool": "ydata-profiling",
        "version": _dist_version("ydata-profiling"),
        "pandas": pd.__version__,
        "seconds": seconds,
        "describe_seconds": t2 - t1,
        "json_seconds": seconds - (t2 - t1),
        "load_seconds": load,
        "import_seconds": imported - started,
        "timed": "ProfileReport(df, minimal=True, progress_bar=False), its description_set (the "
        "describe step: every statistic) and .to_json(); pandas.read_parquet timed apart as load",
        "threads": f"pool_size={pool} -> {pool or os.cpu_count()} worker threads for per-column "
        "describe (0 means cpu_count)",
        "rows": len(df),
        "columns": df.shape[1],
        "json_chars": len(text),
    }


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    tool, file, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    run = {
        "cycleml": run_cycleml,
        "cycleml-core": lambda f: run_cycleml(f, core_only=True),
        "ydata": run_ydata,
    }[tool]
    try:
        result = run(file.resolve())
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        result = {"error": f"{type(exc).__name__}: {message}"}
        Path(out).write_text(json.dumps(result), encoding="utf-8")
        raise
    Path(out).write_text(json.dumps(result), encoding="utf-8")
