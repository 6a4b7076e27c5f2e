"""One measured drift comparison, in its own process so that its peak memory is its own.

    python _worker.py cycleml REFERENCE CURRENT RESULT_JSON [THREADS]
    python _worker.py evidently REFERENCE CURRENT RESULT_JSON

Both read the two Parquet files with pandas first (not timed), then reset the process's peak
RSS counter (``/proc/self/clear_refs``) and time the comparison alone. Writes the seconds, the
RSS before the timed part, its peak during it (VmHWM), and each column's method and statistic.
The cycleml run needs the benchmark venv (cycleml installed); the Evidently run the anchor venv.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def run_cycleml(reference, current, threads: int | None) -> dict:
    from cycleml.monitor import drift

    started = time.perf_counter()
    result = drift(reference, current, threads=threads)
    seconds = time.perf_counter() - started
    domain = result["domain_classifier"]
    return {
        "seconds": seconds,
        "timed": "cycleml.monitor.drift(reference, current): every default on - the automatic "
        "methods, data-quality checks, domain classifier, report distributions",
        "threads": f"threads={threads or 'auto (one per core)'}",
        "columns": {
            r["feature"]: {
                "method": r["method"],
                "statistic": r["statistic"],
                "drifted": r["drifted"],
            }
            for r in result["features"]
        },
        "drifted": result["drifted"],
        "domain_auc": domain.get("roc_auc"),
        "quality": [f"{q['check']}:{q['column']}" for q in result["quality"]],
    }


EVIDENTLY_METHODS = {
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "K-S p_value": "ks",
    "chi-square p_value": "chi2",
    "PSI": "psi",
    "Z-test p_value": "z",
}


def run_evidently(reference, current) -> dict:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    numeric = [c for c in reference.columns if c.startswith("n")]
    categorical = [c for c in reference.columns if c.startswith("c")]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    started = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
    body = snapshot.dict()
    seconds = time.perf_counter() - started
    columns = {}
    for metric in body["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            method = EVIDENTLY_METHODS.get(config["method"], config["method"])
            value = metric["value"]
            drifted = (
                value < config["threshold"]
                if method in ("ks", "chi2", "z")
                else (value >= config["threshold"])
            )
            columns[config["column"]] = {
                "method": method,
                "statistic": float(value),
                "drifted": bool(drifted),
            }
    return {
        "seconds": seconds,
        "timed": "Report([DataDriftPreset()]).run(current, reference) + snapshot.dict()",
        "threads": "single process (Evidently's own choice)",
        "columns": columns,
        "drifted": [c for c, v in columns.items() if v["drifted"]],
    }


def main() -> None:
    tool, ref_path, cur_path, out = sys.argv[1:5]
    threads = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[5] != "auto" else None
    import pandas as pd

    reference, current = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
    if tool == "cycleml":
        import cycleml.monitor  # noqa: F401 - imported before the timed part, as Evidently is
    else:
        import evidently.presets  # noqa: F401
    baseline = _status("VmRSS")
    reset = _reset_peak()
    result = (
        run_cycleml(reference, current, threads)
        if tool == "cycleml"
        else run_evidently(reference, current)
    )
    result.update(
        tool=tool,
        version=_version("cycleml" if tool == "cycleml" else "evidently"),
        pandas=pd.__version__,
        rows=len(reference),
        baseline_rss_bytes=baseline,
        peak_rss_bytes=_status("VmHWM") if reset else None,
    )
    Path(out).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
