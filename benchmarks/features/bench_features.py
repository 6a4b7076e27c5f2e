"""Point-in-time features: cycleml vs a hand-written DuckDB query vs Featuretools.

Data: the demo generator (``cycleml.demo.generate``) at 100k users with ~1M and ~5M events
(``events_per_user`` 10 and 50, 365 days ending 2026-06-01). Two cutoff sets: one cutoff per user
(100k rows, each at one of the
26 weekly times) and 26 weekly cutoffs per user (2.6M rows).
Features (16): event counts over 7/30/90 days, counts per event type (5) and per source (5) over
30 days, sum and mean of `value` over 30 days, days since the last event.

Each engine runs in its own child process (so the peak memory printed is that engine's), writes
its result to Parquet, and the parent asserts that the three agree. Featuretools is run on the
one-cutoff sets and, at 26 cutoffs, on a subsample of users (``FT_SAMPLE`` users x 26 cutoffs;
cycleml and DuckDB are timed on the same subsample too).

Usage: ``bash benchmarks/run.sh features`` (or run this file with a Python that has cycleml,
featuretools and psutil). Environment: ``BENCH_USERS`` (default 100000), ``BENCH_SIZES``
(default ``1M,5M``), ``FT_SAMPLE`` (default 2000), ``BENCH_SKIP_FT=1`` to leave Featuretools out,
``BENCH_LISTS=1`` to hand cycleml's ``compute()`` Python lists instead of the Arrow columns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "benchmarks" / "data" / "features"
N_USERS = int(os.environ.get("BENCH_USERS", "100000"))
SIZES = {"1M": 10, "5M": 50}
END = date(2026, 6, 1)
FT_SAMPLE = int(os.environ.get("FT_SAMPLE", "2000"))
EVENT_TYPES = ["page_view", "add_to_cart", "purchase", "search", "support_ticket"]
SOURCES = ["google", "facebook", "direct", "email", "ads"]
# An odd time of day, so no cutoff coincides with an event (Featuretools' cutoff is inclusive,
# cycleml's and the hand-written query's exclusive; the check below would catch a tie).
OFFSET = timedelta(hours=12, minutes=34, seconds=56, microseconds=789_123)

FEATURES = (
    ["count_7d", "count_30d", "count_90d"]
    + [f"count_30d_type_{t}" for t in EVENT_TYPES]
    + [f"count_30d_source_{s}" for s in SOURCES]
    + ["sum_value_30d", "mean_value_30d", "days_since_last"]
)

SPEC = """\
spec_version: 1
name: bench
sources:
  events: {path: data/events.parquet, entity: user_id, time: ts}
problems:
  bench:
    entity: user_id
    task: binary
    label: {kind: inactivity, source: events, days: 30}
    cutoffs: {every: 7d, start: 2025-12-01}
    features: [activity, types, channels, value]
features:
  activity: {source: events, windows: [7d, 30d, 90d], aggregate: {count: "*"}, recency: true}
  types:
    source: events
    windows: [30d]
    aggregate: {count: "*"}
    by: {event_type: [page_view, add_to_cart, purchase, search, support_ticket]}
  channels:
    source: events
    windows: [30d]
    aggregate: {count: "*"}
    by: {source: [google, facebook, direct, email, ads]}
  value: {source: events, windows: [30d], aggregate: {sum: value, mean: value}}
"""

# cycleml's names for the 16 features
CYCLEML_NAMES = {
    "activity_count_7d": "count_7d",
    "activity_count_30d": "count_30d",
    "activity_count_90d": "count_90d",
    **{f"types_count_30d_event_type_{t}": f"count_30d_type_{t}" for t in EVENT_TYPES},
    **{f"channels_count_30d_source_{s}": f"count_30d_source_{s}" for s in SOURCES},
    "value_sum_value_30d": "sum_value_30d",
    "value_mean_value_30d": "mean_value_30d",
    "activity_days_since_last": "days_since_last",
}

HAND_SQL = """
WITH joined AS (
  SELECT s.user_id, s.as_of,
    count(e.ts) FILTER (WHERE e.ts >= s.as_of - INTERVAL 7 DAY) AS count_7d,
    count(e.ts) FILTER (WHERE e.ts >= s.as_of - INTERVAL 30 DAY) AS count_30d,
    count(e.ts) AS count_90d,
    {types},
    {sources},
    coalesce(sum(e.value) FILTER (WHERE e.ts >= s.as_of - INTERVAL 30 DAY), 0) AS sum_value_30d,
    avg(e.value) FILTER (WHERE e.ts >= s.as_of - INTERVAL 30 DAY) AS mean_value_30d
  FROM spine s LEFT JOIN events e
    ON e.user_id = s.user_id AND e.ts < s.as_of AND e.ts >= s.as_of - INTERVAL 90 DAY
  GROUP BY s.user_id, s.as_of
), last AS (
  SELECT s.user_id, s.as_of, e.ts AS last_ts FROM spine s
  ASOF LEFT JOIN (SELECT user_id, ts FROM events) e ON s.user_id = e.user_id AND s.as_of > e.ts
)
SELECT j.*, (epoch_us(j.as_of) - epoch_us(l.last_ts)) / 86400e6 AS days_since_last
FROM joined j JOIN last l USING (user_id, as_of)
""".format(
    types=",\n    ".join(
        f"count(e.ts) FILTER (WHERE e.ts >= s.as_of - INTERVAL 30 DAY AND e.event_type = '{t}') "
        f"AS count_30d_type_{t}"
        for t in EVENT_TYPES
    ),
    sources=",\n    ".join(
        f"count(e.ts) FILTER (WHERE e.ts >= s.as_of - INTERVAL 30 DAY AND e.source = '{s}') "
        f"AS count_30d_source_{s}"
        for s in SOURCES
    ),
)


# -- data ----------------------------------------------------------------------------------------


def ensure_data(size: str) -> Path:
    folder = DATA / f"u{N_USERS}-{size}"
    if not (folder / "data" / "events.parquet").exists():
        from cycleml.demo import generate

        started = time.perf_counter()
        info = generate(
            folder,
            n_users=N_USERS,
            events_per_user=SIZES[size],
            days=365,
            end=END,
            seed=1,
            impressions_per_user=0,
        )
        print(
            f"   generated {info.n_events:,} events for {N_USERS:,} users "
            f"in {time.perf_counter() - started:.0f} s"
        )
    (folder / "cycleml.yaml").write_text(SPEC, encoding="utf-8")
    return folder


def ensure_cutoffs(folder: Path, kind: str, sample: int | None = None) -> Path:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = f"cutoffs-{kind}" + (f"-s{sample}" if sample else "") + ".parquet"
    path = folder / name
    if path.exists():
        return path
    users = pq.read_table(folder / "data" / "users.parquet", columns=["user_id"]).column(0)
    rng = np.random.default_rng(7)
    if sample:
        users = users.take(np.sort(rng.choice(len(users), size=sample, replace=False)))
    end = datetime.combine(END, datetime.min.time())
    weeks = [end - timedelta(days=7 * (k + 1)) + OFFSET for k in range(26)]
    if kind == "one":  # each user at one of the 26 weekly times (Featuretools groups by time)
        picks = rng.integers(0, 26, size=len(users))
        times = [weeks[int(k)] for k in picks]
        entity = users
    else:
        entity = pa.concat_arrays([users.combine_chunks()] * 26)
        times = [w for w in weeks for _ in range(len(users))]
    table = pa.table({"user_id": entity, "as_of": pa.array(times, pa.timestamp("us"))})
    pq.write_table(table, path)
    return path


# -- one engine in a child process ---------------------------------------------------------------


def _threads() -> int:
    import psutil

    return psutil.Process().num_threads()


def run_cycleml(folder: Path, cutoffs: Path) -> tuple[object, float, dict]:
    import pyarrow.parquet as pq

    from cycleml import Project

    spine = pq.read_table(cutoffs)
    entities, times = spine.column("user_id"), spine.column("as_of")
    if os.environ.get("BENCH_LISTS") == "1":  # the Python-list form of compute()
        entities, times = entities.to_pylist(), times.to_pylist()
    fs = Project(folder).features("bench")
    _ = fs.columns  # compile (reads the source schema) outside the timer
    started = time.perf_counter()
    frame = fs.compute(entities, times)  # Arrow columns: no Python lists
    seconds = time.perf_counter() - started
    threads = fs.sources.con.sql("SELECT current_setting('threads')").fetchall()[0][0]
    frame = frame.rename(columns=CYCLEML_NAMES)[["user_id", "as_of", *FEATURES]]
    return frame, seconds, {"duckdb_threads": threads, "process_threads": _threads()}


def run_duckdb(folder: Path, cutoffs: Path) -> tuple[object, float, dict]:
    import duckdb
    import pyarrow.parquet as pq

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    con.execute(
        f"CREATE VIEW events AS SELECT * FROM read_parquet('{folder / 'data' / 'events.parquet'}')"
    )
    spine = pq.read_table(cutoffs)
    started = time.perf_counter()
    con.register("spine", spine)
    frame = con.sql(HAND_SQL).df()
    seconds = time.perf_counter() - started
    threads = con.sql("SELECT current_setting('threads')").fetchall()[0][0]
    return frame, seconds, {"duckdb_threads": threads, "process_threads": _threads()}


def run_featuretools(folder: Path, cutoffs: Path) -> tuple[object, float, dict]:
    import featuretools as ft
    import pandas as pd
    from featuretools.primitives import Count, Mean, Sum, TimeSinceLast

    ct = pd.read_parquet(cutoffs).rename(columns={"as_of": "time"})
    ct["time"] = ct["time"].astype("datetime64[ns]")
    users = pd.DataFrame({"user_id": ct["user_id"].unique()})
    events = pd.read_parquet(folder / "data" / "events.parquet")
    events = events[events["user_id"].isin(users["user_id"])].reset_index(drop=True)
    events["ts"] = events["ts"].astype("datetime64[ns]")
    # Woodwork 0.31 does not recognise pandas 3's `str` dtype: hand it object columns.
    ct["user_id"] = ct["user_id"].astype(object)
    users = users.astype(object)
    for column in ("event_id", "user_id", "event_type", "source"):
        events[column] = events[column].astype(object)
    started = time.perf_counter()
    es = ft.EntitySet("bench")
    es.add_dataframe(
        dataframe_name="users",
        dataframe=users,
        index="user_id",
        logical_types={"user_id": "Categorical"},
    )
    es.add_dataframe(
        dataframe_name="events",
        dataframe=events,
        index="event_id",
        time_index="ts",
        logical_types={
            "event_id": "Categorical",
            "user_id": "Categorical",
            "ts": "Datetime",
            "event_type": "Categorical",
            "source": "Categorical",
            "value": "Double",
        },
    )
    es.add_relationship("users", "user_id", "events", "user_id")
    ev = es["events"].ww

    def count(window: str, where=None):
        return ft.Feature(
            ev["event_id"],
            parent_dataframe_name="users",
            primitive=Count,
            use_previous=window,
            where=where,
        )

    features = {
        "count_7d": count("7 days"),
        "count_30d": count("30 days"),
        "count_90d": count("90 days"),
    }
    for t in EVENT_TYPES:
        features[f"count_30d_type_{t}"] = count("30 days", ft.Feature(ev["event_type"]) == t)
    for s in SOURCES:
        features[f"count_30d_source_{s}"] = count("30 days", ft.Feature(ev["source"]) == s)
    features["sum_value_30d"] = ft.Feature(
        ev["value"], parent_dataframe_name="users", primitive=Sum, use_previous="30 days"
    )
    features["mean_value_30d"] = ft.Feature(
        ev["value"], parent_dataframe_name="users", primitive=Mean, use_previous="30 days"
    )
    features["days_since_last"] = ft.Feature(
        ev["ts"], parent_dataframe_name="users", primitive=TimeSinceLast(unit="days")
    )
    matrix = ft.calculate_feature_matrix(
        list(features.values()), entityset=es, cutoff_time=ct, cutoff_time_in_index=True
    )
    seconds = time.perf_counter() - started
    matrix.columns = list(features)
    frame = matrix.reset_index().rename(columns={"time": "as_of"})
    return frame, seconds, {"process_threads": _threads()}


ENGINES = {"cycleml": run_cycleml, "duckdb": run_duckdb, "featuretools": run_featuretools}


def child(engine: str, folder: str, cutoffs: str, out: str) -> None:
    import resource

    frame, seconds, info = ENGINES[engine](Path(folder), Path(cutoffs))
    frame = frame[["user_id", "as_of", *FEATURES]]
    frame.to_parquet(out, index=False)
    # VmHWM: this process image's peak RSS (ru_maxrss survives exec, so it would report the
    # parent's peak when that was higher)
    with open("/proc/self/status", encoding="ascii") as status:
        hwm = [line for line in status if line.startswith("VmHWM:")]
    if hwm:
        peak = int(hwm[0].split()[1]) / 1024
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "rows": len(frame), **info}))


def measure(engine: str, folder: Path, cutoffs: Path, out: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", engine, str(folder), str(cutoffs), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{engine} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_agree(paths: dict[str, Path]) -> None:
    import numpy as np
    import pandas as pd

    frames = {}
    for engine, path in paths.items():
        frame = pd.read_parquet(path)
        frame["as_of"] = frame["as_of"].astype("datetime64[us]")
        frames[engine] = frame.sort_values(["as_of", "user_id"]).reset_index(drop=True)
    base_name, base = next(iter(frames.items()))
    for engine, frame in frames.items():
        assert len(frame) == len(base), f"{engine}: {len(frame)} rows, {base_name}: {len(base)}"
        assert (frame["user_id"].to_numpy() == base["user_id"].to_numpy()).all(), engine
        assert (frame["as_of"].to_numpy() == base["as_of"].to_numpy()).all(), engine
        for column in FEATURES:
            a = base[column].to_numpy(dtype="float64", na_value=np.nan)
            b = frame[column].to_numpy(dtype="float64", na_value=np.nan)
            # sums/means: doubles added in another order; days: Featuretools' float seconds
            close = np.isclose(a, b, rtol=1e-9, atol=1e-6, equal_nan=True)
            assert close.all(), (
                f"{engine} and {base_name} differ in {column} on {int((~close).sum())} rows, "
                f"e.g. {base.loc[~close, ['user_id', 'as_of', column]].head(3).to_dict('records')}"
                f" vs {frame.loc[~close, column].head(3).tolist()}"
            )


def main() -> None:
    skip_ft = os.environ.get("BENCH_SKIP_FT") == "1"
    sizes = [s.strip() for s in os.environ.get("BENCH_SIZES", "1M,5M").split(",") if s.strip()]
    print(
        f"features benchmark: {N_USERS:,} users, nproc {os.cpu_count()}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
    )
    header = f"{'data':<4} {'cutoffs':<22} {'engine':<13} {'seconds':>8} {'x duckdb':>9} "
    header += f"{'peak MB':>8} {'threads':>8}"
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            folder = ensure_data(size)
            sets = [("one", None), ("weekly", None)]
            if not skip_ft:
                sets.append(("weekly", FT_SAMPLE))
            print(header)
            for kind, sample in sets:
                cutoffs = ensure_cutoffs(folder, kind, sample)
                label = {"one": "1 per user", "weekly": "26 weekly per user"}[kind]
                if sample:
                    label = f"26 weekly, {sample} users"
                engines = ["duckdb", "cycleml"]
                if not skip_ft and (kind == "one" or sample):
                    engines.append("featuretools")
                paths, results = {}, {}
                for engine in engines:
                    paths[engine] = Path(tmp) / f"{size}-{kind}-{sample}-{engine}.parquet"
                    results[engine] = measure(engine, folder, cutoffs, paths[engine])
                assert_agree(paths)
                base = results["duckdb"]["seconds"]
                for engine in engines:
                    r = results[engine]
                    threads = f"{r.get('duckdb_threads', '-')}/{r['process_threads']}"
                    print(
                        f"{size:<4} {label:<22} {engine:<13} {r['seconds']:8.2f} "
                        f"{r['seconds'] / base:9.2f} {r['peak_mb']:8.0f} {threads:>8}"
                    )
                print(f"     {results['duckdb']['rows']:,} rows; all engines agree")
    print("threads: DuckDB threads / OS threads of the process at the end of the run")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:6])
    else:
        main()
